"""The degeneracy guard: draws near a point where the maths is not differentiable.

A few functions are not differentiable (or have a derivative that blows up) at special
arguments: the eigen-decomposition at repeated eigenvalues, the inverse and its relatives at
singular matrices. Random draws land near such points rarely, but when they do a right claim can
fail and a wrong one can pass by luck. So, before any derivative is taken, the first argument of
every such function (in ``let``, ``f`` and the claims) is measured on every trial. What is
measured is the ``sensitive`` fact on the function's registry entry
(``matgrad.lang.functions``); today:

* ``eigvecsh``: the smallest gap between two eigenvalues of the symmetric part, relative to
  the largest eigenvalue in size (``eigvalsh`` is not measured: the derivative of a simple
  eigenvalue exists even where other eigenvalues repeat, as for the top eigenvalue of a
  rank-one matrix, and its autograd formula has no 1/gap term). Where every use of the
  eigenvectors picks fixed columns (``col(eigvecsh(M), j)``, ``entry(eigvecsh(M), i, j)``
  with constant indices, directly or through a ``let`` that holds ``eigvecsh(M)``), only the
  gaps next to those eigenvalues are measured: eigenvector j is differentiable wherever
  eigenvalue j is simple, whatever the others do (the top eigenvector of a matrix whose lower
  eigenvalues repeat, such as ``outer(a, a) + ...`` of low rank). Any other use (the whole
  matrix, a product, a column chosen any other way) measures every gap, as before;
* ``inv``, ``solve`` (its matrix), ``det``, ``logdet``: the 2-norm condition number;
* ``pinv``: the condition number over the singular values above rounding level
  (``cond_nonzero``: pinv is smooth where the rank is constant, so exact zeros of the maths are
  fine; a tiny nonzero singular value is not);
* ``lu``: how far partial pivoting is from a tie between two candidate pivots (the pivot
  matrix P is piecewise constant and the factors jump at a tie) and the condition of U;
  ``lu_solve``: the condition of the triangles it reads;
* ``eig``, ``eigvals``: the smallest distance between two eigenvalues, between two real parts
  that decide their order, the eigenvector gauge's distance to a tie and the condition of the
  eigenvectors (``matgrad.lang.fn_eig``);
* piecewise and order functions (``relu``, ``abs``, ``maximum``, ``amax``, ``sort``, ...) and
  comparisons (``x > 0``): the distance of their arguments to a kink or a tie, relative to their
  size (``kink``: each function's ``margin`` on its registry entry). An entry exactly at a kink
  on the draw (a masked zero) is structural and not counted.

A trial that is too close is drawn again (only that trial, from a generator derived from the
identity's seed, so every other trial keeps its draw and an identity that is never near a
degenerate point keeps all of its draws). A trial still degenerate after :data:`MAX_REDRAWS`
redraws means the identity itself sits on the degenerate set (e.g. ``inv(X @ X.T)`` with a wide
``X``): the check is refused with the measured gap or condition number, never a flaky verdict.

Arguments that are a variable whose domain already guarantees the conditioning (the
``conditioned`` fact of its entry in ``matgrad.lang.domains``: invertible, spd, orthogonal,
diagonal, fullrank) are not measured for a condition number: that keeps the guard free for them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from matgrad.engine import tensors
from matgrad.errors import EvalError
from matgrad.lang import overlay
from matgrad.lang.domains import DOMAINS
from matgrad.lang.expr import Bound, Call, Compare, Name
from matgrad.lang.expr import constant as expr_constant
from matgrad.lang.fn_decomp import gauge_margin
from matgrad.lang.fn_eig import eig_margin
from matgrad.lang.fn_lu import factors_rcond, pivot_margin
from matgrad.lang.fn_piecewise import tie_branch, tie_margin
from matgrad.spec import budget
from matgrad.spec.schema import Compiled

# The sensitivities measured by a condition number: a conditioned domain makes them safe.
CONDITION_NUMBERS = frozenset({"cond", "cond_nonzero"})

# (smallest relative eigenvalue gap, largest condition number) per dtype. A derivative through
# eigenvectors carries rounding errors of about eps/gap^2 (relative), one through an inverse
# about eps*cond to eps*cond^2, so these bounds keep both near or under the default rtol of the
# dtype. They are far from ordinary draws: a 4 x 4 standard normal matrix has a condition
# number over 1e6 about once in 10^5 draws, so draws that are not degenerate keep their values.
THRESHOLDS: dict[str, tuple[float, float]] = {
    "float64": (1e-5, 1e6),
    "float32": (1e-2, 1e3),
}
# The least relative distance to a kink or a tie: a draw closer than this is drawn again.
MIN_KINK = 1e-6
MAX_REDRAWS = budget.GUARD_SURVEYS - 1  # the work budget counts every survey

Draw = tuple[dict[str, Any], dict[str, Any]]  # (variables, directions), float64 CPU tensors


@dataclasses.dataclass(frozen=True)
class Site:
    """One call of a sensitive function: ``fn`` applied to ``arg``, found in ``where``;
    ``sensitive`` is what is measured on ``arg`` (the function's registry fact)."""

    fn: str
    sensitive: str
    arg: Bound
    text: str
    where: str
    # For a "gap" site: the eigenvectors (columns) the identity uses, when every use picks
    # fixed columns; None: every gap counts.
    columns: tuple[int, ...] | None = None
    # For a "kink" site: the call (or comparison) itself, whose arguments are all measured.
    call: Bound | None = None


def sites(compiled: Compiled) -> list[Site]:
    """Every sensitive call of an identity whose argument must be measured."""
    ident = compiled.identity
    guaranteed = {v.name for v in ident.vars.values() if DOMAINS[v.domain].conditioned}
    found: list[Site] = []
    seen: set[tuple[str, str]] = set()
    columns = _columns_used(compiled)

    def walk(b: Bound, where: str) -> None:
        for a in b.args:
            walk(a, where)
        node = b.node
        if isinstance(node, Compare) or (
            isinstance(node, Call) and b.args and overlay.get(node.fn).sensitive == "kink"
        ):
            if all(a.static is not None for a in b.args):
                return
            key = ("kink", node.text)
            if key not in seen:
                seen.add(key)
                name = node.fn if isinstance(node, Call) else f"comparison {node.op}"
                found.append(Site(name, "kink", b.args[0], node.text, where, call=b))
            return
        if not (isinstance(node, Call) and b.args):
            return
        sensitive = overlay.get(node.fn).sensitive
        if sensitive is None:
            return
        arg = b.args[0]
        if sensitive in CONDITION_NUMBERS and isinstance(arg.node, Name):
            if arg.node.name in guaranteed:
                return
        if arg.static is not None or len(arg.shape) != 2:
            return
        key = (node.fn, arg.node.text)
        if key not in seen:
            seen.add(key)
            cols = columns.get(key) if sensitive == "gap" else None
            found.append(Site(node.fn, sensitive, arg, node.text, where, cols, call=b))

    for name, bound in compiled.lets:
        walk(bound, f"let {name}")
    walk(compiled.f, "f")
    for claim, bound in compiled.claims:
        walk(bound, claim.label)
    return found


ALL = None  # a use that is not a fixed column: every gap counts
PICKS = {"col": 1, "entry": 2}  # functions that pick a fixed column, and where its index is


def _columns_used(compiled: Compiled) -> dict[tuple[str, str], tuple[int, ...] | None]:
    """For each call of a "gap" function (by function and argument text): the columns of its
    result that the identity uses, when every use is ``col(., j)`` or ``entry(., i, j)`` with
    constant indices, directly or through a let that holds the call and nothing else; None
    when some use is anything else."""
    uses: dict[tuple[str, str], set[int] | None] = {}
    holds: dict[str, tuple[str, str]] = {}  # let name -> the call it holds
    bodies = [(f"let {n}", n, b) for n, b in compiled.lets] + [("f", None, compiled.f)]
    bodies += [(c.label, None, b) for c, b in compiled.claims]

    def note(key: tuple[str, str], col: int | None) -> None:
        if key in uses and uses[key] is None:
            return
        if col is None:
            uses[key] = ALL
        else:
            got = uses.setdefault(key, set())
            assert got is not None
            got.add(col)

    def gap_call(b: Bound) -> tuple[str, str] | None:
        node = b.node
        if isinstance(node, Call) and b.args and overlay.get(node.fn).sensitive == "gap":
            return (node.fn, b.args[0].node.text)
        if isinstance(node, Name) and node.name in holds:
            return holds[node.name]
        return None

    def walk(b: Bound, parent: Bound | None) -> None:
        key = gap_call(b)
        if key is not None:
            col = None
            p = parent.node if parent is not None else None
            if isinstance(p, Call) and p.fn in PICKS and parent is not None:
                at = PICKS[p.fn]
                if parent.args[0] is b and len(parent.args) > at:
                    index = parent.args[at].static
                    col = None if index is None else int(index)
            note(key, col)
        for a in b.args:
            walk(a, b)

    for _where, let_name, bound in bodies:
        key = gap_call(bound)
        if let_name is not None and key is not None and isinstance(bound.node, Call):
            holds[let_name] = key  # the let is the call itself: its uses are the call's
            for a in bound.args:
                walk(a, bound)
            continue
        walk(bound, None)
    return {k: (None if v is None else tuple(sorted(v))) for k, v in uses.items()}


def all_finite(x: Any) -> bool:
    """Whether every entry of ``x`` is finite, in two tensor operations (cheaper than
    ``isfinite().all()``): finite * 0 is 0, while Inf * 0 and NaN * 0 are NaN."""
    return float((x * 0).sum()) == 0.0


def _site_values(
    site: Site, env: dict[str, Any], like: Any, memo: dict[str, Any] | None = None
) -> list[Any]:
    """The arguments of a kink site's call, evaluated (static ones as constants)."""
    call = site.call
    assert call is not None
    node = call.node
    values = []
    for i, a in enumerate(call.args):
        if isinstance(node, Call) and i in overlay.get(node.fn).static_args:
            values.append(expr_constant(a))
        else:
            values.append(tensors.evaluate(a, env, like, memo))
    return values


def branches(
    found: list[Site], env: dict[str, Any], like: Any
) -> Any | None:
    """Per trial, as one row [T, P]: the piece of every kink site in ``found`` whose function
    says what its pieces are (``Function.branch``; a comparison: which side is larger). Equal
    rows at two points: every such site is on the same smooth piece at both. None when no site
    says."""
    memo: dict[str, Any] = {}  # sites share sub-expressions: each computed once
    rows = []
    for site in found:
        call = site.call
        assert call is not None
        node = call.node
        piece_of = overlay.get(node.fn).branch if isinstance(node, Call) else tie_branch
        if piece_of is None:
            continue
        values = _site_values(site, env, like, memo)
        if any(getattr(v, "is_complex", lambda: False)() for v in values):
            continue  # no order, no pieces (the evaluation refuses what needs one)
        options = dict(call.options) if isinstance(node, Call) else {}
        piece = piece_of(torch, *values, **options)
        rows.append(piece.reshape(like.shape[0], -1).to(torch.float64))
    return torch.cat(rows, dim=1) if rows else None


def measure_kink(site: Site, env: dict[str, Any], like: Any) -> Any:
    """Per trial: the relative distance of a kink site's arguments to a kink or tie."""
    call = site.call
    assert call is not None
    node = call.node
    values = _site_values(site, env, like)
    if not isinstance(node, Call):  # a comparison: a tie of its two sides
        return tie_margin(torch, *values)
    fn = overlay.get(node.fn)
    assert fn.margin is not None
    try:
        margin = fn.margin(torch, *values, **dict(call.options))
        return margin.real if margin.is_complex() else margin  # a complex-typed inf
    except (RuntimeError, NotImplementedError):
        if not any(getattr(v, "is_complex", lambda: False)() for v in values):
            raise
        # complex values have no order (max, sort): the evaluation refuses them, with its
        # message; no kink to measure here
        return torch.full((like.shape[0],), math.inf, dtype=torch.float64, device=like.device)


def measure(site: Site, m: Any) -> Any:
    """Per trial: the relative eigenvalue gap (``gap``), singular value gap (``svd``) or
    positive eigenvalue (``branch``), or the condition number (``cond``, ``triangular``)."""
    if not all_finite(m):
        m = torch.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0)
    if site.sensitive == "svd":
        return _measure_svd(m)
    if site.sensitive == "pivot":
        return pivot_margin(torch, m)
    if site.sensitive == "eig":
        return eig_margin(torch, m)
    if site.sensitive == "branch":
        lam = torch.linalg.eigvalsh(0.5 * (m + m.mH))  # mH: the Hermitian part of a complex m
        scale = lam.abs().amax(dim=1)
        return torch.where(scale > 0, lam[:, 0] / scale, torch.zeros_like(scale))
    if site.sensitive == "triangular":
        m = _triangle(site, m)
    if site.sensitive == "gap":
        if overlay.get(site.fn).gauged:
            lam, vecs = torch.linalg.eigh(0.5 * (m + m.mH))
            tie = gauge_margin(torch, vecs)
        else:
            lam = torch.linalg.eigvalsh(0.5 * (m + m.mH))
            tie = torch.full(lam.shape[:1], float("inf"), dtype=lam.dtype)
        if lam.shape[-1] < 2:
            return tie
        gaps = lam[:, 1:] - lam[:, :-1]  # gaps[:, k] is between eigenvalues k and k+1
        if site.columns is not None:
            n = lam.shape[-1]
            near = sorted({k for j in site.columns for k in (j - 1, j) if 0 <= k < n - 1})
            gaps = gaps[:, near]
        gap = gaps.amin(dim=1)
        scale = lam.abs().amax(dim=1)
        return torch.minimum(torch.where(scale > 0, gap / scale, torch.zeros_like(gap)), tie)
    s = torch.linalg.svdvals(m)
    big = s[:, 0]
    if site.sensitive == "cond_nonzero":
        # pinv is smooth where the rank is constant: singular values at rounding level are
        # exact zeros of the maths (e.g. pinv(lam*I - A) at an eigenvalue lam), so the one
        # that matters is the smallest singular value above them.
        cutoff = big * (max(m.shape[-2:]) * 1e3 * torch.finfo(torch.float64).eps)
        s = torch.where(s > cutoff.unsqueeze(-1), s, torch.full_like(s, float("inf")))
        small = s.amin(dim=1)
        small = torch.where(torch.isinf(small), torch.zeros_like(small), small)
    else:
        small = s[:, -1]
    return torch.where(small > 0, big / small, torch.full_like(big, float("inf")))


