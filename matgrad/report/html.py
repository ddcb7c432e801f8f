"""One self-contained HTML page: the summary, every claim in a table with its status colour
and a small log-scale plot of its error against its tolerance, each identity's LaTeX as
MathML, and what went wrong where something did.

Nothing is loaded at view time (no script, no font, no stylesheet: a Content-Security-Policy
forbids it), so the file can be archived as a CI artifact and opened anywhere. Every string
from a result is escaped (:func:`matgrad.report.escape.html`); the MathML that latex2mathml
produces is parsed and rebuilt from an allowlist of MathML elements and attributes, and LaTeX
that does not convert is shown as text.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from latex2mathml.converter import convert as _latex_to_mathml

from matgrad.report import formula
from matgrad.report.escape import html as esc
from matgrad.report.text import (
    STATUSES,
    XPASS_TEXT,
    claim_status,
    counts,
    draws,
    headline,
    num,
    rechecked,
    reproduce,
    tolerance,
    verdict,
    where,
)
from matgrad.results import ClaimResult, IdentityResult, RunReport, fmt_number
from matgrad.settings import Settings


def _status(status: str) -> str:
    return status if status in STATUSES else "error"


# ---- LaTeX -> MathML ----------------------------------------------------------------------

MATHML_NS = "http://www.w3.org/1998/Math/MathML"
MATHML_ELEMENTS = frozenset(
    "math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mover munder "
    "munderover mtable mtr mtd mlabeledtr mstyle mpadded mphantom menclose merror mfenced "
    "mmultiscripts mprescripts none semantics".split()
)
MATHML_ATTRIBUTES = frozenset(
    "display mathvariant stretchy fence separator separators lspace rspace accent accentunder "
    "linethickness columnalign columnspacing columnlines rowalign rowspacing rowlines frame "
    "framespacing equalrows equalcolumns displaystyle scriptlevel width height depth minsize "
    "maxsize movablelimits symmetric largeop form notation open close align".split()
)


class _Refused(Exception):
    pass


def _rebuild(el: ET.Element, out: list[str]) -> None:
    tag = el.tag.rpartition("}")[2]
    if tag not in MATHML_ELEMENTS:
        raise _Refused(tag)
    attrs = []
    for name, value in el.attrib.items():
        name = name.rpartition("}")[2]
        if name not in MATHML_ATTRIBUTES:
            raise _Refused(name)
        attrs.append(f' {name}="{esc(value)}"')
    if tag == "math":
        attrs.insert(0, f' xmlns="{MATHML_NS}"')
    out.append(f"<{tag}{''.join(attrs)}>")
    if el.text:
        out.append(esc(el.text))
    for child in el:
        _rebuild(child, out)
        if child.tail:
            out.append(esc(child.tail))
    out.append(f"</{tag}>")


def mathml(latex: str) -> str | None:
    """``latex`` as a MathML ``<math>`` element, or None when it cannot be converted safely."""
    try:
        tree = ET.fromstring(_latex_to_mathml(latex, display="block"))
        out: list[str] = []
        _rebuild(tree, out)
    except Exception:  # _Refused, ParseError, and whatever latex2mathml raises on odd input
        return None
    return "".join(out)


def math_block(latex: str) -> str:
    m = mathml(latex)
    if m is None:
        return f'<pre class="latex" title="LaTeX (not rendered)">{esc(latex)}</pre>'
    return f'<div class="math" title="{esc(latex)}">{m}</div>'


# ---- plots --------------------------------------------------------------------------------

LOG_MIN, LOG_MAX = -12, 12  # the plotted range of err / tolerance, in decades


def _x(ratio: float, width: float, pad: float) -> float:
    d: float
    if ratio <= 0:
        d = LOG_MIN
    elif math.isinf(ratio):
        d = LOG_MAX
    else:
        d = min(max(math.log10(ratio), LOG_MIN), LOG_MAX)
    return round(pad + (d - LOG_MIN) / (LOG_MAX - LOG_MIN) * (width - 2 * pad), 1)


def _ratio_text(c: ClaimResult) -> str:
    parts = []
    if c.max_ratio is not None:
        parts.append(f"max err / tolerance = {c.max_ratio:.3g}")
    if c.max_abs_err is not None:
        parts.append(f"max abs err {c.max_abs_err:.3g}")
    if tolerance(c):
        parts.append(tolerance(c))
    return "; ".join(parts)


def claim_plot(c: ClaimResult) -> str:
    """A strip from 1e-12 to 1e12 times the tolerance (log scale): a dot at the claim's worst
    err / tolerance, the tolerance as a line; left of it passes."""
    if c.max_ratio is None:
        return '<span class="noplot">—</span>'
    w, h, pad = 150, 18, 5
    tol = _x(1.0, w, pad)
    x = _x(c.max_ratio, w, pad)
    label = esc(_ratio_text(c))
    cls = "pass" if c.status == "passed" else "fail"
    return (
        f'<svg class="plot" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{label}"><title>{label}</title>'
        f'<rect x="{pad}" y="7" width="{tol - pad}" height="4" class="ok-zone"/>'
        f'<rect x="{tol}" y="7" width="{w - pad - tol}" height="4" class="bad-zone"/>'
        f'<line x1="{tol}" y1="1" x2="{tol}" y2="{h - 1}" class="tol"/>'
        f'<circle cx="{x}" cy="9" r="4" class="{cls}"/></svg>'
    )


def _decade(d: int) -> str:
    # the end bins also hold what lies beyond the plotted range (0, inf)
    if d <= LOG_MIN:
        return f"less than 1e{d + 1} times"
    if d >= LOG_MAX - 1:
        return f"1e{d} or more times"
    return f"1e{d} to 1e{d + 1} times"


def overview_plot(claims: Iterable[ClaimResult]) -> str:
    """How many claims sit in each decade of err / tolerance, passing ones green."""
    bins: dict[int, list[int]] = {}
    for c in claims:
        if c.max_ratio is None:
            continue
        r = c.max_ratio
        d = LOG_MIN if r <= 0 else LOG_MAX if math.isinf(r) else math.floor(math.log10(r))
        d = min(max(d, LOG_MIN), LOG_MAX - 1)
        ok, bad = bins.setdefault(d, [0, 0])
        bins[d] = [ok + (c.status == "passed"), bad + (c.status != "passed")]
    w, h, left, right, bottom, top = 660, 150, 30, 30, 28, 12
    span = LOG_MAX - LOG_MIN
    bw = (w - left - right) / span
    peak = max((a + b for a, b in bins.values()), default=0)
    parts = [
        f'<svg class="overview" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="claims per decade of max err / tolerance">'
        f"<title>claims per decade of max err / tolerance (log scale)</title>",
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" class="axis"/>',
    ]
    for d in range(LOG_MIN, LOG_MAX + 1, 3):
        x = round(left + (d - LOG_MIN) * bw, 1)
        label = "1" if d == 0 else f"1e{d}"
        parts.append(
            f'<line x1="{x}" y1="{h - bottom}" x2="{x}" y2="{h - bottom + 4}" class="axis"/>'
        )
        parts.append(f'<text x="{x}" y="{h - bottom + 16}" class="tick">{label}</text>')
    for d, (ok, bad) in sorted(bins.items()):
        x = round(left + (d - LOG_MIN) * bw + 1, 1)
        y: float = h - bottom
        for n, cls in ((ok, "pass"), (bad, "fail")):
            if not n:
                continue
            bh = round(n / peak * (h - bottom - top), 1)
            y = round(y - bh, 1)
            what = f"{n} {'passing' if cls == 'pass' else 'failing'} claim{'s' if n != 1 else ''}"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{round(bw - 2, 1)}" height="{bh}" class="{cls}">'
                f"<title>{what} at {_decade(d)} the tolerance</title></rect>"
            )
    tol = round(left - LOG_MIN * bw, 1)
    parts.append(f'<line x1="{tol}" y1="{top - 6}" x2="{tol}" y2="{h - bottom}" class="tol"/>')
    parts.append(f'<text x="{tol + 4}" y="{top + 2}" class="tick start">tolerance</text>')
    parts.append(
        f'<text x="{w - right}" y="{h - 2}" class="tick end">max err / tolerance (log scale)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


# ---- the page -----------------------------------------------------------------------------

CSS = """
:root { color-scheme: light; --pass: #1a7f37; --fail: #cf222e; --error: #8250df; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
  max-width: 1200px; padding: 0 1em; color: #1f2328; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
.meta { color: #59636e; }
.counts span { display: inline-block; padding: .2em .7em; margin: 0 .4em .4em 0;
  border-radius: 1em; background: #eef1f4; }
table { border-collapse: collapse; width: 100%; margin: 1em 0; }
th, td { border-bottom: 1px solid #d1d9e0; padding: .3em .5em; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; }
td { overflow-wrap: anywhere; }
.wide { overflow-x: auto; }
table.worst { width: auto; }
td.claim { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; min-width: 4.5em; text-align: center; border-radius: .3em;
  color: #fff; font-weight: 600; font-size: .85em; padding: .05em .4em; }
.badge.passed, .badge.xfailed { background: var(--pass); }
.badge.failed, .badge.xpassed { background: var(--fail); }
.badge.error { background: var(--error); }
tr.failed td, tr.xpassed td { background: #ffebe9; }
tr.error td { background: #fbefff; }
.identity { border: 1px solid #d1d9e0; border-left: 6px solid var(--pass); border-radius: .4em;
  padding: .6em 1em; margin: 1em 0; }
.identity.failed, .identity.xpassed { border-left-color: var(--fail); }
.identity.error { border-left-color: var(--error); }
.identity h3 { margin: .2em 0; font-size: 1.1em; }
.math { overflow-x: auto; padding: .3em 0; font-size: 1.15em; }
pre, code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: .5em;
  border-radius: .3em; margin: .3em 0; }
.msg { white-space: pre-wrap; word-break: break-word; }
.hint { color: #9a6700; }
svg .ok-zone { fill: #dafbe1; } svg .bad-zone { fill: #ffebe9; }
svg .tol { stroke: #1f2328; stroke-width: 1.5; }
svg .pass { fill: var(--pass); } svg .fail { fill: var(--fail); }
svg .axis { stroke: #59636e; } svg .tick { font-size: 10px; fill: #59636e; text-anchor: middle; }
svg .tick.start { text-anchor: start; } svg .tick.end { text-anchor: end; }
svg.overview { max-width: 100%; height: auto; }
.formulas { overflow-x: auto; padding: .2em 0; font-size: 1.1em; }
.formulas math { margin: .3em 0; }
@media (max-width: 700px) {
  body { margin: 1em auto; padding: 0 .5em; }
  th.opt, td.opt { display: none; }
  td.claim { white-space: normal; }
}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _counts(report: RunReport) -> str:
    s = report.summary
    names = (("passed", "passed"), ("failed", "failed"), ("xfailed", "xfailed"),
             ("xpassed", "xpassed"), ("error", "errors"))
    chips = "".join(
        f'<span class="{k}"><b>{s[k]}</b> {label}</span>' for k, label in names
    )
    return f'<p class="counts">{chips}<span>{report.seconds:.2f} s</span></p>'


def _meta(report: RunReport) -> str:
    parts = [f"matgrad {report.matgrad}", f"torch {report.torch or '—'}", report.device,
             report.dtype, f"seed {report.seed}"]
    if report.shard:
        parts.append(f"shard {report.shard}")
    return '<p class="meta">' + esc(" · ".join(parts)) + "</p>"


def _claim_rows(results: list[IdentityResult]) -> str:
    rows = []
    for n, r in enumerate(results):
        st = _status(r.status)
        link = f'<a href="#identity-{n}">{esc(r.id)}</a>'
        badge = f'<span class="badge {st}">{esc(verdict(r.status))}</span>'
        title = esc(r.title or "")
        if not r.claims:
            rows.append(
                f'<tr class="{st}" data-identity="{esc(r.id)}"><td>{link}</td>'
                f'<td class="opt">{title}</td><td>—</td><td>{badge}</td><td class="num">—</td>'
                f'<td class="num opt">—</td><td class="num">—</td>'
                f'<td class="opt"><span class="noplot">—</span></td></tr>'
            )
            continue
        for c in r.claims:
            cst = claim_status(r, c)
            badge = f'<span class="badge {cst}">{esc(verdict(cst))}</span>'
            rows.append(
                f'<tr class="{cst}" data-identity="{esc(r.id)}" data-claim="{esc(c.label)}" '
                f'data-verdict="{esc(verdict(cst))}">'
                f'<td>{link}</td><td class="opt">{title}</td>'
                f'<td class="claim"><span class="{cst}">{esc(c.label)}</span></td><td>{badge}</td>'
                f'<td class="num">{esc(num(c.max_abs_err))}</td>'
                f'<td class="num opt">{esc(num(c.max_rel_err))}</td>'
                f'<td class="num">{esc(num(c.max_ratio, ".2g"))}</td>'
                f'<td class="opt">{claim_plot(c)}</td></tr>'
            )
    return "\n".join(rows)


def _worst_table(c: ClaimResult) -> str:
    if c.worst is None or c.status != "failed":
        return ""
    w = c.worst
    diff = abs(w.claimed - w.autograd)
    return (
        '<div class="wide"><table class="worst"><tr><th>worst entry</th><th>trial</th>'
        "<th>autograd</th><th>claimed</th><th>|difference|</th></tr>"
        f'<tr><td>{esc(w.index)}</td><td class="num">{w.trial}</td>'
        f'<td class="num">{esc(fmt_number(w.autograd, ".10g"))}</td>'
        f'<td class="num">{esc(fmt_number(w.claimed, ".10g"))}</td>'
        f'<td class="num">{esc(f"{diff:.3g}")}</td></tr></table></div>'
    )


def _formulas(r: IdentityResult) -> str:
    """f and every claim as MathML generated from the expressions that were checked."""
    blocks = []
    if r.f:
        blocks.append(formula.function(r.f))
    blocks.extend(formula.claim(c.kind, c.var, c.expr) for c in r.claims if c.expr)
    if not blocks:
        return ""
    return '<div class="formulas">' + "".join(blocks) + "</div>"


def _identity(n: int, r: IdentityResult, settings: Settings) -> str:
    st = _status(r.status)
    out = [
        f'<article class="identity {st}" id="identity-{n}">',
        f'<h3><span class="badge {st}">{esc(verdict(r.status))}</span> {esc(r.id)}</h3>',
    ]
    if r.title:
        out.append(f"<p>{esc(r.title)}</p>")
    if r.latex:
        out.append(math_block(r.latex))
    out.append(_formulas(r))
    facts = [f"<code>{esc(where(r))}</code>", f"expect {esc(r.expect)}"]
    if r.trials is not None:
        facts.append(f"{r.trials} trials")
    if r.source:
        facts.append(f"source: {esc(r.source)}")
    out.append(f'<p class="meta">{" · ".join(facts)}</p>')
    out.extend(f'<p class="hint">warning: {esc(w)}</p>' for w in r.warnings)
    if r.status == "xpassed":
        out.append(f'<p class="msg">{esc(XPASS_TEXT)}</p>')
    if r.claims:
        out.append("<ul>")
        for c in r.claims:
            if c.status == "passed":
                text = f"{c.label}: passed — {_ratio_text(c)}" if _ratio_text(c) else ""
                out.append(f'<li><span class="msg">{esc(text or c.label + ": passed")}</span>')
                if c.note:
                    out.append(f'<div class="hint">note: {esc(c.note)}</div>')
            else:
                out.append(f'<li><span class="msg">{esc(c.message or c.label)}</span>')
                out.append(_worst_table(c))
                if c.hint:
                    out.append(f'<div class="hint">hint: {esc(c.hint)}</div>')
                if c.note:
                    out.append(f'<div class="hint">note: {esc(c.note)}</div>')
            out.append("</li>")
        out.append("</ul>")
    elif r.message:
        out.append(f'<pre class="msg">{esc(r.message)}</pre>')
    if not r.ok and (r.claims or r.status != "error"):
        out.append(f"<p>reproduce: <code>{esc(reproduce(r, settings))}</code></p>")
    out.append("</article>")
    return "\n".join(out)


def render(report: RunReport) -> str:
    claims = [c for r in report.results for c in r.claims]
    notes = []
    if report.stopped:
        notes.append(f'<p class="msg"><b>{esc(report.stopped)}</b></p>')
    for warning in report.warnings:
        notes.append(f'<p class="msg"><b>warning: {esc(warning)}</b></p>')
    for r in report.results:
        note = r.tol_note()
        if note:
            notes.append(f'<p class="msg">{esc(r.id)}: {esc(note)}</p>')
    if not report.complete:
        notes.append('<p class="msg"><b>interrupted: the run is incomplete</b></p>')
    again = rechecked(report)
    if again:
        notes.append(f'<p class="hint">{esc(again)}</p>')
    problems = [(n, r) for n, r in enumerate(report.results) if not r.ok]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>matgrad: {esc(headline(report))}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>matgrad: {esc(headline(report))}</h1>",
            _meta(report),
            _counts(report),
            *notes,
            '<section id="overview"><h2>Error against tolerance</h2>',
            "<p>Each claim's largest entrywise error divided by its tolerance "
            "(atol·scale + rtol·|autograd|): at most 1 passes.</p>",
            overview_plot(claims),
            "</section>",
            '<section id="claims"><h2>Claims</h2>',
            '<div class="wide"><table><thead><tr><th>identity</th><th class="opt">title</th>'
            '<th>claim</th><th>verdict</th><th>max abs err</th><th class="opt">max rel err'
            '</th><th>err / tol</th><th class="opt">err vs tolerance (log)</th></tr></thead>',
            "<tbody>",
            _claim_rows(report.results),
            "</tbody></table></div></section>",
            '<section id="problems"><h2>Did not meet their expect</h2>',
            "\n".join(_identity(n, r, report.settings) for n, r in problems) or "<p>None.</p>",
            "</section>",
            '<section id="identities"><h2>Identities</h2>',
            "\n".join(
                _identity(n, r, report.settings) for n, r in enumerate(report.results) if r.ok
            )
            or "<p>None.</p>",
            "</section>",
            f'<footer class="meta">{esc(counts(report))} ({esc(draws(report))})</footer>',
            "</body>",
            "</html>",
            "",
        ]
    )
