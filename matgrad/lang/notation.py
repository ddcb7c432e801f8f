"""Notation from elsewhere (LaTeX, Matlab, NumPy/PyTorch methods) found in an expression that
did not parse, and the matgrad spelling that replaces it.

Used only on the error path of :func:`matgrad.lang.expr.parse`: a spelling is explained only in
an expression that was refused, so anything the language accepts is never flagged.
"""

from __future__ import annotations

import dataclasses
import re

from matgrad.errors import ExprError

LATEX_KEY = "the typeset formula belongs under the identity's latex: key"


@dataclasses.dataclass(frozen=True)
class Spelling:
    """A foreign spelling: how to find it, what it is, and how matgrad writes it."""

    pattern: re.Pattern[str]
    what: str
    fix: str
    latex: bool = False  # a LaTeX spelling: point at the latex: key too


SPELLINGS: tuple[Spelling, ...] = (
    Spelling(
        re.compile(r"\^\s*\{?\s*\(?\s*-\s*1\b\s*\)?\s*\}?"),
        "LaTeX's inverse X^-1 (in Python ^ is bitwise xor)",
        "inv(X)",
        latex=True,
    ),
    Spelling(
        re.compile(r"\^\s*\{?\s*(T\b|\\top\b|\\intercal\b|t\b)"),
        "LaTeX's transpose x^T (in Python ^ is bitwise xor)",
        "x.T",
        latex=True,
    ),
    Spelling(
        re.compile(r"\\(mathrm|operatorname|text|rm)\s*\{\s*(tr|Tr|trace)\s*\}"),
        "LaTeX's trace \\mathrm{tr}",
        "tr(X)",
        latex=True,
    ),
    Spelling(
        re.compile(r"\\[A-Za-z]+"),
        "a LaTeX command",
        "matgrad's functions (tr, inv, logdet, ...; `matgrad functions` lists them)",
        latex=True,
    ),
    # every quote right after a name or a bracket and not before one: Matlab's transpose, not
    # a string (b'x' is a bytes literal)
    Spelling(re.compile(r"^(?:[^']*[\w)\]]'(?![\w(]))+[^']*$"), "Matlab's transpose x'", "x.T"),
    Spelling(re.compile(r"(?<![\w.])trace\s*\("), "trace(...)", "tr(...)"),
    Spelling(re.compile(r"(?<![\w.])transpose\s*\("), "transpose(A)", "A.T"),
    Spelling(
        re.compile(r"\.\s*(transpose|t)\s*\(\s*\)"), "the method call A.transpose()", "A.T"
    ),
    Spelling(re.compile(r"\.\s*(inverse|inv)\s*\(\s*\)"), "the method call A.inverse()", "inv(A)"),
)

# Operators an expression cannot end with (longest first).
_TRAILING = ("**", "+", "-", "*", "/", "@", "^", ",", ".")


def note(text: str) -> str | None:
    """What a foreign spelling in ``text`` is and how matgrad writes it, or None."""
    for s in SPELLINGS:
        m = s.pattern.search(text)
        if m is not None:
            if m.group(0) == text:  # a pattern over the whole text: point at the first quote
                at = text.index("'")
                where = f"{text[max(0, at - 1) : at + 1]!r} at column {at + 1}"
            else:
                where = f"{m.group(0).strip()!r} at column {m.start() + 1}"
            tail = f"; {LATEX_KEY}" if s.latex else ""
            return f"{where} is {s.what}: in matgrad write {s.fix}{tail}"
    return None


def trailing_operator(text: str) -> tuple[str, int] | None:
    """The operator ``text`` ends with and its column (1-based), or None."""
    body = text.rstrip()
    for op in _TRAILING:
        if body.endswith(op):
            return op, len(body) - len(op) + 1
    return None


def explained(err: ExprError, text: str) -> ExprError:
    """``err`` with what its expression's foreign spelling or trailing operator means; ``err``
    itself when there is nothing to add."""
    stripped = text.strip()
    found = note(stripped)
    if found is not None:
        problem = err.problem.replace(" (use ** for powers)", "")
        problem = re.sub(r" \(did you mean '[^']*'\?\)", "", problem)  # the note says better
        return ExprError(f"{problem}; {found}", text=err.text, col=err.col)
    trailing = trailing_operator(stripped)
    if trailing is not None and err.problem.startswith("syntax error"):
        op, col = trailing
        return ExprError(
            f"syntax error at column {col}: the expression ends with the operator {op!r}, an "
            f"operand is missing after it",
            text=err.text,
            col=col,
        )
    return err
