"""Decompositions and matrix functions: ``cholesky``, ``qr``, ``svd``, ``svdvals``, ``eigh``,
``solve_triangular``, ``lstsq``, ``logm``, ``sqrtm``, ``adj`` and ``matrix_norm``.

Functions with several results name them (``qr(A).Q``, ``svd(A).S``, ``eigh(S).vectors``).

Gauge: eigenvectors and singular vectors are defined only up to sign. Every function here
that returns them returns them in one canonical gauge, so a claim about a single vector has
one meaning on every draw: each eigenvector (each left singular vector, with its right one
flipped alike) has its entry of largest size positive, and ``qr`` returns R with a positive
diagonal (the unique reduced QR of a full-rank matrix). The gauge flips where two entries of
a vector tie in size; the degeneracy guard measures that and redraws such trials
(``matgrad.engine.degeneracy``).

``torch`` is passed in, as in ``matgrad.lang.functions``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matgrad.lang.functions import (
    ENTRY,
    SQUARE,
    Arg,
    Shape,
    ShapeError,
    cubic,
    entrywise,
    fmt_shape,
    need_matrix,
    need_square,
    register,
)


def _mT(x: Any) -> Any:
    return x.transpose(-1, -2)


def _sym(m: Any) -> Any:
    return 0.5 * (m + m.mH)  # the Hermitian part (the symmetric part of a real m)




def _svd_cost(factor: int) -> Any:
    def cost(args: Sequence[Arg], out: Any) -> int:
        shape = args[0].shape
        if len(shape) != 2:
            return entrywise(args, ())
        m, n = shape
        return factor * max(m, n) * min(m, n) ** 2 + entrywise(args, ())

    return cost


# ---- the sign gauge -------------------------------------------------------------------------


def gauge_signs(torch: Any, vecs: Any) -> Any:
    """[T, k]: the sign that makes the entry of largest size of each column positive; for
    complex columns the phase that makes it real and positive (not detached: it varies
    smoothly with the columns, and the gauged columns are then a function of the matrix)."""
    if vecs.is_complex():
        idx = vecs.abs().argmax(dim=-2, keepdim=True)
        top = vecs.gather(-2, idx).squeeze(-2)
        size = top.abs()
        return torch.where(size > 0, size / top, torch.ones_like(top))
    # A real sign is a choice, not a rounded result: it is made outside any rounding-noise
    # estimate (Monte Carlo arithmetic would move the entries it compares and flip it).
    with torch.no_grad(), torch.utils._python_dispatch._disable_current_modes():
        plain = vecs.detach()
        idx = plain.abs().argmax(dim=-2, keepdim=True)
        top = plain.gather(-2, idx).squeeze(-2)
        return torch.where(top < 0, -1.0, 1.0).to(vecs.dtype)


def gauge_margin(torch: Any, vecs: Any) -> Any:
    """[T]: how far each trial's columns are from a tie between their two largest entries in
    size (where the canonical sign flips), relative to the largest; inf for one-entry columns."""
    if vecs.shape[-2] < 2:
        return torch.full(vecs.shape[:1], float("inf"), dtype=vecs.dtype, device=vecs.device)
    top2 = vecs.abs().topk(2, dim=-2).values  # [T, 2, k]
    rel = (top2[:, 0] - top2[:, 1]) / top2[:, 0].clamp_min(torch.finfo(vecs.dtype).tiny)
    return rel.amin(dim=-1)


def eigh_gauged(torch: Any, m: Any) -> tuple[Any, Any]:
    lam, vecs = torch.linalg.eigh(_sym(m))
    return lam, vecs * gauge_signs(torch, vecs).unsqueeze(-2)


# ---- cholesky ------------------------------------------------------------------------------


def _cholesky_infer(args: Sequence[Arg], upper: Any = False) -> Shape:
    if not isinstance(upper, bool):
        raise ShapeError(f"option upper= must be True or False, got {upper!r}")
    return (need_square(args[0], SQUARE),) * 2


@register(
    "cholesky",
    "cholesky(S, upper=False)",
    "Cholesky factor of a symmetric positive definite S: lower L with S = L L^T (upper=True: "
    "upper U = L^T); NaN where S is not positive definite",
    "[n, n]",
    _cholesky_infer,
    category="decomposition",
    cost=cubic(4),
    sensitive="cond",
    keywords={"upper": False},
    symmetric_arg=True,
)
def _cholesky(torch: Any, m: Any, upper: bool = False) -> Any:
    out, info = torch.linalg.cholesky_ex(_sym(m), upper=upper)
    bad = (info != 0).reshape(-1, 1, 1)
    return torch.where(bad, torch.full_like(out, float("nan")), out)


# ---- qr ------------------------------------------------------------------------------------


def _qr_infer(args: Sequence[Arg]) -> tuple[Shape, Shape]:
    m, n = need_matrix(args[0])
    k = min(m, n)
    return (m, k), (k, n)


@register(
    "qr",
    "qr(A).Q / qr(A).R",
    "Reduced QR of [m, n]: Q [m, k] with orthonormal columns, R [k, n] upper triangular with "
    "a positive diagonal, k = min(m, n)",
    "Q [m, k], R [k, n]",
    _qr_infer,
    category="decomposition",
    cost=_svd_cost(4),
    sensitive="cond",
    parts=("Q", "R"),
)
def _qr(torch: Any, a: Any) -> tuple[Any, Any]:
    q, r = torch.linalg.qr(a)
    d = r.diagonal(dim1=-2, dim2=-1)
    signs = torch.where(d < 0, -1.0, 1.0).to(a.dtype).detach()
    return q * signs.unsqueeze(-2), r * signs.unsqueeze(-1)


# ---- svd, svdvals --------------------------------------------------------------------------


def _svd_infer(args: Sequence[Arg]) -> tuple[Shape, Shape, Shape]:
    m, n = need_matrix(args[0])
    k = min(m, n)
    return (m, k), (k,), (k, n)


@register(
    "svd",
    "svd(A).U / svd(A).S / svd(A).Vh",
    "Reduced SVD A = U diag(S) Vh of [m, n]: U [m, k], S [k] descending, Vh [k, n], "
    "k = min(m, n); each column of U has its largest entry positive",
    "U [m, k], S [k], Vh [k, n]",
    _svd_infer,
    category="decomposition",
    cost=_svd_cost(20),
    sensitive="svd",
    parts=("U", "S", "Vh"),
    gauged=True,
)
def _svd(torch: Any, a: Any) -> tuple[Any, Any, Any]:
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    signs = gauge_signs(torch, u)
    return u * signs.unsqueeze(-2), s, vh * signs.conj().unsqueeze(-1)


@register(
    "svdvals",
    "svdvals(A)",
    "Singular values of [m, n], descending",
    "[min(m, n)]",
    lambda args: (min(need_matrix(args[0])),),
    category="decomposition",
    cost=_svd_cost(10),
    sensitive="cond",
)
def _svdvals(torch: Any, a: Any) -> Any:
    return torch.linalg.svdvals(a)


# ---- eigh ----------------------------------------------------------------------------------


def eigen_infer(args: Sequence[Arg]) -> tuple[Shape, Shape]:
    n = need_square(args[0], SQUARE)
    return (n,), (n, n)


@register(
    "eigh",
    "eigh(S).values / eigh(S).vectors",
    "Eigen-decomposition of a symmetric S: values [n] ascending and orthonormal vectors "
    "(columns) in that order, each with its largest entry positive",
    "values [n], vectors [n, n]",
    eigen_infer,
    category="eigen",
    cost=cubic(30),
    sensitive="gap",
    parts=("values", "vectors"),
    symmetric_arg=True,
    gauged=True,
)
def _eigh(torch: Any, m: Any) -> tuple[Any, Any]:
    return eigh_gauged(torch, m)


# ---- triangular solve, least squares --------------------------------------------------------


def _solve_triangular_infer(
    args: Sequence[Arg], upper: Any = None, left: Any = True, unitriangular: Any = False
) -> Shape:
    if not isinstance(upper, bool):
        raise ShapeError(
            "needs upper=True (A upper triangular) or upper=False (lower): it reads only that "
            "triangle of A"
        )
    for key, v in (("left", left), ("unitriangular", unitriangular)):
        if not isinstance(v, bool):
            raise ShapeError(f"option {key}= must be True or False, got {v!r}")
    a, b = args
    n = need_square(a, SQUARE)
    if left:
        if len(b.shape) not in (1, 2) or b.shape[0] != n:
            raise ShapeError(
                f"needs B with {n} rows to match A {fmt_shape(a.shape)}, got {fmt_shape(b.shape)}"
            )
    elif len(b.shape) != 2 or b.shape[1] != n:
        raise ShapeError(
            f"with left=False needs B [k, {n}] to match A {fmt_shape(a.shape)}, got "
            f"{fmt_shape(b.shape)}"
        )
    return b.shape


@register(
    "solve_triangular",
    "solve_triangular(A, B, upper=, left=True, unitriangular=False)",
    "X with A X = B (left=False: X A = B) for triangular A; reads only the triangle named by "
    "upper= (required), and takes its diagonal as ones when unitriangular=True",
    "shape of B",
    _solve_triangular_infer,
    nargs=2,
    category="decomposition",
    cost=cubic(2),
    sensitive="triangular",
    keywords={"upper": None, "left": True, "unitriangular": False},
)
def _solve_triangular(
    torch: Any, a: Any, b: Any, upper: bool = False, left: bool = True, unitriangular: bool = False
) -> Any:
    if b.dim() == 2:
        x = torch.linalg.solve_triangular(
            a, b.unsqueeze(-1), upper=upper, left=True, unitriangular=unitriangular
        )
        return x.squeeze(-1)
    return torch.linalg.solve_triangular(a, b, upper=upper, left=left, unitriangular=unitriangular)


def _lstsq_infer(args: Sequence[Arg]) -> Shape:
    a, b = args
    m, n = need_matrix(a)
    if m < n:
        raise ShapeError(
            f"needs A [m, n] with m >= n (an overdetermined system), got {fmt_shape(a.shape)}; "
            f"use pinv(A) @ B for the least-norm solution"
        )
    if len(b.shape) not in (1, 2) or b.shape[0] != m:
        raise ShapeError(
            f"needs B with {m} rows to match A {fmt_shape(a.shape)}, got {fmt_shape(b.shape)}"
        )
    return (n, *b.shape[1:])


@register(
    "lstsq",
    "lstsq(A, B)",
    "Least-squares solution X minimising ||A X - B|| for A [m, n] of full column rank, m >= n",
    "[n, k] or [n]",
    _lstsq_infer,
    nargs=2,
    category="decomposition",
    cost=_svd_cost(4),
    sensitive="cond",
)
def _lstsq(torch: Any, a: Any, b: Any) -> Any:
    if b.dim() == 2:
        return torch.linalg.lstsq(a, b.unsqueeze(-1)).solution.squeeze(-1)
    return torch.linalg.lstsq(a, b).solution


# ---- functions of a symmetric matrix: logm, sqrtm --------------------------------------------

_SYM_FUNCTIONS: dict[tuple[int, str], Any] = {}  # (id(torch), name) -> autograd Function


def _divided(torch: Any, name: str, lam: Any) -> tuple[Any, Any]:
    """f(lam) [T, n] and the first divided differences F [T, n, n] of f at lam, with
    F[i, i] = f'(lam_i), computed without cancellation at close eigenvalues."""
    li, lj = lam.unsqueeze(-1), lam.unsqueeze(-2)
    if name == "sqrtm":
        r = torch.sqrt(lam)
        return r, 1.0 / (r.unsqueeze(-1) + r.unsqueeze(-2))
    # log: (log a - log b) / (a - b) = log1p(x) / (x b) with x = (a - b) / b
    x = (li - lj) / lj
    small = x.abs() < 1e-4
    safe = torch.where(small, torch.ones_like(x), x)
    series = 1.0 - x / 2.0 + x * x / 3.0
    h = torch.where(small, series, torch.log1p(safe) / safe)
    return torch.log(lam), h / lj


