"""Piecewise and order functions: ``relu``, ``abs``, ``sign``, ``clamp``, ``maximum``,
``minimum``, ``where``, ``amax``/``amin``, ``sort``, ``topk``, ``max_pool1d``.

Each is differentiable except at its kinks (relu at 0) or ties (two equal entries of a max).
Each carries a ``margin``: per trial, the smallest distance of its arguments to a kink or tie,
relative to their size. The degeneracy guard (``matgrad.engine.degeneracy``) redraws trials
whose margin is below its threshold, so a right claim never fails on a tie and a wrong one is
still judged everywhere else. An entry exactly at a kink (distance 0) is structural, such as a
masked zero that every draw repeats: it is not counted, and autograd's one-sided choice there
(torch: relu'(0) = 0, abs'(0) = 0, ties share the gradient) is what a claim must match.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matgrad.lang import shapes
from matgrad.lang.fn_axes import normalize_axes, one_axis, reduce_infer
from matgrad.lang.functions import (
    Arg,
    Shape,
    ShapeError,
    entrywise,
    fmt_shape,
    register,
    register_elementwise,
)

TINY = 1e-300


def relative_gap(torch: Any, dist: Any, size: Any) -> Any:
    """Per trial: the smallest ``dist / size`` over the entries whose ``dist`` is not exactly 0
    (inf when every entry is structural or there are none). Both [T, ...]."""
    t = dist.shape[0]
    dist = dist.reshape(t, -1).abs()
    size = size.reshape(t, -1).abs().amax(dim=1, keepdim=True).clamp(min=TINY)
    rel = torch.where(dist > 0, dist / size, torch.full_like(dist, float("inf")))
    if rel.shape[1] == 0:
        return torch.full((t,), float("inf"), dtype=dist.dtype, device=dist.device)
    return rel.amin(dim=1)


def _kink_at_zero(torch: Any, x: Any) -> Any:
    return relative_gap(torch, x, x)


def _side_of_zero(torch: Any, x: Any) -> Any:
    return torch.sign(x)


register_elementwise(
    "relu", "Elementwise max(x, 0)", lambda torch, x: torch.relu(x), _kink_at_zero,
    _side_of_zero,
)
register_elementwise(
    "abs", "Elementwise absolute value", lambda torch, x: torch.abs(x), _kink_at_zero,
    _side_of_zero,
)
register_elementwise(
    "sign",
    "Elementwise sign: -1, 0 or 1 (derivative 0 away from 0)",
    lambda t, x: t.sign(x),
    _kink_at_zero,
    _side_of_zero,
)


def _clamp_infer(args: Sequence[Arg]) -> Shape:
    lo, hi = (a.value for a in args[1:3]) if len(args) == 3 else (args[1].value, None)
    for v in (lo, hi):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ShapeError(f"needs numbers (or None) for the bounds, got {v!r}")
    if lo is None and hi is None:
        raise ShapeError("needs at least one bound")
    if lo is not None and hi is not None and lo > hi:
        raise ShapeError(f"needs lo <= hi, got {lo} > {hi}")
    return args[0].shape


def _clamp_margin(torch: Any, x: Any, lo: Any, hi: Any = None) -> Any:
    gaps = [relative_gap(torch, x - b, x.abs() + abs(b)) for b in (lo, hi) if b is not None]
    return torch.stack(gaps).amin(dim=0)


def _clamp_branch(torch: Any, x: Any, lo: Any, hi: Any = None) -> Any:
    return sum(torch.sign(x - b) for b in (lo, hi) if b is not None)


@register(
    "clamp",
    "clamp(x, lo, hi)",
    "Elementwise min(max(x, lo), hi); lo or hi may be None",
    "shape of x",
    _clamp_infer,
    nargs=(2, 3),
    static=(1, 2),
    category="elementwise",
    cost=entrywise,
    sensitive="kink",
    margin=_clamp_margin,
    branch=_clamp_branch,
)
def _clamp(torch: Any, x: Any, lo: Any, hi: Any = None) -> Any:
    return torch.clamp(x, min=lo, max=hi)


def _pair_infer(args: Sequence[Arg]) -> Shape:
    try:
        return shapes.elementwise([a.shape for a in args])
    except shapes.RuleError:
        raise ShapeError(
            f"needs shapes that broadcast one-sidedly (see docs/format.md), got "
            f"{shapes.describe([a.shape for a in args])}"
        ) from None


def align(x: Any, shape: Shape) -> Any:
    """A batched operand with 1s in front of its own axes, to broadcast against ``shape``."""
    rank = x.dim() - 1
    if rank == len(shape):
        return x
    return x.reshape(x.shape[0], *([1] * (len(shape) - rank)), *x.shape[1:])


def tie_margin(torch: Any, a: Any, b: Any) -> Any:
    out = _broadcast_shape(a, b)
    a, b = align(a, out), align(b, out)
    return relative_gap(torch, a - b, a.abs() + b.abs())


def tie_branch(torch: Any, a: Any, b: Any) -> Any:
    """Which of ``a`` and ``b`` is larger, entry by entry (a comparison's or a max's piece)."""
    out = _broadcast_shape(a, b)
    return torch.sign(align(a, out) - align(b, out))


def _broadcast_shape(*xs: Any) -> Shape:
    return shapes.elementwise([tuple(x.shape[1:]) for x in xs])


def _pair(name: str, summary: str, fn: str) -> None:
    def impl(torch: Any, a: Any, b: Any) -> Any:
        out = _broadcast_shape(a, b)
        return getattr(torch, fn)(align(a, out), align(b, out))

    register(
        name,
        f"{name}(a, b)",
        summary,
        "the broadcast shape",
        _pair_infer,
        nargs=2,
        category="elementwise",
        cost=entrywise,
        sensitive="kink",
        margin=tie_margin,
        branch=tie_branch,
    )(impl)


_pair("maximum", "Elementwise larger of a and b", "maximum")
_pair("minimum", "Elementwise smaller of a and b", "minimum")


@register(
    "where",
    "where(c, a, b)",
    "a where c is nonzero (a mask such as x > 0), b elsewhere; the three broadcast one-sidedly",
    "the broadcast shape",
    _pair_infer,
    nargs=3,
    category="elementwise",
    cost=entrywise,
    sensitive=None,
)
def _where(torch: Any, c: Any, a: Any, b: Any) -> Any:
    out = _broadcast_shape(c, a, b)
    return torch.where(align(c, out) != 0, align(a, out), align(b, out))


# ---- order along an axis ---------------------------------------------------------------------


def _one_axis(shape: Shape, axis: Any) -> int:
    if not shape and not isinstance(axis, tuple):
        raise ShapeError("needs a tensor with at least one axis, got a scalar")
    return one_axis(shape, axis)


def _sorted_gaps(torch: Any, x: Any, dim: int) -> Any:
    """The relative gaps between neighbours in sorted order along ``dim`` (a batched dim)."""
    s = torch.sort(x, dim=dim).values
    n = s.shape[dim]
    if n < 2:
        return torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
    gap = s.narrow(dim, 1, n - 1) - s.narrow(dim, 0, n - 1)
    return relative_gap(torch, gap, x)


def _top2_gap(torch: Any, x: Any, dim: int, largest: bool = True) -> Any:
    n = x.shape[dim]
    if n < 2:
        return torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
    top = torch.topk(x, 2, dim=dim, largest=largest).values
    return relative_gap(torch, top.narrow(dim, 0, 1) - top.narrow(dim, 1, 1), x)


def _extreme(name: str, summary: str, largest: bool) -> None:
    def flat(x: Any, axis: Any) -> tuple[Any, int]:
        """x with the reduced axes moved last and merged, and the batched dim to reduce."""
        shape = tuple(x.shape[1:])
        axes = normalize_axes(axis, shape)
        rest = [i for i in range(len(shape)) if i not in axes]
        moved = x.permute(0, *(i + 1 for i in rest), *(i + 1 for i in axes))
        return moved.reshape(*moved.shape[: 1 + len(rest)], -1), -1

    def impl(torch: Any, x: Any, axis: Any = None, keepdim: bool = False) -> Any:
        if x.dim() == 1:
            return x
        dims = (
            tuple(range(1, x.dim()))
            if axis is None
            else tuple(a + 1 for a in normalize_axes(axis, tuple(x.shape[1:])))
        )
        op = torch.amax if largest else torch.amin
        return op(x, dim=dims, keepdim=keepdim)

    def margin(torch: Any, x: Any, axis: Any = None, keepdim: bool = False) -> Any:
        if x.dim() == 1:
            return torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
        y, dim = flat(x, axis)
        return _top2_gap(torch, y, dim, largest)

    def branch(torch: Any, x: Any, axis: Any = None, keepdim: bool = False) -> Any:
        if x.dim() == 1:
            return torch.zeros_like(x)
        y, dim = flat(x, axis)
        return (torch.argmax if largest else torch.argmin)(y, dim=dim)

    register(
        name,
        f"{name}(x, axis=None, keepdim=False)",
        summary,
        "[] (all entries) or the shape without axis",
        reduce_infer,
        category="reduction",
        cost=entrywise,
        sensitive="kink",
        keywords={"axis": None, "keepdim": False},
        margin=margin,
        branch=branch,
    )(impl)


_extreme("amax", "Largest entry, or the largest along axis=", largest=True)
_extreme("amin", "Smallest entry, or the smallest along axis=", largest=False)


def _sort_infer(args: Sequence[Arg], axis: Any = -1, descending: Any = False) -> Shape:
    _one_axis(args[0].shape, axis)
    if not isinstance(descending, bool):
        raise ShapeError(f"descending= must be True or False, got {descending!r}")
    return args[0].shape


def _sort_margin(torch: Any, x: Any, axis: int = -1, descending: bool = False) -> Any:
    return _sorted_gaps(torch, x, _one_axis(tuple(x.shape[1:]), axis) + 1)


def _order_branch(torch: Any, x: Any, *_: Any, axis: int = -1, **__: Any) -> Any:
    """The order of the entries along the axis (sort's and topk's piece)."""
    return torch.argsort(x, dim=_one_axis(tuple(x.shape[1:]), axis) + 1, stable=True)


@register(
    "sort",
    "sort(x, axis=-1, descending=False)",
    "The entries sorted along an axis (the values)",
    "shape of x",
    _sort_infer,
    category="order",
    cost=entrywise,
    sensitive="kink",
    keywords={"axis": -1, "descending": False},
    margin=_sort_margin,
    branch=_order_branch,
)
def _sort(torch: Any, x: Any, axis: int = -1, descending: bool = False) -> Any:
    dim = _one_axis(tuple(x.shape[1:]), axis) + 1
    return torch.sort(x, dim=dim, descending=descending).values


def _topk_infer(args: Sequence[Arg], axis: Any = -1) -> Shape:
    shape = args[0].shape
    at = _one_axis(shape, axis)
    k = args[1].value
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= shape[at]:
        raise ShapeError(
            f"needs k between 1 and {shape[at]} (the size of axis {at} of {fmt_shape(shape)}), "
            f"got {k!r}"
        )
    return (*shape[:at], k, *shape[at + 1 :])


def _topk_margin(torch: Any, x: Any, k: int, axis: int = -1) -> Any:
    # the top k values are differentiable when the k + 1 largest are distinct
    dim = _one_axis(tuple(x.shape[1:]), axis) + 1
    n = x.shape[dim]
    top = torch.topk(x, min(k + 1, n), dim=dim).values
    return _sorted_gaps(torch, top, dim)


@register(
    "topk",
    "topk(x, k, axis=-1)",
    "The k largest entries along an axis, largest first (the values)",
    "shape of x with k along axis",
    _topk_infer,
    nargs=2,
    static=(1,),
    category="order",
    cost=entrywise,
    sensitive="kink",
    keywords={"axis": -1},
    margin=_topk_margin,
    branch=_order_branch,
)
def _topk(torch: Any, x: Any, k: int, axis: int = -1) -> Any:
    dim = _one_axis(tuple(x.shape[1:]), axis) + 1
    return torch.topk(x, k, dim=dim).values


def _pool_sizes(args: Sequence[Arg], stride: Any) -> tuple[int, int, int]:
    shape = args[0].shape
    if not shape:
        raise ShapeError("needs a tensor with at least one axis, got a scalar")
    k = args[1].value
    n = shape[-1]
    stride = k if stride is None else stride
    for what, v in (("the window k", k), ("stride=", stride)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ShapeError(f"needs {what} to be a positive integer, got {v!r}")
    if k > n:
        raise ShapeError(f"needs a window k of at most {n} (the last axis), got k={k}")
    return k, stride, (n - k) // stride + 1


def _pool_infer(args: Sequence[Arg], stride: Any = None) -> Shape:
    _, _, out = _pool_sizes(args, stride)
    return (*args[0].shape[:-1], out)


def _windows(x: Any, k: int, stride: int | None) -> Any:
    return x.unfold(-1, k, k if stride is None else stride)


def _pool_margin(torch: Any, x: Any, k: int, stride: Any = None) -> Any:
    return _top2_gap(torch, _windows(x, k, stride), -1)


def _pool_branch(torch: Any, x: Any, k: int, stride: Any = None) -> Any:
    return torch.argmax(_windows(x, k, stride), dim=-1)


@register(
    "max_pool1d",
    "max_pool1d(x, k, stride=k)",
    "The largest entry of each window of k entries along the last axis, windows stride apart",
    "shape of x with (n - k) // stride + 1 last",
    _pool_infer,
    nargs=2,
    static=(1,),
    category="order",
    cost=entrywise,
    sensitive="kink",
    keywords={"stride": None},
    margin=_pool_margin,
    branch=_pool_branch,
)
def _max_pool1d(torch: Any, x: Any, k: int, stride: Any = None) -> Any:
    return _windows(x, k, stride).amax(dim=-1)
