"""A Markdown summary (GitHub-flavoured) fit for a pull-request comment or a step summary:
the counts, a table of what did not meet its expect, and every claim in a folded table.

User text is escaped for table cells by :func:`matgrad.report.escape.markdown`.
"""

from __future__ import annotations

from matgrad.report.escape import markdown as md
from matgrad.report.formula import claim_text
from matgrad.report.text import (
    claim_status,
    draws,
    headline,
    identity_lines,
    notes,
    num,
    rechecked,
    verdict,
    where,
    worst_line,
)
from matgrad.results import IdentityResult, RunReport
from matgrad.settings import Settings


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _meta(report: RunReport) -> str:
    parts = [f"matgrad {report.matgrad}"]
    if report.torch:
        parts.append(f"torch {report.torch}")
    parts += [report.device, report.dtype, f"seed {report.seed}", draws(report)]
    if report.shard:
        parts.append(f"shard {report.shard}")
    return md(", ".join(parts))


def _head(report: RunReport) -> list[str]:
    s = report.summary
    ok = report.complete and all(r.ok for r in report.results)
    lines = [
        f"## {'✅' if ok else '❌'} matgrad: {md(headline(report))}",
        "",
        _row(["passed", "failed", "xfailed", "xpassed", "errors", "time"]),
        "|---:|---:|---:|---:|---:|---:|",
        _row(
            [str(s[k]) for k in ("passed", "failed", "xfailed", "xpassed", "error")]
            + [f"{report.seconds:.2f} s"]
        ),
        "",
        _meta(report),
    ]
    if report.stopped:
        lines += ["", f"> {md(report.stopped)}"]
    for warning in report.warnings:
        lines += ["", f"> **warning**: {md(warning)}"]
    loose = [r for r in report.results if r.tol_note()]
    if loose:
        lines += ["", "Identities with their own, looser tol:", ""]
        lines += [f"- {md(r.id)}: {md(r.tol_note() or '')}" for r in loose]
    if not report.complete:
        lines += ["", "> **interrupted**: the run is incomplete"]
    again = rechecked(report)
    if again:
        lines += ["", f"> {md(again)}"]
    for r in report.results:
        if r.ok and r.warnings:  # the others show their warnings in their row below
            head = f"> **warning** {md(r.id)} ({md(where(r))})"
            lines += ["", *(f"{head}: {md(w)}" for w in r.warnings)]
    return lines


def _notes(report: RunReport) -> list[str]:
    noted = notes(report)
    if not noted:
        return []
    lines = ["", "### Notes", "", _row(["identity", "claim", "note"]), "|---|---|---|"]
    lines += [_row([md(r.id), md(c.label), md(c.note or "")]) for r, c in noted]
    return lines


PROBLEM_HEADER = [
    "",
    "### Did not meet their expect",
    "",
    _row(["identity", "where", "verdict", "details"]),
    "|---|---|---|---|",
]


def _problem_row(r: IdentityResult, settings: Settings) -> str:
    details = "\n".join(identity_lines(r, settings))
    return _row([md(r.id), md(where(r)), verdict(r.status), md(details)])


def _claim_rows(r: IdentityResult) -> list[str]:
    f = md(f"f = {r.f}") if r.f else "—"
    if not r.claims:
        return [_row([md(r.id), "—", verdict(r.status), "—", "—", "—", f, "—"])]
    rows = []
    for i, c in enumerate(r.claims):
        rows.append(
            _row(
                [
                    md(r.id) if i == 0 else "",
                    md(c.label),
                    verdict(claim_status(r, c)),
                    num(c.max_abs_err),
                    num(c.max_ratio, ".2g"),
                    md(worst_line(c) or ""),
                    f if i == 0 else "",
                    md(claim_text(c.kind, c.var, c.expr)) if c.expr else "—",
                ]
            )
        )
    return rows


def _all(report: RunReport) -> list[str]:
    n_claims = sum(max(len(r.claims), 1) for r in report.results)
    lines = [
        "",
        f"<details><summary>All {len(report.results)} identities ({n_claims} rows)</summary>",
        "",
        _row(["identity", "claim", "verdict", "max abs err", "err / tol", "worst entry", "f",
              "claimed"]),
        "|---|---|---|---:|---:|---|---|---|",
    ]
    for r in report.results:
        lines.extend(_claim_rows(r))
    lines += ["", "</details>"]
    return lines


def _size(lines: list[str]) -> int:
    return len(("\n".join(lines) + "\n").encode("utf-8"))


def render(report: RunReport, max_bytes: int | None = None) -> str:
    """The summary; with ``max_bytes``, the folded table and then problem rows are dropped
    (and counted in a note) until it fits. Returns "" when not even the counts fit."""
    lines = _head(report)
    bad = [r for r in report.results if not r.ok]
    problems = [_problem_row(r, report.settings) for r in bad]
    full = lines + (PROBLEM_HEADER + problems if problems else []) + _notes(report) + (
        _all(report) if report.results else []
    )
    if max_bytes is None or _size(full) <= max_bytes:
        return "\n".join(full) + "\n"
    note = "the full list of claims is in the JSON or HTML report"
    if problems:
        out = lines + PROBLEM_HEADER
        shown = 0
        for row in problems:
            left = len(problems) - shown - 1
            tail = ["", f"_{left} more not shown; {note}_"] if left else ["", f"_{note}_"]
            if _size([*out, row, *tail]) > max_bytes:
                break
            out.append(row)
            shown += 1
        left = len(problems) - shown
        out += ["", f"_{left} more not shown; {note}_"] if left else ["", f"_{note}_"]
    else:
        out = [*lines, "", f"_{note}_"]
    if _size(out) <= max_bytes:
        return "\n".join(out) + "\n"
    return "\n".join(lines) + "\n" if _size(lines) <= max_bytes else ""