def _sym_function(torch: Any, name: str, m: Any) -> Any:
    """f(S) = Q f(L) Q^T for symmetric S; its derivative is the Daleckii-Krein formula
    Q (F o (Q^T E Q)) Q^T, F the divided differences of f, which stays exact where eigenvalues
    repeat (autograd through eigh would divide by their gap). The backward recomputes from S
    with differentiable operations, so second derivatives are right too."""
    key = (id(torch), name)
    fn = _SYM_FUNCTIONS.get(key)
    if fn is None:

        class SymFunction(torch.autograd.Function):  # type: ignore[misc]
            @staticmethod
            def forward(ctx: Any, a: Any) -> Any:
                ctx.save_for_backward(a)
                lam, q = torch.linalg.eigh(a)
                f, _ = _divided(torch, name, lam)
                return (q * f.to(q.dtype).unsqueeze(-2)) @ q.mH  # mH: Hermitian S too

            @staticmethod
            def backward(ctx: Any, g: Any) -> Any:
                (a,) = ctx.saved_tensors
                lam, q = torch.linalg.eigh(a)
                _, div = _divided(torch, name, lam)
                return q @ (div * (q.mH @ _sym(g) @ q)) @ q.mH

        fn = _SYM_FUNCTIONS[key] = SymFunction
    return fn.apply(_sym(m))


