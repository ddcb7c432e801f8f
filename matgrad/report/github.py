"""GitHub Actions output: one ``::error`` workflow command per problem, pointing at the YAML
line of the claim (GitHub shows it on the pull request's diff), the full list folded into a
log group, and a Markdown step summary.

Workflow commands are parsed from any stdout line that starts with ``::``, so user text never
reaches the log raw: command data and properties are %-escaped as GitHub's toolkit does, and
every other line is a CI log line (both in :mod:`matgrad.report.escape`).
"""

import errno
import os
import stat
from collections.abc import Mapping

from matgrad.report import markdown
from matgrad.report.escape import terminal, workflow_data, workflow_property
from matgrad.report.text import (
    claim_lines,
    identity_lines,
    summary,
    verdict,
    where,
)
from matgrad.results import IdentityResult, RunReport
from matgrad.settings import Settings

# GitHub refuses a step summary over 1 MiB (all writes of the step together).
STEP_SUMMARY_LIMIT = 1024 * 1024


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Running inside GitHub Actions (which sets ``GITHUB_ACTIONS=true``)?"""
    return environ.get("GITHUB_ACTIONS") == "true"


def command(name: str, message: str, **props: str | int | None) -> str:
    given = ",".join(f"{k}={workflow_property(v)}" for k, v in props.items() if v is not None)
    return f"::{name}{' ' + given if given else ''}::{workflow_data(message)}"


def annotations(r: IdentityResult, settings: Settings) -> list[str]:
    """One ``::error`` per failing claim (or one for the identity), none if it met its
    expect; one ``::notice`` per passing claim with a note (a float32 failure that held in
    float64); and one ``::warning`` per warning of an identity that met its expect."""
    title = f"matgrad {verdict(r.status)}: {r.id}"
    out = [
        command(
            "notice",
            "\n".join(claim_lines(c)),
            file=r.file,
            line=c.line if c.line is not None else r.line,
            title=f"{title} ({c.label})",
        )
        for c in r.claims
        if c.note and c.status == "passed"
    ]
    if r.ok:
        warned = f"matgrad warning: {r.id}"
        return out + [
            command("warning", w, file=r.file, line=r.line, title=warned) for w in r.warnings
        ]
    bad = [c for c in r.claims if c.status != "passed"]
    if r.status == "xpassed" or not bad:
        text = "\n".join(identity_lines(r, settings))
        line = r.error_line if r.error_line is not None else r.line  # where the message points
        return [*out, command("error", text, file=r.file, line=line, title=title)]
    tail = [x for x in identity_lines(r, settings) if x.startswith("reproduce: ")]
    for c in bad:
        text = "\n".join(claim_lines(c) + tail)
        line = c.line if c.line is not None else r.line
        out.append(command("error", text, file=r.file, line=line, title=f"{title} ({c.label})"))
    return out


def render(report: RunReport, verbosity: int = 0) -> str:
    """The log: 0 (and above) the folded list of identities, every annotation and the summary
    line; -1 (``-q``) without the list; -2 (``-qq``) only the ``::error`` annotations (what
    the pull request must show) and the summary line."""
    lines = []
    if verbosity >= 0:
        lines.append(f"::group::matgrad: {len(report.results)} identities")
        for r in report.results:
            lines.append(f"{verdict(r.status):<5} {terminal(r.id)} ({terminal(where(r))})")
        lines.append("::endgroup::")
    quiet = verbosity <= -2
    if not quiet:
        for warning in report.warnings:
            lines.append(command("warning", warning, title="matgrad: tolerance bound raised"))
    for r in report.results:
        note = r.tol_note()
        if note and not quiet:
            lines.append(command("notice", note, file=r.file, line=r.line, title=r.id))
        lines.extend(
            a for a in annotations(r, report.settings) if not quiet or a.startswith("::error")
        )
    lines.append(terminal(summary(report)))
    return "\n".join(lines) + "\n"


def step_summary(report: RunReport, budget: int = STEP_SUMMARY_LIMIT) -> str:
    """The Markdown summary, shrunk to fit ``budget`` bytes (UTF-8)."""
    return markdown.render(report, max_bytes=budget)


def append_step_summary(path: str | os.PathLike[str], report: RunReport) -> int:
    """Append the summary to ``$GITHUB_STEP_SUMMARY``, within what the step has left of its
    1 MiB; returns the bytes written."""
    try:
        used = os.path.getsize(path)
    except OSError:
        used = 0
    text = step_summary(report, STEP_SUMMARY_LIMIT - used - 1)
    data = text.encode("utf-8")
    if len(data) > STEP_SUMMARY_LIMIT - used:
        return 0
    # Non-blocking, and refused unless a regular file: a FIFO with no reader would hang the
    # run after checking (opening a FIFO for writing waits for a reader).
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "ab", closefd=False) as fh:
            fh.write(data)
    finally:
        os.close(fd)
    return len(data)