def _measure_svd(m: Any) -> Any:
    """Per trial: the least of the relative gaps between singular values, the smallest
    singular value relative to the largest, and the sign gauge's distance to a tie."""
    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    top = s[:, 0]
    low = s[:, -1]
    if s.shape[-1] > 1:
        low = torch.minimum(low, (s[:, :-1] - s[:, 1:]).amin(dim=1))
    rel = torch.where(top > 0, low / top, torch.zeros_like(top))
    return torch.minimum(rel, gauge_margin(torch, u))


def _measure_factors(site: Site, env: dict[str, Any], like: Any) -> Any:
    """Per trial: the condition number of the worse triangle a solve from LU factors reads
    (its second and third arguments, L and U)."""
    assert site.call is not None
    lower, upper = (tensors.evaluate(a, env, like) for a in site.call.args[1:3])
    rcond = factors_rcond(torch, lower, upper)
    return torch.where(rcond > 0, 1.0 / rcond, torch.full_like(rcond, float("inf")))


def _triangle(site: Site, m: Any) -> Any:
    """The triangle of ``m`` that a triangular solve reads (its diagonal ones when
    unitriangular=True)."""
    options = dict(site.call.options) if site.call is not None else {}
    tri = torch.triu(m) if options.get("upper") else torch.tril(m)
    if options.get("unitriangular"):
        eye = torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)
        tri = tri * (1 - eye) + eye
    return tri