def _register_sym_function(name: str, summary: str) -> None:
    register(
        name,
        f"{name}(S)",
        summary,
        "[n, n]",
        lambda args: (need_square(args[0], SQUARE),) * 2,
        category="matrix",
        cost=cubic(40),
        sensitive="branch",
        symmetric_arg=True,
    )(lambda torch, m: _sym_function(torch, name, m))


_register_sym_function(
    "logm",
    "Principal matrix logarithm of a symmetric positive definite S (NaN where an eigenvalue "
    "is not positive)",
)
_register_sym_function(
    "sqrtm",
    "Principal matrix square root of a symmetric positive semi-definite S (NaN where an "
    "eigenvalue is negative)",
)


# ---- adjugate ------------------------------------------------------------------------------


MAX_ADJ = 6  # adj expands determinants of minors by cofactors: (n-1)! products per minor


def _adj_infer(args: Sequence[Arg]) -> Shape:
    n = need_square(args[0], SQUARE)
    if n > MAX_ADJ:
        raise ShapeError(
            f"is computed by cofactor expansion, exact at singular matrices, for n <= {MAX_ADJ}; "
            f"got n = {n} (for an invertible M write det(M) * inv(M))"
        )
    return (n, n)


def _adj_cost(args: Sequence[Arg], out: Shape) -> int:
    shape = args[0].shape
    n = shape[-1] if shape else 1
    return ENTRY * n * n * math.factorial(max(n - 1, 1)) * n + entrywise(args, out)


