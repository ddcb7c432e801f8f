"""The expression language: the function registry, the parser and evaluator of expressions, and
the domains variables are drawn from. Imports no torch (the engine passes torch in)."""
