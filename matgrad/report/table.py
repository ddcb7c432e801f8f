"""The terminal view: a rich table of claims, failure details and a summary line."""

from __future__ import annotations

import io

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from matgrad.report.escape import terminal
from matgrad.report.text import (
    VERDICT,
    claim_lines,
    draws,
    rechecked,
    reproduce,
    show_command,
    warning_lines,
)
from matgrad.results import INLINE_FILE, ClaimResult, RunReport

STYLE = {
    "passed": "green",
    "xfailed": "green",
    "failed": "bold red",
    "xpassed": "bold red",
    "error": "bold magenta",
}


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.1e}"


def _short_hint(hint: str | None) -> str:
    return "" if not hint else hint.split(":", 1)[0]


def _slope(c: ClaimResult) -> float | None:
    return next((w.slope for w in c.witnesses if w.name == "taylor"), None)


# Columns a narrow terminal drops first, in this order (pytest and ruff also shorten their
# lines by width): what they say is also in the details below the table or the summary line.
DROP_ORDER = ("time", "trials", "max rel err", "slope", "hint")
ID_MIN = 12  # the id column folds down to this, after every optional column is gone
ID_WANTED = 30  # optional columns go before the id column folds below this


def _width(cell: str | Text) -> int:
    return Text(cell).cell_len if isinstance(cell, str) else cell.cell_len


def table(report: RunReport, width: int | None = None) -> Table:
    """One row per claim. A ``slope`` column (the Taylor test) and a ``hint`` column (the
    diagnosis of a failed claim) appear when some claim has one. With ``width``, columns are
    dropped (``DROP_ORDER``) until the table fits it, and the id column folds."""
    claims = [c for r in report.results for c in r.claims]
    names = ["id", "claim", "verdict", "max abs err", "max rel err", "trials", "time"]
    if any(_slope(c) is not None for c in claims):
        names.append("slope")
    if any(c.hint for c in claims):
        names.append("hint")
    rows: list[dict[str, str | Text]] = []
    for r in report.results:
        style = STYLE[r.status]
        verdict = Text(VERDICT[r.status], style=style)
        ident = Text(terminal(r.id))
        timing = f"{r.seconds * 1000:.0f} ms"
        trials = "—" if r.trials is None else str(r.trials)
        if not r.claims:
            rows.append({"id": ident, "claim": "—", "verdict": verdict, "max abs err": "—",
                         "max rel err": "—", "trials": trials, "time": timing,
                         "slope": "", "hint": ""})
            continue
        for i, c in enumerate(r.claims):
            claim_style = STYLE["passed" if c.status == "passed" else "failed"]
            if c.status == "error":
                claim_style = STYLE["error"]
            rows.append({
                "id": ident if i == 0 else "",
                "claim": Text(
                    terminal(c.label), style=claim_style if r.status != "xfailed" else ""
                ),
                "verdict": verdict if i == 0 else "",
                "max abs err": _num(c.max_abs_err),
                "max rel err": _num(c.max_rel_err),
                "trials": trials if i == 0 else "",
                "time": timing if i == 0 else "",
                "slope": _fmt_slope(_slope(c)),
                "hint": Text(terminal(_short_hint(c.hint)), style="yellow"),
            })
    natural = {n: max([len(n), *(_width(row[n]) for row in rows)]) for n in names}
    # Ids keep their width (up to 40 columns); the hint column wraps first.
    natural["id"] = min(natural["id"], 40)
    if "hint" in natural:
        natural["hint"] = min(natural["hint"], 30)

    def needed(cols: list[str]) -> int:  # each column: its cells, a space each side, a rule
        return sum(min(natural[n], ID_WANTED) if n == "id" else natural[n] for n in cols) + (
            3 * len(cols) + 1
        )

    if width is not None:
        for name in DROP_ORDER:
            if needed(names) <= width:
                break
            if name in names:
                names.remove(name)
    room = None if width is None else width - needed([n for n in names if n != "id"]) - 3
    t = Table(title=None, show_lines=False, header_style="bold")
    for n in names:
        if n == "id":
            widest = natural["id"] if room is None else max(ID_MIN, min(natural["id"], room))
            if room is None:
                t.add_column("id", overflow="fold", min_width=widest)
            else:
                t.add_column("id", overflow="fold", width=widest)
        elif n == "hint":
            if room is None:
                t.add_column("hint", min_width=10)  # wraps first
            else:
                t.add_column("hint", overflow="fold", width=natural["hint"])
        elif n in ("claim", "verdict"):
            t.add_column(n, no_wrap=True)
        else:
            t.add_column(n, justify="right", no_wrap=True)
    for row in rows:
        t.add_row(*(row[n] for n in names))
    return t