@register(
    "adj",
    "adj(M)",
    f"Adjugate (transposed cofactor matrix) of a square M, n <= {MAX_ADJ}: det(M) inv(M) where M "
    "is invertible, a polynomial defined and differentiable everywhere",
    "[n, n]",
    _adj_infer,
    cost=_adj_cost,
    sensitive=None,
)
def _adj(torch: Any, m: Any) -> Any:
    n = m.shape[-1]
    if n == 1:
        return torch.ones_like(m)
    keep = [[k for k in range(n) if k != i] for i in range(n)]
    rows = torch.tensor(keep, device=m.device)  # [n, n-1]: the indices left after deleting i
    minors = m[:, rows][:, :, :, rows]  # [T, i, r, j, c]: row i and column j deleted
    dets = _laplace_det(torch, minors.permute(0, 1, 3, 2, 4))  # [T, i, j]
    idx = torch.arange(n, device=m.device)
    signs = 1.0 - 2.0 * ((idx.unsqueeze(-1) + idx.unsqueeze(0)) % 2).to(m.dtype)
    return _mT(dets * signs)


def _laplace_det(torch: Any, x: Any) -> Any:
    """det of [..., k, k] by cofactor expansion along the first row: a polynomial in the
    entries, so its autograd derivative is exact at singular matrices too (torch's det
    backward is not, for a matrix of rank k - 2 or less)."""
    k = x.shape[-1]
    if k == 1:
        return x[..., 0, 0]
    if k == 2:
        return x[..., 0, 0] * x[..., 1, 1] - x[..., 0, 1] * x[..., 1, 0]
    total = None
    for j in range(k):
        cols = [c for c in range(k) if c != j]
        term = x[..., 0, j] * _laplace_det(torch, x[..., 1:, cols])
        term = term if j % 2 == 0 else -term
        total = term if total is None else total + term
    return total


# ---- matrix norms --------------------------------------------------------------------------

ORDS = ("fro", "nuc", 2, -2, 1, -1, "inf", "-inf")


