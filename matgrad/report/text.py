"""Plain-text pieces shared by the renderers: verdict words, numbers and the lines that
describe an identity's claims. They are not escaped: each renderer escapes them for its sink
with :mod:`matgrad.report.escape`."""

from __future__ import annotations

import shlex

from matgrad.results import (
    INLINE_FILE,
    STDIN_FILE,
    ClaimResult,
    IdentityResult,
    RunReport,
    fmt_number,
)
from matgrad.settings import Settings

VERDICT = {
    "passed": "PASS",
    "xfailed": "XFAIL",
    "failed": "FAIL",
    "xpassed": "XPASS",
    "error": "ERROR",
}
STATUSES = ("passed", "failed", "xfailed", "xpassed", "error")
XPASS_TEXT = (
    "expected to fail (expect: fail), but every claim passed: the identity is right after "
    "all, or its wrong variant is too close to the truth"
)

def verdict(status: str) -> str:
    return VERDICT.get(status, status.upper())


def claim_status(r: IdentityResult, c: ClaimResult) -> str:
    """A claim's own verdict as a status: in an ``expect: fail`` identity a failed claim is
    ``xfailed``, and a passing one ``xpassed`` when every claim passed."""
    if r.expect == "fail":
        if c.status == "failed":
            return "xfailed"
        if c.status == "passed" and r.status == "xpassed":
            return "xpassed"
    return c.status if c.status in STATUSES else "error"


def num(x: float | None, spec: str = ".2e") -> str:
    return "—" if x is None else format(x, spec)


def where(r: IdentityResult) -> str:
    return r.file if r.line is None else f"{r.file}:{r.line}"


def reproduce(r: IdentityResult, settings: Settings) -> str:
    """The command that checks just ``r`` again under the run's ``settings`` (each one that
    is not the built-in default is written out), so it reaches the same verdict."""
    if r.file == INLINE_FILE:  # given by `matgrad try` options: the same options again
        return " ".join(["matgrad try (the same options)", f"--seed {settings.seed}",
                         *settings.flags()])
    cmd = f"matgrad check {_target(r)} -k {shlex.quote(r.id)} --seed {settings.seed}"
    return " ".join([cmd, *settings.flags()])


def _target(r: IdentityResult) -> str:
    """The PATHS argument that reads ``r`` again: ``-`` for text piped in on stdin."""
    return "-" if r.file == STDIN_FILE else shlex.quote(r.file)


def show_command(r: IdentityResult, settings: Settings) -> str:
    """The ``matgrad show`` command that displays the trial where the first bad claim is
    worst, under the run's ``settings``."""
    trial = next(
        (c.worst.trial for c in r.claims if c.status != "passed" and c.worst is not None), 0
    )
    cmd = f"matgrad show {shlex.quote(r.id)} {_target(r)} --seed {settings.seed}"
    cmd += f" --trial {trial}"
    if r.trials is not None:
        cmd += f" --trials {r.trials}"
    return " ".join([cmd, *settings.flags(trials=r.trials is None)])


def counts(report: RunReport) -> str:
    s = report.summary
    return (
        f"{s['passed']} passed, {s['failed']} failed, {s['xfailed']} xfailed, "
        f"{s['xpassed']} xpassed, {s['error']} errors"
    )


def total_draws(report: RunReport) -> int:
    """How many draws the verdicts rest on: every identity's trials."""
    return sum(r.trials or 0 for r in report.results)


def draws(report: RunReport) -> str:
    """How many draws the verdicts rest on, and how many trials were drawn again (near a
    degenerate point, or undefined there), if any."""
    total = total_draws(report)
    again = sum(r.redrawn_degenerate + r.redrawn_undefined for r in report.results)
    text = f"{total} draw{'' if total == 1 else 's'}"
    return text + (f", {again} drawn again" if again else "")


def warning_lines(r: IdentityResult) -> list[str]:
    """The identity's warnings, one line each (no escaping)."""
    return [f"warning: {w}" for w in r.warnings]


