"""Constants and triangular parts: ``arange``, ``full``, ``onehot`` (constructors, sizes fixed
before any draw) and ``tril``/``triu`` (the triangular part of any matrix expression). Matrix
literals such as ``[[0, 1], [1, 0]]`` are part of the expression syntax itself; ``eye``,
``ones`` and ``zeros`` live with the other matrix functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matgrad.lang.functions import (
    Arg,
    Shape,
    ShapeError,
    entrywise,
    fmt_shape,
    register,
)


def _size(v: Any, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ShapeError(f"needs {what} to be a positive integer constant or dim, got {v!r}")
    return v


def _arange_infer(args: Sequence[Arg]) -> Shape:
    return (_size(args[0].value, "the size n"),)


@register(
    "arange",
    "arange(n)",
    "The vector [0, 1, ..., n - 1]",
    "[n]",
    _arange_infer,
    static=(0,),
    category="constructor",
    cost=entrywise,
    sensitive=None,
)
def _arange(torch: Any, n: int, *, like: Any) -> Any:
    return torch.arange(n, dtype=like.dtype, device=like.device)


def _full_shape(v: Any) -> Shape:
    items = v if isinstance(v, tuple) else (v,)
    return tuple(_size(d, "a size") for d in items)


def _full_infer(args: Sequence[Arg]) -> Shape:
    c = args[1].value
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        raise ShapeError(f"needs a number to fill with, got {c!r}")
    return _full_shape(args[0].value)


@register(
    "full",
    "full((m, n), c)",
    "A tensor of the given shape (a size, or a tuple of sizes) with every entry c",
    "the given shape",
    _full_infer,
    nargs=2,
    static=(0, 1),
    category="constructor",
    cost=entrywise,
    sensitive=None,
)
def _full(torch: Any, shape: Any, c: float, *, like: Any) -> Any:
    return torch.full(_full_shape(shape), float(c), dtype=like.dtype, device=like.device)


def _onehot_infer(args: Sequence[Arg]) -> Shape:
    n = _size(args[1].value, "the size n")
    i = args[0].value
    if not isinstance(i, int) or isinstance(i, bool) or not -n <= i < n:
        raise ShapeError(f"needs an index i with -{n} <= i < {n}, got {i!r}")
    return (n,)


@register(
    "onehot",
    "onehot(i, n)",
    "The vector [n] with 1 at index i and 0 elsewhere (e_i)",
    "[n]",
    _onehot_infer,
    nargs=2,
    static=(0, 1),
    category="constructor",
    cost=entrywise,
    sensitive=None,
)
def _onehot(torch: Any, i: int, n: int, *, like: Any) -> Any:
    out = torch.zeros(n, dtype=like.dtype, device=like.device)
    out[i] = 1.0
    return out


def _tri_infer(args: Sequence[Arg]) -> Shape:
    shape = args[0].shape
    if len(shape) < 2:
        raise ShapeError(f"needs a matrix (or a batch of them), got shape {fmt_shape(shape)}")
    if len(args) > 1:
        k = args[1].value
        if not isinstance(k, int) or isinstance(k, bool):
            raise ShapeError(f"the diagonal offset k must be an integer, got {k!r}")
    return shape


def _triangle(name: str, where: str) -> None:
    """``tril``/``triu``: the entries on and ``where`` diagonal k, zeros elsewhere."""
    register(
        name,
        f"{name}(M, k=0)",
        f"The {'lower' if name == 'tril' else 'upper'}-triangular part: entries on and {where} "
        f"diagonal k, zeros {'above' if name == 'tril' else 'below'}",
        "shape of M",
        _tri_infer,
        nargs=(1, 2),
        static=(1,),
        category="matrix",
        cost=entrywise,
        sensitive=None,
    )(lambda torch, m, k=0: getattr(torch, name)(m, k))


_triangle("tril", "below")
_triangle("triu", "above")
