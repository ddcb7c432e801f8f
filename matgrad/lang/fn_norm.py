"""``norm``: the 2-norm of a vector, the Frobenius norm of a matrix, 2-norms along ``axis=``,
and with ``ord=`` the matrix norms of ``matrix_norm`` (one implementation, in
``matgrad.lang.fn_decomp``) or the vector norms 1, 2, 'inf' and '-inf'.

``inf`` is written as the string ``'inf'`` (``'-inf'``): the language has no name ``inf``.
With ``ord=`` the norm is of the whole argument (no ``axis=``); the norms with ``ord=`` are
not differentiable where a singular value is zero or two tie, or where an entry or a row or
column sum sits at a kink or a tie, and the degeneracy guard measures that
(``fn_decomp.matrix_norm_margin``).

``torch`` is passed in, as in ``matgrad.lang.functions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matgrad.lang.fn_axes import normalize_axes, reduce_infer
from matgrad.lang.fn_decomp import (
    matrix_norm_branch,
    matrix_norm_infer,
    matrix_norm_margin,
    matrix_norm_value,
    norm_ord,
)
from matgrad.lang.functions import Arg, Shape, ShapeError, entrywise, is_vector, register

VECTOR_ORDS = (1, 2, "inf", "-inf")
SPECTRAL = ("nuc", 2, -2)  # the ords that take singular values of a matrix


def _norm_infer(
    args: Sequence[Arg], axis: Any = None, keepdim: Any = False, ord: Any = None
) -> Shape:
    if ord is None:
        return reduce_infer(args, axis, keepdim)
    if axis is not None or keepdim is not False:
        raise ShapeError(
            "with ord= takes the norm of the whole argument: leave out axis= and keepdim="
        )
    shape = args[0].shape
    if is_vector(shape):
        if norm_ord(ord) not in VECTOR_ORDS:
            shown = ", ".join(repr(o) for o in VECTOR_ORDS)
            raise ShapeError(f"of a vector takes ord= one of {shown}, got {ord!r}")
        return ()
    return matrix_norm_infer(args, ord)


def _norm_cost(args: Sequence[Arg], out: Shape, ord: Any = None, **_: Any) -> int:
    shape = args[0].shape
    if len(shape) == 2 and norm_ord(ord) in SPECTRAL and not is_vector(shape):
        m, n = shape
        return 10 * max(m, n) * min(m, n) ** 2 + entrywise(args, out)
    return entrywise(args, out)


_norm_cost.takes_options = True  # type: ignore[attr-defined]  # read by spec/budget.py


def _as_matrix(x: Any) -> Any:
    """A batched vector [T, n] (or column [T, n, 1]) as the column [T, n, 1]: its matrix
    norms 1, 2, 'inf', '-inf' are its vector norms."""
    return x.unsqueeze(-1) if x.dim() == 2 else x


def _norm_margin(
    torch: Any, x: Any, axis: Any = None, keepdim: bool = False, ord: Any = None
) -> Any:
    if ord is None:  # the 2-norm: smooth wherever it is not zero
        return torch.full(x.shape[:1], float("inf"), dtype=x.real.dtype, device=x.device)
    return matrix_norm_margin(torch, _as_matrix(x) if x.dim() == 2 else x, ord)


def _norm_branch(
    torch: Any, x: Any, axis: Any = None, keepdim: bool = False, ord: Any = None
) -> Any:
    if ord is None:  # the 2-norm: one piece
        return torch.zeros(x.shape[0], 1, dtype=x.real.dtype, device=x.device)
    return matrix_norm_branch(torch, _as_matrix(x) if x.dim() == 2 else x, ord)


@register(
    "norm",
    "norm(x, axis=None, keepdim=False, ord=None)",
    "2-norm of a vector, Frobenius norm of a matrix (all entries), or 2-norms along axis=; "
    "ord= a matrix norm as matrix_norm ('fro', 'nuc', 2, -2, 1, -1, 'inf', '-inf') or a vector "
    "norm (1, 2, 'inf', '-inf')",
    "[] (all entries) or the shape without axis",
    _norm_infer,
    category="reduction",
    cost=_norm_cost,
    sensitive="kink",
    keywords={"axis": None, "keepdim": False, "ord": None},
    margin=_norm_margin,
    branch=_norm_branch,
)
def _norm(torch: Any, x: Any, axis: Any = None, keepdim: bool = False, ord: Any = None) -> Any:
    if ord is not None:
        return matrix_norm_value(torch, _as_matrix(x) if x.dim() == 2 else x, ord)
    if axis is None:
        dims: tuple[int, ...] = tuple(range(1, x.dim()))
    else:
        dims = tuple(a + 1 for a in normalize_axes(axis, tuple(x.shape[1:])))
    if not dims:  # a scalar sample: nothing to reduce
        return torch.linalg.vector_norm(x.unsqueeze(-1), dim=(-1,))
    return torch.linalg.vector_norm(x, dim=dims, keepdim=keepdim)
