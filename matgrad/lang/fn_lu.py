"""LU with partial pivoting and the solves built on factors: ``lu``, ``lu_solve`` and
``cholesky_inverse``.

``lu(A)`` is ``torch.linalg.lu``: ``A = P L U`` with ``P`` a permutation, ``L`` unit lower
triangular (every entry at most 1 in size) and ``U`` upper triangular. ``P`` is piecewise
constant: it changes where two candidate pivots tie in size, and ``L`` and ``U`` jump there.
Below the diagonal, ``|L[i, j]|`` is the size of candidate pivot i at step j relative to the
pivot chosen, so ``1 - max |L[i, j]|`` measures how far a draw is from such a tie; the
degeneracy guard redraws trials too close to one, or whose ``U`` is nearly singular
(:func:`pivot_margin`).

``lu_solve(P, L, U, B)`` solves ``P L U X = B`` (``left=False``: ``X P L U = B``;
``adjoint=True``: the system with the conjugate transpose of ``P L U``), as
``torch.linalg.lu_solve`` does from its packed factors: it reads the strictly lower triangle
of ``L`` (its diagonal taken as ones) and the upper triangle of ``U``, so derivatives in ``L``
are strictly lower and those in ``U`` upper triangular.

``torch`` is passed in, as in ``matgrad.lang.functions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matgrad.lang.functions import (
    Arg,
    Shape,
    ShapeError,
    cubic,
    entrywise,
    fmt_shape,
    is_square,
    need_matrix,
    register,
)


def _lu_cost(args: Sequence[Arg], out: Any) -> int:
    shape = args[0].shape
    if len(shape) != 2:
        return entrywise(args, ())
    m, n = shape
    return 2 * max(m, n) * min(m, n) ** 2 + entrywise(args, ())


def _lu_infer(args: Sequence[Arg]) -> tuple[Shape, Shape, Shape]:
    m, n = need_matrix(args[0])
    k = min(m, n)
    return (m, m), (m, k), (k, n)


@register(
    "lu",
    "lu(A).P / lu(A).L / lu(A).U",
    "LU with partial pivoting of [m, n], A = P L U: P [m, m] a permutation, L [m, k] unit "
    "lower triangular with entries at most 1 in size, U [k, n] upper triangular, k = min(m, n)",
    "P [m, m], L [m, k], U [k, n]",
    _lu_infer,
    category="decomposition",
    cost=_lu_cost,
    sensitive="pivot",
    parts=("P", "L", "U"),
)
def _lu(torch: Any, a: Any) -> tuple[Any, Any, Any]:
    p, lower, upper = torch.linalg.lu(a)
    return p, lower, upper


def pivot_margin(torch: Any, a: Any) -> Any:
    """[T]: the least of how far partial pivoting is from a tie between two candidate pivots
    (``1 - max |L[i, j]|`` below the diagonal: candidate i at step j relative to the pivot
    chosen) and the reciprocal condition number of the leading square block of ``U`` (the
    derivative of the factors solves with it). Both are relative, so a scale leaves them."""
    _, lower, upper = torch.linalg.lu(a)
    m, k = lower.shape[-2], lower.shape[-1]
    inf = torch.full(a.shape[:1], float("inf"), dtype=lower.real.dtype, device=a.device)
    below = torch.tril(lower.abs(), -1)
    steps = [j for j in range(k) if j < m - 1]  # steps with two candidates or more
    tie = inf
    if steps:
        tie = (1.0 - below[:, :, steps].amax(dim=-2)).amin(dim=-1)
    square = upper[:, :k, :k]
    s = torch.linalg.svdvals(square)
    rcond = torch.where(s[:, 0] > 0, s[:, -1] / s[:, 0], torch.zeros_like(s[:, 0]))
    return torch.minimum(tie, rcond)


# ---- lu_solve ------------------------------------------------------------------------------


def _lu_solve_infer(args: Sequence[Arg], left: Any = True, adjoint: Any = False) -> Shape:
    for key, v in (("left", left), ("adjoint", adjoint)):
        if not isinstance(v, bool):
            raise ShapeError(f"option {key}= must be True or False, got {v!r}")
    p, lower, upper, b = args
    for name, a in (("P", p), ("L", lower), ("U", upper)):
        if not is_square(a.shape):
            raise ShapeError(
                f"needs square factors [n, n] (P, L, U of lu(A) for a square A), got {name} "
                f"{fmt_shape(a.shape)}"
            )
    n = p.shape[0]
    if lower.shape[0] != n or upper.shape[0] != n:
        raise ShapeError(
            f"needs P, L and U of one size, got {fmt_shape(p.shape)}, {fmt_shape(lower.shape)}, "
            f"{fmt_shape(upper.shape)}"
        )
    if left:
        if len(b.shape) not in (1, 2) or b.shape[0] != n:
            raise ShapeError(
                f"needs B with {n} rows to match the factors, got {fmt_shape(b.shape)}"
            )
    elif len(b.shape) != 2 or b.shape[1] != n:
        raise ShapeError(
            f"with left=False needs B [k, {n}] to match the factors, got {fmt_shape(b.shape)}"
        )
    return b.shape


@register(
    "lu_solve",
    "lu_solve(P, L, U, B, left=True, adjoint=False)",
    "X with P L U X = B from the factors of lu(A) (left=False: X P L U = B; adjoint=True: "
    "with the conjugate transpose of P L U); reads L's strictly lower triangle (unit diagonal) "
    "and U's upper triangle",
    "shape of B",
    _lu_solve_infer,
    nargs=4,
    category="decomposition",
    cost=cubic(2),
    sensitive="factors",
    keywords={"left": True, "adjoint": False},
)
def _lu_solve(
    torch: Any, p: Any, lower: Any, upper: Any, b: Any, left: bool = True, adjoint: bool = False
) -> Any:
    vector = b.dim() == 2
    if vector:
        b = b.unsqueeze(-1)
    if not adjoint:
        if left:  # X = U^-1 L^-1 P^T B
            y = torch.linalg.solve_triangular(
                lower, p.mT @ b, upper=False, unitriangular=True, left=left
            )
            x = torch.linalg.solve_triangular(upper, y, upper=True, left=left)
        else:  # X = B U^-1 L^-1 P^T
            y = torch.linalg.solve_triangular(upper, b, upper=True, left=left)
            x = torch.linalg.solve_triangular(lower, y, upper=False, unitriangular=True, left=left)
            x = x @ p.mT
    else:
        lh, uh = torch.tril(lower, -1).mH, torch.triu(upper).mH
        if left:  # (P L U)^H X = B: X = P L^-H U^-H B
            y = torch.linalg.solve_triangular(uh, b, upper=False, left=left)
            x = p @ torch.linalg.solve_triangular(lh, y, upper=True, unitriangular=True, left=left)
        else:  # X (P L U)^H = B: X = B P L^-H U^-H
            y = torch.linalg.solve_triangular(lh, b @ p, upper=True, unitriangular=True, left=left)
            x = torch.linalg.solve_triangular(uh, y, upper=False, left=left)
    return x.squeeze(-1) if vector else x


def factors_rcond(torch: Any, lower: Any, upper: Any) -> Any:
    """[T]: the reciprocal condition number of the worse of the triangles ``lu_solve`` reads
    (L's strictly lower part with a unit diagonal, U's upper part)."""
    n = lower.shape[-1]
    eye = torch.eye(n, dtype=lower.dtype, device=lower.device)
    worst = None
    for tri in (torch.tril(lower, -1) + eye, torch.triu(upper)):
        s = torch.linalg.svdvals(tri)
        r = torch.where(s[:, 0] > 0, s[:, -1] / s[:, 0], torch.zeros_like(s[:, 0]))
        worst = r if worst is None else torch.minimum(worst, r)
    return worst


# ---- cholesky_inverse ----------------------------------------------------------------------


def _cholesky_inverse_infer(args: Sequence[Arg], upper: Any = False) -> Shape:
    if not isinstance(upper, bool):
        raise ShapeError(f"option upper= must be True or False, got {upper!r}")
    if not is_square(args[0].shape):
        raise ShapeError(f"needs a square factor [n, n], got shape {fmt_shape(args[0].shape)}")
    return args[0].shape


@register(
    "cholesky_inverse",
    "cholesky_inverse(L, upper=False)",
    "Inverse (L L^H)^-1 of the matrix whose Cholesky factor is L (upper=True: (U^H U)^-1); "
    "reads only that triangle of the factor",
    "[n, n]",
    _cholesky_inverse_infer,
    category="decomposition",
    cost=cubic(2),
    sensitive="triangular",
    keywords={"upper": False},
)
def _cholesky_inverse(torch: Any, factor: Any, upper: bool = False) -> Any:
    # torch's op reads one triangle but its backward treats the factor as dense: taking the
    # triangle first makes the derivative that of the function computed (triangular too)
    tri = torch.triu(factor) if upper else torch.tril(factor)
    return torch.cholesky_inverse(tri, upper=upper)
