"""The exception hierarchy and exit codes. Imports nothing from matgrad or torch."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class ExitCode(enum.IntEnum):
    """Process exit codes of the command-line tool (documented in the README)."""

    OK = 0
    MISMATCH = 1
    USAGE = 2
    INVALID = 3
    INTERNAL = 4
    NO_IDENTITIES = 5
    INTERRUPTED = 130


class MatgradError(Exception):
    """Base class of every error matgrad reports to a user (never a bug)."""


class SpecError(MatgradError):
    """A malformed identity file or field.

    Rendered as ``file:line:col: identity 'ID', key a.b.c: problem``.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | None = None,
        line: int | None = None,
        col: int | None = None,
        identity: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path
        self.line = line
        self.col = col
        self.identity = identity
        self.key = key

    def located(self, **kw: object) -> SpecError:
        """A copy with the missing location fields filled from ``kw``."""
        fields = {k: getattr(self, k) for k in ("path", "line", "col", "identity", "key")}
        for k, v in kw.items():
            if fields.get(k) is None:
                fields[k] = v
        return SpecError(self.problem, **fields)

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        ctx = []
        if self.identity is not None:
            ctx.append(f"identity {self.identity!r}")
        if self.key is not None:
            ctx.append(f"key {self.key}")
        prefix = ", ".join(ctx)
        return f"{where}{prefix + ': ' if prefix else ''}{self.problem}"


class ExprError(MatgradError):
    """An expression that cannot be parsed or does not type-check (names, arity, shapes)."""

    def __init__(self, problem: str, *, text: str | None = None, col: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.text = text
        self.col = col

    def __str__(self) -> str:
        return self.problem


class LimitError(MatgradError):
    """Input that exceeds a configured work or size limit."""


class EvalError(MatgradError):
    """An identity that parsed but could not be evaluated (NaN, domain violation, ...)."""


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known name most like ``word`` (difflib's similarity of at least 0.6 for a word of
    up to three letters, where one typo weighs more, and 0.7 for longer ones), or None.

    A name that is ``word`` with several letters added or taken away is another name, not a
    typo of it (``qr`` is not ``sqrt``, ``max`` is not ``softmax``): the lengths may differ by
    at most one letter per three of ``word`` (one at least). Nor is a name that merely shares
    letters (``tarce`` is not ``stack``)."""
    import difflib  # only on the error path

    slack = max(1, len(word) // 3)
    near = [k for k in known if abs(len(k) - len(word)) <= slack]
    cutoff = 0.6 if len(word) <= 3 else 0.7
    close = difflib.get_close_matches(word, near, n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """The hint appended to an "unknown name" message: `` (did you mean 'x'?)``, or ``""``
    when no known name is close."""
    close = closest(word, known)
    return f" (did you mean {close!r}?)" if close is not None else ""