def norm_ord(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def matrix_norm_infer(args: Sequence[Arg], ord: Any = "fro") -> Shape:
    need_matrix(args[0])
    if norm_ord(ord) not in ORDS:
        shown = ", ".join(repr(o) for o in ORDS)
        raise ShapeError(f"option ord= must be one of {shown}, got {ord!r}")
    return ()


def matrix_norm_value(torch: Any, a: Any, ord: Any) -> Any:
    o = norm_ord(ord)
    torch_ord = {"inf": math.inf, "-inf": -math.inf}.get(o, o) if isinstance(o, str) else o
    if o in ("fro", "nuc"):
        torch_ord = o
    return torch.linalg.matrix_norm(a, ord=torch_ord)


def matrix_norm_margin(torch: Any, a: Any, ord: Any = "fro") -> Any:
    """The relative distance to where the norm is not differentiable: a zero singular value
    (nuc, -2), a tie of the two extreme singular values (2, -2) or of the two extreme
    column/row sums (1, -1, inf, -inf), or a zero entry (1, -1, inf, -inf: |x| at 0)."""
    o = norm_ord(ord)
    inf = torch.full(a.shape[:1], float("inf"), dtype=a.dtype, device=a.device)
    tiny = torch.finfo(a.dtype).tiny
    if o == "fro":
        return inf
    if o in ("nuc", 2, -2):
        s = torch.linalg.svdvals(a)
        top = s[:, 0].clamp_min(tiny)
        if o == "nuc":
            return s[:, -1] / top
        pair = (s[:, 0] - s[:, 1]) if o == 2 else (s[:, -2] - s[:, -1])
        out = inf if s.shape[-1] < 2 else pair / top
        return torch.minimum(out, s[:, -1] / top) if o == -2 else out
    sums = a.abs().sum(dim=-2 if o in (1, -1) else -1)  # column sums for 1, row sums for inf
    zero = a.abs().flatten(1).amin(dim=1) / a.abs().flatten(1).amax(dim=1).clamp_min(tiny)
    if sums.shape[-1] < 2:
        return zero
    top2 = sums.topk(2, dim=-1, largest=o in (1, "inf")).values
    tie = (top2[:, 0] - top2[:, 1]).abs() / sums.abs().amax(dim=-1).clamp_min(tiny)
    return torch.minimum(tie, zero)


def matrix_norm_branch(torch: Any, a: Any, ord: Any = "fro") -> Any:
    """The piece of the norm at ``a`` (see :func:`matrix_norm_margin`): for 1, -1, inf, -inf
    the signs of the entries and which column (row) sum is the extreme one; for the spectral
    norms which singular values are zero (the kink of nuc and -2; a tie of two singular values
    leaves no trace in their sorted values, so a step across one goes unseen); nothing for the
    Frobenius norm. Complex entries: their moduli have no sign to change."""
    o = norm_ord(ord)
    t = a.shape[0]
    if o == "fro":
        return torch.zeros(t, 1, dtype=a.real.dtype, device=a.device)
    if o in ("nuc", 2, -2):
        s = torch.linalg.svdvals(a)
        return (s > 0).to(s.dtype)  # a singular value reaching 0 is nuc's and -2's kink
    sums = a.abs().sum(dim=-2 if o in (1, -1) else -1)
    pick = (torch.argmax if o in (1, "inf") else torch.argmin)(sums, dim=-1)
    signs = torch.zeros_like(a.real) if a.is_complex() else torch.sign(a)
    return torch.cat([signs.reshape(t, -1), pick.reshape(t, 1).to(signs.dtype)], dim=1)


@register(
    "matrix_norm",
    "matrix_norm(A, ord='fro')",
    "Matrix norm of [m, n]: ord 'fro', 'nuc' (sum of singular values), 2 / -2 (largest / "
    "smallest singular value), 1 / -1 (largest / smallest column sum of |A|), 'inf' / '-inf' "
    "(the same over rows)",
    "[]",
    matrix_norm_infer,
    category="decomposition",
    cost=_svd_cost(10),
    sensitive="kink",
    keywords={"ord": "fro"},
    margin=matrix_norm_margin,
    branch=matrix_norm_branch,
)
def _matrix_norm(torch: Any, a: Any, ord: Any = "fro") -> Any:
    return matrix_norm_value(torch, a, ord)


# LU, general eig and norm (which shares matrix_norm) live in modules of their own; they
# register on import with this family.
from matgrad.lang import fn_eig, fn_lu, fn_norm  # noqa: E402, F401
