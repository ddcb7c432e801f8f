"""Functions of tensors with axes: reductions (all entries, or along ``axis=``), softmax and
friends along an axis, reshaping, permuting, joining, and ``einsum``.

Axes count from 0 over the sample's own axes (the trial axis the evaluator adds in front is
invisible); negative axes count from the end, as in torch. ``impl`` functions receive batched
tensors, so :func:`_dims` shifts a sample axis by one.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from typing import Any

from matgrad.lang.functions import (
    Arg,
    Shape,
    ShapeError,
    entrywise,
    fmt_shape,
    numel,
    register,
)

MAX_OPERANDS = 16  # tensors in one concat, stack or einsum


# ---- axes ---------------------------------------------------------------------------------


def normalize_axes(axis: Any, shape: Shape, what: str = "axis") -> tuple[int, ...]:
    """``axis`` (an int, a tuple of ints, or None for every axis) as sorted non-negative sample
    axes of ``shape``; ShapeError naming the axis when one is out of range or repeated."""
    rank = len(shape)
    if axis is None:
        return tuple(range(rank))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in items:
        if not isinstance(a, int) or isinstance(a, bool):
            raise ShapeError(f"{what}= must be an integer or a tuple of integers, got {a!r}")
        if not -rank <= a < rank:
            raise ShapeError(
                f"{what}={a} is out of range for shape {fmt_shape(shape)} "
                f"(axes 0 to {rank - 1}, or -1 to {-rank} from the end)"
            )
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what}={axis!r} names an axis twice")
    return tuple(sorted(out))


def _dims(axes: tuple[int, ...]) -> tuple[int, ...]:
    """Sample axes as axes of the batched tensor (the trial axis comes first)."""
    return tuple(a + 1 for a in axes)


def _reduced(shape: Shape, axes: tuple[int, ...], keepdim: bool) -> Shape:
    if keepdim:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _check_keepdim(keepdim: Any) -> None:
    if not isinstance(keepdim, bool):
        raise ShapeError(f"keepdim= must be True or False, got {keepdim!r}")


def reduce_infer(args: Sequence[Arg], axis: Any = None, keepdim: Any = False, **_: Any) -> Shape:
    """The shape of a reduction over every entry (``axis=None``) or along ``axis=``."""
    _check_keepdim(keepdim)
    shape = args[0].shape
    return _reduced(shape, normalize_axes(axis, shape), keepdim)


def _all_dims(x: Any) -> tuple[int, ...]:
    return tuple(range(1, x.dim()))


def _spread_infer(
    args: Sequence[Arg], axis: Any = None, keepdim: Any = False, correction: Any = 1
) -> Shape:
    """var's and std's shape rule: a reduction's, with fewer ``correction`` than entries
    reduced (N - correction is the divisor; torch gives NaN/inf and a warning otherwise)."""
    out = reduce_infer(args, axis, keepdim)
    if isinstance(correction, bool) or not isinstance(correction, int) or correction < 0:
        raise ShapeError(f"needs correction= a non-negative integer, got {correction!r}")
    shape = args[0].shape
    n = numel(shape) // max(1, numel(out))
    n = max(n, 1)
    if correction >= n:
        raise ShapeError(
            f"reduces {n} {'entry' if n == 1 else 'entries'}, which leaves nothing to divide "
            f"by with correction={correction}: reduce over more entries, or use correction=0"
        )
    return out


def _reduction(
    name: str, summary: str, op: Any, extra: dict[str, Any] | None = None,
    infer: Any = reduce_infer,
) -> None:
    """A reduction over every entry (the default) or along ``axis=``, with ``keepdim=``."""
    keywords = {"axis": None, "keepdim": False, **(extra or {})}
    options = ", ".join(f"{k}={v!r}" for k, v in keywords.items())

    def impl(torch: Any, x: Any, axis: Any = None, keepdim: bool = False, **kw: Any) -> Any:
        dims = _all_dims(x) if axis is None else _dims(normalize_axes(axis, tuple(x.shape[1:])))
        if not dims:  # a scalar sample: nothing to reduce
            return op(torch, x.unsqueeze(-1), (-1,), False, **kw)
        return op(torch, x, dims, keepdim, **kw)

    register(
        name,
        f"{name}(x, {options})",
        summary,
        "[] (all entries) or the shape without axis",
        infer,
        category="reduction",
        cost=entrywise,
        sensitive=None,
        keywords=keywords,
    )(impl)


_reduction("sum", "Sum of all entries, or along axis=", lambda t, x, d, k: x.sum(dim=d, keepdim=k))
_reduction(
    "mean", "Mean of all entries, or along axis=", lambda t, x, d, k: x.mean(dim=d, keepdim=k)
)


def _prod(torch: Any, x: Any, dims: tuple[int, ...], keepdim: bool) -> Any:
    for d in sorted(dims, reverse=True):
        x = x.prod(dim=d, keepdim=keepdim)
    return x


_reduction("prod", "Product of all entries, or along axis=", _prod)
# norm (with its matrix and vector ord=) is in matgrad.lang.fn_norm
_reduction(
    "logsumexp",
    "log(sum(exp(x))) over all entries or along axis=, computed stably",
    lambda t, x, d, k: t.logsumexp(x, dim=d, keepdim=k),
)
_reduction(
    "var",
    "Variance over all entries or along axis=; correction=1 divides by N - 1 (torch's "
    "default), correction=0 by N",
    lambda t, x, d, k, correction=1: t.var(x, dim=d, keepdim=k, correction=correction),
    {"correction": 1},
    _spread_infer,
)
_reduction(
    "std",
    "Standard deviation, sqrt(var(x, ...)), with the same options",
    lambda t, x, d, k, correction=1: t.std(x, dim=d, keepdim=k, correction=correction),
    {"correction": 1},
    _spread_infer,
)


# ---- softmax along an axis -----------------------------------------------------------------


def _softmax_axis(shape: Shape, axis: Any) -> int | None:
    """The sample axis a softmax runs along; None: over every entry (a vector [n] or a column
    [n, 1], as before axes existed)."""
    if axis is not None:
        return one_axis(shape, axis)
    if len(shape) <= 1 or (len(shape) == 2 and shape[1] == 1):
        return None
    return len(shape) - 1


def one_axis(shape: Shape, axis: Any) -> int:
    """``axis`` as the one non-negative sample axis of ``shape`` it names (a tuple refused)."""
    if isinstance(axis, tuple):
        raise ShapeError(f"axis= must be one integer here, got {axis!r}")
    return normalize_axes(axis, shape)[0]


def _softmax_infer(args: Sequence[Arg], axis: Any = None) -> Shape:
    _softmax_axis(args[0].shape, axis)
    return args[0].shape


def _along(name: str, summary: str, fn: str) -> None:
    def impl(torch: Any, x: Any, axis: Any = None) -> Any:
        shape = tuple(x.shape[1:])
        at = _softmax_axis(shape, axis)
        op = getattr(torch, fn)
        if at is None:
            return op(x.reshape(x.shape[0], -1), dim=-1).reshape(x.shape)
        return op(x, dim=at + 1)

    register(
        name,
        f"{name}(x, axis=None)",
        summary,
        "shape of x",
        _softmax_infer,
        category="elementwise",
        cost=entrywise,
        sensitive=None,
        keywords={"axis": None},
    )(impl)


_along(
    "softmax",
    "exp(x)/sum(exp(x)) along axis=; by default over all entries of a vector [n] or [n, 1], "
    "along each row of a matrix, along the last axis of more axes",
    "softmax",
)
_along(
    "log_softmax",
    "log(softmax(x, axis)), computed stably; the same default axis as softmax",
    "log_softmax",
)


def _cumsum_infer(args: Sequence[Arg], axis: Any = None) -> Shape:
    if axis is None:
        raise ShapeError("needs axis=, the axis to accumulate along")
    one_axis(args[0].shape, axis)
    return args[0].shape


@register(
    "cumsum",
    "cumsum(x, axis=k)",
    "Cumulative sum along axis k",
    "shape of x",
    _cumsum_infer,
    category="reduction",
    cost=entrywise,
    sensitive=None,
    keywords={"axis": None},
)
def _cumsum(torch: Any, x: Any, axis: int) -> Any:
    return torch.cumsum(x, dim=normalize_axes(axis, tuple(x.shape[1:]))[0] + 1)


# ---- moving axes -----------------------------------------------------------------------------


def _int_args(args: Sequence[Arg], what: str) -> list[int]:
    out = []
    for a in args:
        v = a.value
        items = v if isinstance(v, tuple) else (v,)
        for i in items:
            if not isinstance(i, int) or isinstance(i, bool):
                raise ShapeError(f"{what} must be integers, got {i!r}")
            out.append(i)
    return out


def _transpose_infer(args: Sequence[Arg]) -> Shape:
    shape = args[0].shape
    i, j = (normalize_axes(a, shape) for a in _int_args(args[1:], "the axes"))
    out = list(shape)
    out[i[0]], out[j[0]] = out[j[0]], out[i[0]]
    return tuple(out)


@register(
    "transpose",
    "transpose(x, i, j)",
    "Swap axes i and j",
    "shape of x with axes i and j swapped",
    _transpose_infer,
    nargs=3,
    static=(1, 2),
    category="tensor",
    cost=entrywise,
    sensitive=None,
)
def _transpose(torch: Any, x: Any, i: int, j: int) -> Any:
    rank = x.dim() - 1
    return x.transpose(i % rank + 1, j % rank + 1)


def _permutation(args: Sequence[Arg]) -> list[int]:
    shape = args[0].shape
    order = _int_args(args[1:], "the axes of a permutation")
    axes = [normalize_axes(a, shape)[0] for a in order]
    if sorted(axes) != list(range(len(shape))):
        raise ShapeError(
            f"needs a permutation of the {len(shape)} axes of {fmt_shape(shape)}, got "
            f"{tuple(order)}"
        )
    return axes


def _permute_infer(args: Sequence[Arg]) -> Shape:
    return tuple(args[0].shape[i] for i in _permutation(args))


@register(
    "permute",
    "permute(x, i, j, k, ...)",
    "Reorder the axes: axis m of the result is axis (the m-th index) of x",
    "the permuted shape",
    _permute_infer,
    nargs=(2, 7),
    static=range(1, 7),
    category="tensor",
    cost=entrywise,
    sensitive=None,
)
def _permute(torch: Any, x: Any, *order: Any) -> Any:
    shape = tuple(x.shape[1:])
    axes = _permutation([Arg(shape)] + [Arg((), None, o) for o in order])
    return x.permute(0, *(a + 1 for a in axes))


def _reshape_infer(args: Sequence[Arg]) -> Shape:
    shape = args[0].shape
    sizes = _int_args(args[1:], "the sizes")
    free = [i for i, s in enumerate(sizes) if s == -1]
    if len(free) > 1 or any(s < 1 and s != -1 for s in sizes):
        raise ShapeError(f"needs positive sizes and at most one -1, got {tuple(sizes)}")
    known = math.prod(s for s in sizes if s != -1)
    total = numel(shape)
    if free:
        if total % known:
            raise ShapeError(f"cannot reshape {fmt_shape(shape)} ({total} entries) to {sizes}")
        sizes[free[0]] = total // known
    if math.prod(sizes) != total:
        raise ShapeError(
            f"cannot reshape {fmt_shape(shape)} ({total} entries) to {fmt_shape(tuple(sizes))} "
            f"({math.prod(sizes)} entries)"
        )
    return tuple(sizes)


@register(
    "reshape",
    "reshape(x, d1, d2, ...)",
    "The entries of x in a new shape, row-major as in torch (one size may be -1); for the "
    "column-stacking vec of matrix calculus use vec(M)",
    "[d1, d2, ...]",
    _reshape_infer,
    nargs=(2, 7),
    static=range(1, 7),
    category="tensor",
    cost=entrywise,
    sensitive=None,
)
def _reshape(torch: Any, x: Any, *sizes: Any) -> Any:
    shape = _reshape_infer([Arg(tuple(x.shape[1:]))] + [Arg((), None, s) for s in sizes])
    return x.reshape(x.shape[0], *shape)


def _flatten_infer(args: Sequence[Arg], start: Any = 0, end: Any = -1) -> Shape:
    shape = args[0].shape
    if not shape:
        return (1,)
    (a,) = normalize_axes(start, shape, "start")
    (b,) = normalize_axes(end, shape, "end")
    if a > b:
        raise ShapeError(f"start={start} comes after end={end}")
    return (*shape[:a], numel(shape[a : b + 1]), *shape[b + 1 :])


@register(
    "flatten",
    "flatten(x, start=0, end=-1)",
    "Merge axes start..end into one (row-major, as in torch)",
    "the flattened shape",
    _flatten_infer,
    category="tensor",
    cost=entrywise,
    sensitive=None,
    keywords={"start": 0, "end": -1},
)
def _flatten(torch: Any, x: Any, start: int = 0, end: int = -1) -> Any:
    shape = _flatten_infer([Arg(tuple(x.shape[1:]))], start, end)
    return x.reshape(x.shape[0], *shape)


# ---- joining -------------------------------------------------------------------------------


def _concat_infer(args: Sequence[Arg], axis: Any = 0) -> Shape:
    first = args[0].shape
    if not first:
        raise ShapeError("needs tensors with at least one axis, got a scalar")
    (at,) = normalize_axes(axis, first)
    for a in args[1:]:
        s = a.shape
        if len(s) != len(first) or any(
            x != y for i, (x, y) in enumerate(zip(s, first, strict=True)) if i != at
        ):
            raise ShapeError(
                f"needs shapes equal except along axis {at}, got "
                f"{', '.join(fmt_shape(b.shape) for b in args)}"
            )
    return (*first[:at], sum(a.shape[at] for a in args), *first[at + 1 :])


@register(
    "concat",
    "concat(a, b, ..., axis=0)",
    "Join tensors along an existing axis",
    "the joined shape",
    _concat_infer,
    nargs=(1, MAX_OPERANDS),
    category="tensor",
    cost=entrywise,
    sensitive=None,
    keywords={"axis": 0},
)
def _concat(torch: Any, *xs: Any, axis: int = 0) -> Any:
    (at,) = normalize_axes(axis, tuple(xs[0].shape[1:]))
    return torch.cat(xs, dim=at + 1)


def _stack_infer(args: Sequence[Arg], axis: Any = 0) -> Shape:
    first = args[0].shape
    if any(a.shape != first for a in args):
        raise ShapeError(f"needs equal shapes, got {', '.join(fmt_shape(a.shape) for a in args)}")
    out = (*first, 1)  # the result has one more axis
    (at,) = normalize_axes(axis, out)
    return (*first[:at], len(args), *first[at:])


@register(
    "stack",
    "stack(a, b, ..., axis=0)",
    "Join tensors of equal shape along a new axis",
    "the stacked shape",
    _stack_infer,
    nargs=(1, MAX_OPERANDS),
    category="tensor",
    cost=entrywise,
    sensitive=None,
    keywords={"axis": 0},
)
def _stack(torch: Any, *xs: Any, axis: int = 0) -> Any:
    (at,) = normalize_axes(axis, (*xs[0].shape[1:], 1))
    return torch.stack(xs, dim=at + 1)


# ---- einsum --------------------------------------------------------------------------------

LETTERS = frozenset(string.ascii_letters)


def parse_einsum(spec: Any, shapes: Sequence[Shape]) -> tuple[list[str], str, dict[str, int]]:
    """The operands' subscripts, the output's, and the size of each letter; ShapeError when
    the specification does not fit the operands (checked before any tensor exists)."""
    if not isinstance(spec, str):
        raise ShapeError(f"needs a string specification first, like 'ij,jk->ik', got {spec!r}")
    text = spec.replace(" ", "")
    if "..." in text:
        raise ShapeError("'...' is not supported in einsum: name every axis with a letter")
    if text.count("->") > 1:
        raise ShapeError(f"{spec!r} has more than one '->'")
    lhs, arrow, out = text.partition("->")
    terms = lhs.split(",")
    for part in [*terms, out]:
        bad = set(part) - LETTERS
        if bad:
            raise ShapeError(f"{spec!r} uses {''.join(sorted(bad))!r}: only letters name axes")
    if len(terms) != len(shapes):
        raise ShapeError(f"{spec!r} names {len(terms)} operands, got {len(shapes)}")
    sizes: dict[str, int] = {}
    for k, (term, shape) in enumerate(zip(terms, shapes, strict=True)):
        if len(term) != len(shape):
            raise ShapeError(
                f"operand {k + 1} has shape {fmt_shape(shape)} ({len(shape)} axes) but "
                f"{term!r} names {len(term)}"
            )
        for letter, size in zip(term, shape, strict=True):
            if sizes.setdefault(letter, size) != size:
                raise ShapeError(
                    f"axis {letter!r} has size {sizes[letter]} in one place and {size} in "
                    f"another ({spec!r})"
                )
    if not arrow:  # implicit output: the letters used once, in alphabetical order
        counts = "".join(terms)
        out = "".join(sorted(c for c in set(counts) if counts.count(c) == 1))
    if len(set(out)) != len(out):
        raise ShapeError(f"the output {out!r} names an axis twice")
    missing = set(out) - set(sizes)
    if missing:
        raise ShapeError(f"the output names {''.join(sorted(missing))!r}, on no operand")
    return terms, out, sizes


def _einsum_infer(args: Sequence[Arg]) -> Shape:
    _terms, out, sizes = parse_einsum(args[0].value, [a.shape for a in args[1:]])
    return tuple(sizes[c] for c in out)


def _pairwise(terms: list[str], out: str) -> list[tuple[str, str, str]]:
    """Contract left to right: (left, right, result) subscripts of each step; a step keeps the
    letters that a later operand or the output still needs."""
    steps = []
    acc = terms[0]
    for k in range(1, len(terms)):
        later = set("".join(terms[k + 1 :])) | set(out)
        both = acc + terms[k]
        keep = "".join(dict.fromkeys(c for c in both if c in later))
        if k == len(terms) - 1:
            keep = out
        steps.append((acc, terms[k], keep))
        acc = keep
    return steps


def _einsum_peak(args: Sequence[Arg]) -> int:
    terms, out, sizes = parse_einsum(args[0].value, [a.shape for a in args[1:]])
    if len(terms) == 1:
        return math.prod(sizes[c] for c in out)
    return max(math.prod(sizes[c] for c in keep) for _, _, keep in _pairwise(terms, out))


def _einsum_cost(args: Sequence[Arg], shape: Shape) -> int:
    try:
        terms, out, sizes = parse_einsum(args[0].value, [a.shape for a in args[1:]])
    except ShapeError:  # not a valid call: binding refuses it before any cost matters
        return entrywise(args, shape)
    if len(terms) == 1:
        work = math.prod(sizes[c] for c in terms[0])
    else:
        work = sum(math.prod(sizes[c] for c in set(a + b)) for a, b, _ in _pairwise(terms, out))
    return work + entrywise(args[1:], shape)


@register(
    "einsum",
    "einsum('ij,jk->ik', A, B, ...)",
    "Sum of products over repeated letters (Einstein summation); every axis is named by a "
    "letter, and the specification is checked against the shapes before any draw",
    "the output's letters",
    _einsum_infer,
    nargs=(2, MAX_OPERANDS + 1),
    static=(0,),
    category="tensor",
    cost=_einsum_cost,
    sensitive=None,
    peak=_einsum_peak,
)
def _einsum(torch: Any, spec: str, *xs: Any) -> Any:
    terms, out, _ = parse_einsum(spec, [tuple(x.shape[1:]) for x in xs])
    used = set("".join(terms))
    batch = next(c for c in string.ascii_letters if c not in used)
    if len(xs) == 1:
        return torch.einsum(f"{batch}{terms[0]}->{batch}{out}", xs[0])
    acc = xs[0]
    for (a, b, keep), x in zip(_pairwise(terms, out), xs[1:], strict=True):
        acc = torch.einsum(f"{batch}{a},{batch}{b}->{batch}{keep}", acc, x)
    return acc
