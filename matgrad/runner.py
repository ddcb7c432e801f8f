"""Choosing what to run and what the outcome means: selection by id, exit codes.
Shared by the command line and the Python API; no torch."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from matgrad.errors import ExitCode
from matgrad.results import IdentityResult, RunReport
from matgrad.spec import Identity, Invalid


def matches(ident_id: str | None, patterns: Sequence[str]) -> bool:
    """True if ``ident_id`` matches any pattern: a glob (with * ? [) or else a substring."""
    if not patterns:
        return True
    if ident_id is None:
        return True  # an unreadable file is always reported: nothing is lost silently
    for p in patterns:
        if any(ch in p for ch in "*?["):
            if fnmatch.fnmatchcase(ident_id, p):
                return True
        elif p in ident_id:
            return True
    return False


def select(items: Iterable[Identity | Invalid], patterns: Sequence[str]) -> list[Identity | Invalid]:
    return [it for it in items if matches(it.id, patterns)]


def exit_code(report: RunReport) -> ExitCode:
    """Precedence: interrupted > internal error > invalid > mismatch > ok; 5 if nothing ran."""
    if not report.complete:
        return ExitCode.INTERRUPTED
    return results_exit_code(report.results)


def results_exit_code(results: Sequence[IdentityResult]) -> ExitCode:
    if not results:
        return ExitCode.NO_IDENTITIES
    if any(r.internal for r in results):
        return ExitCode.INTERNAL
    if any(r.status == "error" for r in results):
        return ExitCode.INVALID
    if any(r.status in ("failed", "xpassed") for r in results):
        return ExitCode.MISMATCH
    return ExitCode.OK
