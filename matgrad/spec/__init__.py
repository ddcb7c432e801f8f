"""Identity files: safe YAML, the schema, compilation of expressions against shapes, and the
budgets decided before anything is allocated. Imports no torch."""

from matgrad.spec.schema import (
    Claim,
    Compiled,
    Identity,
    Invalid,
    Tolerance,
    Var,
    compile_identity,
    discover,
    load_all,
    load_file,
    load_text,
    validate,
)

__all__ = [
    "Claim",
    "Compiled",
    "Identity",
    "Invalid",
    "Tolerance",
    "Var",
    "compile_identity",
    "discover",
    "load_all",
    "load_file",
    "load_text",
    "validate",
]