def _bad(site: Site, value: Any, dtype: str) -> Any:
    min_gap, max_cond = THRESHOLDS[dtype]
    if site.sensitive == "kink":
        return ~(value >= MIN_KINK)
    if site.sensitive in ("gap", "svd", "pivot", "eig"):
        return ~(value >= min_gap)
    if site.sensitive == "branch":
        return ~(value >= 1 / max_cond)
    return ~(value <= max_cond)


def _env(compiled: Compiled, draw: Draw) -> tuple[dict[str, Any], Any]:
    xs, ds = draw
    trials = next(iter(xs.values())).shape[0]
    like = torch.zeros(trials, dtype=torch.float64)
    env: dict[str, Any] = dict(xs)
    env.update({"d" + k: v for k, v in ds.items()})
    with torch.no_grad():
        return tensors.with_lets(compiled.lets, env, like), like


def _survey(
    compiled: Compiled, found: list[Site], draw: Draw, dtype: str
) -> list[tuple[Site, Any, Any]]:
    env, like = _env(compiled, draw)
    out = []
    with torch.no_grad():
        for site in found:
            if site.sensitive == "kink":
                value = measure_kink(site, env, like)
            elif site.sensitive == "factors":
                value = _measure_factors(site, env, like)
            else:
                value = measure(site, tensors.evaluate(site.arg, env, like))
            out.append((site, value, _bad(site, value, dtype)))
    return out