def _fmt_slope(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def details(report: RunReport, *, verbose: bool = False) -> list[RenderableType]:
    """What went wrong, one block per identity that did not meet its ``expect``."""
    out: list[RenderableType] = []
    for r in report.results:
        note = r.tol_note()
        noted = any(c.note for c in r.claims)
        if r.ok and not verbose and not noted and not r.warnings:
            if note:  # a looser tol is always shown
                out.append(Text(f"{VERDICT[r.status]} {terminal(r.id)}: {note}", style="yellow"))
            continue
        head = Text()
        head.append(f"{VERDICT[r.status]} ", style=STYLE[r.status])
        head.append(terminal(r.id), style="bold")
        where = r.file if r.line is None else f"{r.file}:{r.line}"
        head.append(f"  ({terminal(where)})")
        lines: list[RenderableType] = [head]
        if note:
            lines.append(Text(f"  {note}", style="yellow"))
        warnings = [
            Text(f"  {terminal(x, newlines=True)}", style="yellow") for x in warning_lines(r)
        ]
        if r.ok:
            lines.extend(
                Text(f"  {terminal(x, newlines=True)}")
                for c in r.claims
                if verbose or c.note
                for x in claim_lines(c)
            )
            out.append(Group(*lines, *warnings))
            continue
        if r.status == "xpassed":
            lines.append(
                Text(
                    "  expected to fail (expect: fail), but every claim passed: the identity is "
                    "right after all, or its wrong variant is too close to the truth"
                )
            )
        for c in r.claims:
            if c.status == "passed":
                continue
            lines.append(Text(f"  {terminal(c.message, newlines=True)}"))
            if c.hint:
                lines.append(Text(f"    hint: {terminal(c.hint, newlines=True)}", style="yellow"))
            if c.note:
                lines.append(Text(f"    note: {terminal(c.note, newlines=True)}", style="yellow"))
            if c.agreement:
                lines.append(Text(f"    witnesses: {c.agreement}"))
            for w in c.witnesses:
                said = w.message or (
                    f"max abs err {w.max_abs_err:.3g}" if w.max_abs_err is not None else ""
                )
                said = f" ({terminal(said, newlines=True)})" if said else ""
                lines.append(Text(f"    {w.name}: {w.verdict}{said}", style="dim"))
        if not r.claims and r.message:
            lines.append(Text(f"  {terminal(r.message, newlines=True)}"))
        lines.extend(warnings)
        if r.status in ("failed", "xpassed") or (r.status == "error" and r.claims):
            lines.append(
                Text(
                    "  reproduce: "
                    + terminal(reproduce(r, report.settings), newlines=True),
                    style="dim",
                )
            )
            if r.claims and r.file != INLINE_FILE:  # show reads files (or stdin)
                command = terminal(show_command(r, report.settings), newlines=True)
                lines.append(Text(f"  show: {command}", style="dim"))
        out.append(Group(*lines))
    return out


def summary_line(report: RunReport) -> Text:
    s = report.summary
    parts = [
        (f"{s['passed']} passed", "green" if s["passed"] else ""),
        (f"{s['failed']} failed", "bold red" if s["failed"] else ""),
        (f"{s['xfailed']} xfailed", "green" if s["xfailed"] else ""),
        (f"{s['xpassed']} xpassed", "bold red" if s["xpassed"] else ""),
        (f"{s['error']} errors", "bold magenta" if s["error"] else ""),
    ]
    line = Text()
    for i, (text, style) in enumerate(parts):
        if i:
            line.append(", ")
        line.append(text, style=style)
    line.append(f" in {report.seconds:.2f}s ({draws(report)})")
    if report.shard:
        line.append(f" (shard {report.shard})")
    if report.stopped:
        line.append(f"; {terminal(report.stopped)}", style="bold yellow")
    for warning in report.warnings:
        line.append(f"; warning: {terminal(warning)}", style="bold red")
    if report.witnesses:
        line.append(f" (also judged by {' and '.join(report.witnesses)})")
    again = rechecked(report)
    if again:
        line.append(f"; {again}", style="yellow")
    if not report.complete:
        line.append(" (interrupted: incomplete)", style="bold yellow")
    return line


def renderables(
    report: RunReport, verbosity: int = 0, width: int | None = None
) -> list[RenderableType]:
    """What the terminal shows: -2 the summary line; -1 also what went wrong; 0 also the
    table (fitted to ``width`` columns when given); 1 also each passing identity's claims
    against their tolerance."""
    out: list[RenderableType] = []
    if verbosity >= 0:
        out.append(table(report, width))
    if verbosity >= -1:
        out.extend(details(report, verbose=verbosity > 0))
    out.append(summary_line(report))
    return out


def render(report: RunReport, width: int = 120) -> str:
    """The terminal view as plain text (no colours), e.g. for ``--report table:FILE``."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False, soft_wrap=True)
    for block in renderables(report):
        console.print(block)
    return out.getvalue()
