"""Rendering of ``matgrad show``: one trial's variables and, per claim, autograd, the claim and
their difference side by side. Small matrices are printed in full; large ones are summarised
and shown as a window around the entry of interest. The worst entry is bracketed (and
highlighted where the terminal has colour). No torch here."""

from __future__ import annotations

import math

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from matgrad.report.escape import terminal
from matgrad.report.table import STYLE
from matgrad.report.text import VERDICT
from matgrad.results import ClaimView, Matrix, Number, View, fmt_number

FULL_ROWS = 8  # matrices with at most this many rows and columns are printed in full
FULL_VECTOR = 16  # vectors up to this length are printed in full
WINDOW = 6  # otherwise: a window this wide around the entry of interest
MARK = "bold white on red"


def _num(x: Number) -> str:
    if isinstance(x, complex):
        if x.imag == 0:
            return _num(x.real)
        return fmt_number(x, ".4g")
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.4g}"


def _grid(m: Matrix) -> tuple[int, int]:
    """Rows and columns as displayed: a scalar is 1 x 1, a vector [n] a column."""
    if len(m.shape) == 0:
        return 1, 1
    if len(m.shape) == 1:
        return m.shape[0], 1
    return m.shape[0], m.shape[1]


def _window(n: int, focus: int, full: int) -> range:
    if n <= full:
        return range(n)
    start = min(max(0, focus - WINDOW // 2), n - WINDOW)
    return range(start, start + WINDOW)


def matrix_text(m: Matrix, worst: list[int] | None = None) -> Text:
    """A matrix as aligned text; the ``worst`` entry is bracketed and highlighted."""
    rows, cols = _grid(m)
    vector = len(m.shape) <= 1 or cols == 1
    full = FULL_VECTOR if vector else FULL_ROWS
    w = [*worst, 0, 0][:2] if worst else [0, 0]
    if len(m.shape) == 1:
        w = [w[0], 0]
    rr = _window(rows, w[0], full)
    cc = _window(cols, w[1], full)
    cells = {}
    for i in rr:
        for j in cc:
            idx = [i, j][: len(m.shape)] if len(m.shape) == 2 else [i][: len(m.shape)]
            cells[i, j] = _num(m.values[m.flat(idx)])
    width = max((len(c) for c in cells.values()), default=1)
    out = Text(no_wrap=True)
    summarised = len(rr) < rows or len(cc) < cols
    if summarised:
        # complex entries are summarised by their moduli
        finite = [abs(v) if isinstance(v, complex) else v for v in m.values]
        finite = [v for v in finite if math.isfinite(v)]
        norm = math.sqrt(sum(v * v for v in finite))
        lo = min(finite, default=float("nan"))
        hi = max(finite, default=float("nan"))
        out.append(
            f"{'x'.join(str(d) for d in m.shape)}: min {_num(lo)}, max {_num(hi)}, "
            f"norm {_num(norm)}\n",
            style="dim",
        )
        out.append(
            f"rows {rr.start}-{rr.stop - 1}, cols {cc.start}-{cc.stop - 1}:\n", style="dim"
        )
    for n, i in enumerate(rr):
        for j in cc:
            cell = cells[i, j].rjust(width)
            is_worst = worst is not None and [i, j][: max(1, len(m.shape))] == (
                [w[0], w[1]][: max(1, len(m.shape))]
            ) and len(m.shape) > 0
            if is_worst:
                out.append(f"[{cell}]", style=MARK)
            else:
                out.append(f" {cell} ")
        if n < len(rr) - 1:
            out.append("\n")
    return out


def _longest(text: Text) -> int:
    return max((len(line) for line in text.plain.split("\n")), default=0)


def _header(v: View) -> list[RenderableType]:
    head = Text()
    head.append(terminal(v.id), style="bold")
    head.append(f"  ({terminal(f'{v.file}:{v.line}')})")
    lines: list[RenderableType] = [head]
    if v.title:
        lines.append(Text(f"  {terminal(v.title)}"))
    if v.latex:
        lines.append(Text(f"  latex: {terminal(v.latex)}"))
    if v.source:
        lines.append(Text(f"  source: {terminal(v.source)}"))
    lines.append(
        Text(f"  seed {v.seed}, trial {v.trial} of {v.trials} (0-based), {v.dtype}", style="dim")
    )
    return lines


def _variables(v: View) -> RenderableType:
    t = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
    t.add_column("variable", no_wrap=True)
    t.add_column(f"value (trial {v.trial})")
    for name, domain, m in v.variables:
        shape = "[" + ", ".join(str(d) for d in m.shape) + "]"
        t.add_row(Text(f"{terminal(name)} {shape}\n{terminal(domain)}"), matrix_text(m))
    if v.f is not None:
        shape = "[" + ", ".join(str(d) for d in v.f.shape) + "]"
        t.add_row(Text(f"f {shape}"), matrix_text(v.f))
    return t


def _claim(c: ClaimView, width: int | None) -> list[RenderableType]:
    head = Text()
    head.append(terminal(c.label), style="bold")
    verdict = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}[c.status]
    head.append(f"  {verdict}", style=STYLE[c.status])
    if c.convention:
        head.append(f"  (convention: {c.convention})")
    if c.agreement:
        head.append(f"  witnesses: {c.agreement}")
    out: list[RenderableType] = [head]
    if c.message:
        out.append(Text(f"  {terminal(c.message, newlines=True)}"))
    if c.hint:
        out.append(Text(f"  hint: {terminal(c.hint, newlines=True)}", style="yellow"))
    if c.note:
        out.append(Text(f"  note: {terminal(c.note, newlines=True)}", style="yellow"))
    for line in c.witnesses:
        out.append(Text(f"  {terminal(line, newlines=True)}", style="dim"))
    if c.direction is not None:
        t = Table(box=None, show_header=True, header_style="bold", padding=(0, 2, 0, 0))
        t.add_column(Text(f"d{terminal(c.var)} (direction)"))
        t.add_row(matrix_text(c.direction))
        out.append(t)
    if c.claimed is None or c.autograd is None or c.difference is None:
        return out
    reference = c.reference_name
    if c.convention and c.convention != "entrywise":
        reference = f"{reference}, {c.convention}"  # the gradient in the identity's convention
    cols = [
        (reference, c.autograd),
        (c.claimed_name, c.claimed),
        (f"{c.claimed_name} - {c.reference_name}", c.difference),
    ]
    if c.fd is not None:
        cols.append(("finite differences", c.fd))
    texts = [(name, matrix_text(m, c.worst)) for name, m in cols]
    need = sum(max(len(name), _longest(text)) + 3 for name, text in texts) + 1
    if width is None or need <= width:
        t = Table(show_header=True, header_style="bold", padding=(0, 1))
        for name, _ in texts:
            t.add_column(Text(name), no_wrap=True)
        t.add_row(*[text for _, text in texts])
    else:  # too wide for side by side: one above the other
        t = Table(show_header=False, padding=(0, 1), show_lines=True)
        t.add_column(no_wrap=True, style="bold")
        t.add_column(no_wrap=True)
        for name, text in texts:
            t.add_row(Text(name), text)
    out.append(t)
    if c.worst is not None and c.max_abs_err is not None:
        k = c.claimed.flat(c.worst)
        out.append(
            Text(
                f"  worst entry {c.worst}: {c.reference_name} {_num(c.autograd.values[k])}, "
                f"{c.claimed_name} {_num(c.claimed.values[k])}, difference "
                f"{_num(c.difference.values[k])}"
                + (f", finite differences {_num(c.fd.values[k])}" if c.fd is not None else "")
            )
        )
    return out


def render(v: View, width: int | None = None) -> list[RenderableType]:
    """The blocks to print, in order; matrices go side by side when they fit in ``width``."""
    blocks: list[RenderableType] = [Group(*_header(v))]
    if v.variables:
        blocks.append(_variables(v))
    for c in v.claims:
        blocks.append(Group(*_claim(c, width)))
    tail = Text()
    tail.append(VERDICT.get(v.status, v.status.upper()), style=STYLE.get(v.status, ""))
    if v.message and not v.claims:
        tail.append(f"  {terminal(v.message, newlines=True)}")
    blocks.append(tail)
    spaced: list[RenderableType] = []
    for i, block in enumerate(blocks):
        spaced += [block] if i == 0 else [Text(""), block]
    return spaced