def guard(
    compiled: Compiled,
    draw: Draw,
    redraw: Callable[[int], Draw],
    dtype: str,
    tally: Tally | None = None,
) -> Draw:
    """Return ``draw`` with its degenerate trials drawn again; raise :class:`EvalError` when a
    trial stays degenerate after :data:`MAX_REDRAWS` redraws. ``redraw(k)`` gives the k-th
    fresh full batch (k = 1, 2, ...); ``tally``, if given, counts the trials drawn again."""
    found = sites(compiled)
    if not found:
        return draw
    xs, ds = draw
    for attempt in range(1, MAX_REDRAWS + 2):
        survey = _survey(compiled, found, (xs, ds), dtype)
        bad = torch.zeros_like(survey[0][2])
        for _, _, b in survey:
            bad |= b
        if not bool(bad.any()):
            return xs, ds
        if attempt > MAX_REDRAWS:
            raise EvalError(_message(survey, dtype))
        if tally is not None:
            tally.degenerate += int(bad.sum())
        xs, ds = replace_rows((xs, ds), bad, redraw(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


@dataclasses.dataclass
class Tally:
    """How many trials were drawn again, and why (each redraw of a trial counts once)."""

    degenerate: int = 0  # near a degenerate point (this guard)
    undefined: int = 0  # f, a claim or autograd NaN/Inf there (the engine's redraw)
    first_undefined: int = 0  # trials of the first draw that were undefined
    undefined_what: str = ""  # what was NaN/Inf on them first ("f", "autograd of grad x", ...)


def replace_rows(draw: Draw, bad: Any, fresh: Draw) -> Draw:
    """``draw`` with the trials where ``bad`` ([T] bool) is set taken from ``fresh``: the one
    redraw mechanism, shared by this guard and the engine's redraw of undefined trials. Every
    other trial keeps its draw."""
    xs, ds = draw
    nx, nd = fresh
    return (
        {k: torch.where(tensors.rows(bad, v), nx[k], v) for k, v in xs.items()},
        {k: torch.where(tensors.rows(bad, v), nd[k], v) for k, v in ds.items()},
    )


def _message(survey: list[tuple[Site, Any, Any]], dtype: str) -> str:
    min_gap, max_cond = THRESHOLDS[dtype]
    for site, value, bad in survey:
        idx = torch.nonzero(bad)
        if not idx.numel():
            continue
        trial = int(idx[0, 0])
        v = float(value[trial])
        if site.sensitive == "kink":
            return (
                f"degenerate draws: in {site.where}, the arguments of {site.text} are at a kink "
                f"or a tie (relative distance {v:.2g}, needs >= {MIN_KINK:g}) on trial {trial}, "
                f"still after {MAX_REDRAWS} redraws; {site.fn} is not differentiable there: "
                f"choose domains or expressions that keep its arguments apart"
            )
        if site.sensitive == "svd":
            what = (
                f"has repeated or zero singular values, or a singular vector with two entries "
                f"of equal size (the sign gauge): relative margin {v:.2g} (needs >= {min_gap:g})"
            )
            advice = "singular vectors are not differentiable where singular values coincide"
        elif site.sensitive == "pivot":
            what = (
                f"is near a tie between two candidate pivots or has a nearly singular U: "
                f"relative margin {v:.2g} (needs >= {min_gap:g})"
            )
            advice = (
                "the pivoting of lu is piecewise constant and its factors jump at a tie; they "
                "are not differentiable where U is singular"
            )
        elif site.sensitive == "eig":
            what = (
                f"has two eigenvalues (or two real parts that decide their order) that nearly "
                f"coincide, an eigenvector with two entries of equal size (the gauge), or nearly "
                f"dependent eigenvectors: relative margin {v:.2g} (needs >= {min_gap:g})"
            )
            advice = "eigenvalues and eigenvectors are not differentiable where two coincide"
        elif site.sensitive == "branch":
            what = (
                f"has an eigenvalue that is not clearly positive: smallest eigenvalue relative "
                f"to the largest {v:.2g} (needs >= {1 / max_cond:g})"
            )
            advice = f"{site.fn} needs positive eigenvalues (spd arguments)"
        elif site.sensitive == "gap":
            what = f"has repeated eigenvalues: relative gap {v:.2g} (needs >= {min_gap:g})"
            if site.columns is not None:
                used = ", ".join(str(j) for j in site.columns)
                what = (
                    f"has a repeated eigenvalue next to the eigenvectors used (column {used}): "
                    f"relative gap {v:.2g} (needs >= {min_gap:g})"
                )
            if overlay.get(site.fn).gauged:
                what += " or an eigenvector with two entries of equal size (the sign gauge)"
            advice = "eigenvalues and eigenvectors are not differentiable where two coincide"
        else:
            shown = "inf" if v == float("inf") else f"{v:.2g}"
            what = f"is (nearly) singular: condition number {shown} (needs <= {max_cond:g})"
            advice = f"{site.fn} is not differentiable (or badly conditioned) at singular matrices"
        return (
            f"degenerate draws: in {site.where}, the argument of {site.text} {what} on trial "
            f"{trial}, still after {MAX_REDRAWS} redraws; {advice}: choose domains that keep it "
            f"away (e.g. spd or invertible)"
        )
    raise AssertionError("no degenerate trial")  # pragma: no cover