def summary(report: RunReport) -> str:
    """The one-line outcome of a run, as the terminal shows it."""
    line = f"{counts(report)} in {report.seconds:.2f}s ({draws(report)})"
    if report.shard:
        line += f" (shard {report.shard})"
    if report.stopped:
        line += f"; {report.stopped}"
    again = rechecked(report)
    if again:
        line += f"; {again}"
    for warning in report.warnings:
        line += f"; warning: {warning}"
    if not report.complete:
        line += " (interrupted: incomplete)"
    return line


def headline(report: RunReport) -> str:
    """One sentence: did every identity meet its expect?"""
    n = len(report.results)
    bad = sum(not r.ok for r in report.results)
    if not report.complete:
        return f"interrupted after {n} identities; {bad} did not meet their expect"
    if bad:
        return f"{bad} of {n} identities did not meet their expect"
    return f"all {n} identities met their expect"


def tolerance(c: ClaimResult) -> str:
    if c.rtol is None or c.atol is None:
        return ""
    return f"rtol={c.rtol:g} atol={c.atol:g}"


def worst_line(c: ClaimResult) -> str | None:
    if c.worst is None or c.status != "failed":
        return None
    w = c.worst
    return (
        f"worst entry: trial {w.trial}, index {w.index}: "
        f"autograd {fmt_number(w.autograd, '.6g')}, claimed {fmt_number(w.claimed, '.6g')}"
    )


def claim_lines(c: ClaimResult) -> list[str]:
    """What one claim came to, as plain lines (no escaping)."""
    if c.status == "passed":
        line = f"{c.label}: passed"
        if c.max_abs_err is not None:
            line += f", max abs err {c.max_abs_err:.2e}"
        if c.max_ratio is not None:
            line += f" ({c.max_ratio:.2g} of the tolerance, {tolerance(c)})"
        return [line] + ([f"  note: {c.note}"] if c.note else [])
    lines = [c.message or f"{c.label}: {c.status}"]
    w = worst_line(c)
    if w is not None and "claimed" not in lines[0]:  # the mismatch message names it already
        lines.append(f"  {w}")
    if c.hint:
        lines.append(f"  hint: {c.hint}")
    if c.note:
        lines.append(f"  note: {c.note}")
    return lines


def notes(report: RunReport) -> list[tuple[IdentityResult, ClaimResult]]:
    """The claims with a note (a float32 failure re-checked in float64), in report order."""
    return [(r, c) for r in report.results for c in r.claims if c.note]


def rechecked(report: RunReport) -> str | None:
    """How many claims failed in float32 (complex64) and were checked again in float64
    (complex128), and what came of it, in one phrase; None when none was."""
    done = [c.recheck for r in report.results for c in r.claims if c.recheck is not None]
    if not done:
        return None
    held = sum(x.holds for x in done)
    # each in the wider type of its own values: float64, complex128 for complex ones
    narrow = " or ".join(dict.fromkeys(x.dtype for x in done))
    wide = " or ".join(dict.fromkeys(x.wide_dtype for x in done))
    return (
        f"{len(done)} claim{'s' if len(done) != 1 else ''} failed in {narrow} and "
        f"{'were' if len(done) != 1 else 'was'} checked again in {wide} on the same draw: "
        f"{held} held (rounding), {len(done) - held} did not"
    )


def failure_message(r: IdentityResult) -> str:
    """The single most telling line about an identity that did not meet its expect."""
    if r.status == "xpassed":
        return XPASS_TEXT
    for c in r.claims:
        if c.status != "passed":
            first = c.message or f"{c.label}: {c.status}"
            w = worst_line(c)
            return first if w is None or "claimed" in first else f"{first}; {w}"
    return r.message or verdict(r.status)


def identity_lines(r: IdentityResult, settings: Settings) -> list[str]:
    """Every claim of an identity and, when it did not meet its expect, how to reproduce."""
    lines: list[str] = []
    if r.status == "xpassed":
        lines.append(XPASS_TEXT)
    if r.status == "xfailed":
        lines.append("expected to fail (expect: fail), and it did")
    note = r.tol_note()
    if note:
        lines.append(note)
    for c in r.claims:
        lines.extend(claim_lines(c))
    if not r.claims and r.message:
        lines.append(r.message)
    lines.extend(warning_lines(r))
    if r.status in ("failed", "xpassed") or (r.status == "error" and r.claims):
        lines.append(f"reproduce: {reproduce(r, settings)}")
    return lines
