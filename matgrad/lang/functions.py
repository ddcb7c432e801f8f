"""The function table of the expression language: one registry for the parser, the
evaluator, ``matgrad functions`` and the README.

Each entry knows its arity, which arguments must be static integers, how to compute the
result shape from the argument shapes (before any tensor exists), and how to evaluate on
*batched* tensors: every tensor argument has a leading trial dimension, so a sample of
shape ``[m, n]`` arrives as ``[T, m, n]``. ``torch`` is passed in by the evaluator, so this
module imports no torch and ``matgrad functions`` stays fast.

Each entry also carries what the rest of matgrad needs to know about it, so adding a function
is one ``@register`` here: its ``cost`` (estimated work in multiply-adds, read by the work
budget in ``matgrad.spec.budget``) and its ``sensitive`` set (what the degeneracy guard in
``matgrad.engine.degeneracy`` measures on its first argument, or None). ``register`` takes both
as required keywords, so no function can leave them out by accident.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

Shape = tuple[int, ...]


class ShapeError(Exception):
    """A function's arguments do not fit; the caller adds the expression text."""


def fmt_shape(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def numel(shape: Shape) -> int:
    return math.prod(shape)


def is_scalar(shape: Shape) -> bool:
    return numel(shape) == 1


def is_vector(shape: Shape) -> bool:
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def is_square(shape: Shape) -> bool:
    return len(shape) == 2 and shape[0] == shape[1]


@dataclasses.dataclass(frozen=True)
class Arg:
    """What shape inference sees of an argument: its shape and, for a constant, its value
    (``static`` for a number; ``value`` for any constant a function takes in a static
    position: a number, a string, a tuple of numbers)."""

    shape: Shape
    static: float | None = None
    value: Any = None


# ---- cost: estimated work of one call, in multiply-adds of a matrix product ----------------

# Work is counted in multiply-adds of a matrix product (the cheapest operation per unit on a
# CPU); other operations are weighted by what they cost relative to it, as measured with
# torch in float64 on a CPU (see matgrad.spec.budget for how the estimate is used).
ENTRY = 30  # one elementwise operation on one entry

Cost = Callable[[Sequence[Arg], Shape], int]  # (arguments, result shape) -> work per trial


def entrywise(args: Sequence[Arg], out: Shape) -> int:
    """ENTRY per entry of the largest of the result and the arguments."""
    return ENTRY * max([numel(out)] + [numel(a.shape) for a in args])


def cubic(factor: int) -> Cost:
    """``factor * n^3`` for a function of an n x n matrix (n: the last size of the first
    argument), plus the entrywise work."""

    def cost(args: Sequence[Arg], out: Shape) -> int:
        shape = args[0].shape if args else ()
        n = shape[-1] if shape else 1
        return factor * n**3 + entrywise(args, out)

    return cost


# ---- sensitivity: what the degeneracy guard measures on the first argument ------------------

SENSITIVITIES = {
    "gap": "the smallest gap between two eigenvalues of the symmetric part, relative to the "
    "largest eigenvalue in size",
    "cond": "the 2-norm condition number",
    "cond_nonzero": "the condition number over the singular values above rounding level (for "
    "a function smooth where the rank is constant)",
    "kink": "the distance of the arguments to a kink or a tie of the function (relu at 0, "
    "two equal entries of a max), relative to their size; an entry exactly at one on every "
    "draw (a masked zero) is structural and not counted",
    # decompositions (matgrad.lang.fn_decomp)
    "svd": "the smallest gap between two singular values and the smallest singular value, "
    "relative to the largest, and how far the sign gauge of the singular vectors is from a tie",
    "triangular": "the 2-norm condition number of the triangle that is read",
    "branch": "the smallest eigenvalue of the symmetric argument relative to the largest in size "
    "(log and square root need it positive, away from the branch cut and the branch point 0)",
    # LU and general eig (matgrad.lang.fn_lu, matgrad.lang.fn_eig)
    "pivot": "how far partial pivoting is from a tie between two candidate pivots (1 - the "
    "largest |L_ij| below the diagonal) and the reciprocal condition number of U",
    "factors": "the 2-norm condition number of the worse of the triangles read (L with a unit "
    "diagonal, U)",
    "eig": "the smallest distance between two eigenvalues and between two real parts that "
    "decide the order, relative to the largest eigenvalue in size, the eigenvector gauge's "
    "distance to a tie and the reciprocal condition number of the eigenvectors",
}


@dataclasses.dataclass(frozen=True)
class Function:
    name: str
    signature: str
    summary: str
    result: str
    min_args: int
    max_args: int
    static_args: frozenset[int]
    infer: Callable[..., Any]
    impl: Callable[..., Any]
    category: str
    cost: Cost
    sensitive: str | None  # a key of SENSITIVITIES, or None: differentiable wherever defined
    # options (keyword arguments) and their defaults; infer and impl then take them as
    # keywords: infer(args, **options), impl(torch, *values, **options)
    keywords: dict[str, Any] = dataclasses.field(default_factory=dict)
    # the names of the results of a function with several (``qr(A).Q``); infer then returns
    # one shape per part and impl a tuple in this order
    parts: tuple[str, ...] = ()
    # the largest intermediate (elements per trial) beyond the arguments and the result, when
    # the function makes one (a chain of einsum contractions); None: no such intermediate
    peak: Callable[[Sequence[Arg]], int] | None = None
    # for sensitive="kink": (torch, *values, **options) -> [T] the relative distance of each
    # trial's arguments to the nearest kink or tie (the degeneracy guard redraws small ones)
    margin: Callable[..., Any] | None = None
    # defined on symmetric matrices only: the binder accepts a first argument only when it
    # is symmetric by construction (matgrad.lang.structure)
    symmetric_arg: bool = False
    # for sensitive="kink", optionally: (torch, *values, **options) -> [T, ...] a tensor that
    # stays the same while the arguments stay on one smooth piece of the function (the sign
    # of relu's argument, the index of a max): the Taylor witness leaves out the steps that
    # change it, where f's remainder says nothing about the claim
    branch: Callable[..., Any] | None = None
    # its results carry the canonical sign gauge of eigenvectors or singular vectors
    # (fn_decomp.eigh_gauged): the degeneracy guard also measures the gauge's ties
    gauged: bool = False

    def shape(self, args: Sequence[Arg], options: dict[str, Any]) -> Any:
        """The result's shape (one per part for a function with several results)."""
        return self.infer(args, **options) if self.keywords else self.infer(args)


REGISTRY: dict[str, Function] = {}


def register(
    name: str,
    signature: str,
    summary: str,
    result: str,
    infer: Callable[..., Any],
    *,
    cost: Cost,
    sensitive: str | None,
    nargs: int | tuple[int, int] = 1,
    static: Sequence[int] = (),
    category: str = "matrix",
    keywords: dict[str, Any] | None = None,
    parts: Sequence[str] = (),
    peak: Callable[[Sequence[Arg]], int] | None = None,
    margin: Callable[..., Any] | None = None,
    symmetric_arg: bool = False,
    branch: Callable[..., Any] | None = None,
    gauged: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add a function to :data:`REGISTRY` (used as a decorator on its batched ``impl``).

    ``cost`` and ``sensitive`` have no default: every function says what it costs and
    whether the degeneracy guard must measure its argument (``sensitive=None`` if not)."""
    if not callable(cost):
        raise TypeError(f"function {name!r}: cost must be callable, got {cost!r}")
    if sensitive is not None and sensitive not in SENSITIVITIES:
        raise ValueError(
            f"function {name!r}: sensitive must be None or one of "
            f"{', '.join(SENSITIVITIES)}, got {sensitive!r}"
        )
    if (sensitive == "kink") != (margin is not None):
        raise ValueError(f"function {name!r}: a margin is needed exactly when sensitive='kink'")
    if branch is not None and sensitive != "kink":
        raise ValueError(f"function {name!r}: a branch is only for sensitive='kink'")
    lo, hi = (nargs, nargs) if isinstance(nargs, int) else nargs

    def deco(impl: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY[name] = Function(
            name,
            signature,
            summary,
            result,
            lo,
            hi,
            frozenset(static),
            infer,
            impl,
            category,
            cost,
            sensitive,
            dict(keywords or {}),
            tuple(parts),
            peak,
            margin,
            symmetric_arg,
            branch,
            gauged,
        )
        return impl

    return deco


# ---- shape rules ----------------------------------------------------------------------


SQUARE = "a square matrix [n, n]"  # what a decomposition of a square matrix needs


def need_square(a: Arg, what: str = "a square matrix") -> int:
    """The size n of a square argument [n, n]; a :class:`ShapeError` naming ``what`` else."""
    if not is_square(a.shape):
        raise ShapeError(f"needs {what}, got shape {fmt_shape(a.shape)}")
    return a.shape[0]


def need_matrix(a: Arg, what: str = "a matrix [m, n]") -> tuple[int, int]:
    """The sizes (m, n) of a matrix argument; a :class:`ShapeError` naming ``what`` else."""
    if len(a.shape) != 2:
        raise ShapeError(f"needs {what}, got shape {fmt_shape(a.shape)}")
    return a.shape[0], a.shape[1]


def _need_vector(a: Arg) -> int:
    if not is_vector(a.shape):
        raise ShapeError(f"needs a vector [n] or [n, 1], got shape {fmt_shape(a.shape)}")
    return a.shape[0]


def _static_int(a: Arg, what: str, lo: int = 0) -> int:
    v = a.static
    if v is None or v != int(v):
        raise ShapeError(f"{what} must be an integer constant or dim")
    if int(v) < lo:
        raise ShapeError(f"{what} must be >= {lo}, got {int(v)}")
    return int(v)


def _scalar_result(args: Sequence[Arg]) -> Shape:
    return ()


def _same(args: Sequence[Arg]) -> Shape:
    return args[0].shape


def _square_scalar(args: Sequence[Arg]) -> Shape:
    need_square(args[0])
    return ()


def _square_same(args: Sequence[Arg]) -> Shape:
    need_square(args[0])
    return args[0].shape


# ---- batched helpers --------------------------------------------------------------------


def _mT(x: Any) -> Any:
    return x.transpose(-1, -2)


def _as_col(torch: Any, x: Any) -> Any:
    """A batched vector [T, n] or [T, n, 1] as [T, n, 1]."""
    return x.unsqueeze(-1) if x.dim() == 2 else x


def _flat(x: Any) -> Any:
    return x.reshape(x.shape[0], -1)


# ---- scalar-valued matrix functions --------------------------------------------------------


@register(
    "tr",
    "tr(M)",
    "Trace: sum of the diagonal",
    "[]",
    _square_scalar,
    cost=entrywise,
    sensitive=None,
)
def _tr(torch: Any, m: Any) -> Any:
    return m.diagonal(dim1=-2, dim2=-1).sum(-1)


# det is a polynomial, but torch's backward gives 0 where det evaluates to exactly 0.0 (a
# singular draw), not the transposed adjugate: guarded like inv
@register("det", "det(M)", "Determinant", "[]", _square_scalar, cost=cubic(1), sensitive="cond")
def _det(torch: Any, m: Any) -> Any:
    return torch.linalg.det(m)


@register(
    "logdet",
    "logdet(M)",
    "log|det M| (equals log det M for SPD matrices)",
    "[]",
    _square_scalar,
    cost=cubic(1),
    sensitive="cond",
)
def _logdet(torch: Any, m: Any) -> Any:
    return torch.linalg.slogdet(m).logabsdet


def _dot_infer(args: Sequence[Arg]) -> Shape:
    a, b = args
    if a.shape != b.shape:
        raise ShapeError(f"needs equal shapes, got {fmt_shape(a.shape)} and {fmt_shape(b.shape)}")
    return ()


@register(
    "dot",
    "dot(A, B)",
    "Frobenius inner product sum(A * B); A and B of equal shape",
    "[]",
    _dot_infer,
    nargs=2,
    category="reduction",
    cost=entrywise,
    sensitive=None,
)
def _dot(torch: Any, a: Any, b: Any) -> Any:
    return (_flat(a) * _flat(b)).sum(-1)


# ---- matrix-valued functions ------------------------------------------------------------


@register(
    "inv", "inv(M)", "Matrix inverse", "[n, n]", _square_same, cost=cubic(6), sensitive="cond"
)
def _inv(torch: Any, m: Any) -> Any:
    return torch.linalg.inv(m)


def _pinv_infer(args: Sequence[Arg]) -> Shape:
    need_matrix(args[0])
    m, n = args[0].shape
    return (n, m)


def _pinv_cost(args: Sequence[Arg], out: Shape) -> int:
    shape = args[0].shape
    if len(shape) != 2:
        return entrywise(args, out)
    return 5 * shape[0] * shape[1] * min(shape) + entrywise(args, out)


@register(
    "pinv",
    "pinv(M)",
    "Moore-Penrose pseudo-inverse of [m, n]; singular values below eps^0.6 of the largest "
    "count as zero",
    "[n, m]",
    _pinv_infer,
    cost=_pinv_cost,
    sensitive="cond_nonzero",
)
def _pinv(torch: Any, m: Any) -> Any:
    # torch's default cut-off (eps * max(m, n)) inverts the rounding noise of an exactly
    # singular matrix such as (lambda I - A) at an eigenvalue, giving entries ~1e14; a
    # cut-off of eps^0.6 (4e-10 in float64) treats such noise as the zero it is.
    return torch.linalg.pinv(m, rtol=torch.finfo(m.dtype).eps ** 0.6)


def _solve_infer(args: Sequence[Arg]) -> Shape:
    a, b = args
    n = need_square(a, "a square matrix A")
    if len(b.shape) not in (1, 2) or b.shape[0] != n:
        raise ShapeError(
            f"needs B with {n} rows to match A {fmt_shape(a.shape)}, got {fmt_shape(b.shape)}"
        )
    return b.shape


@register(
    "solve",
    "solve(A, B)",
    "inv(A) @ B, computed by a linear solve; B is [n, k] or [n]",
    "shape of B",
    _solve_infer,
    nargs=2,
    cost=cubic(6),
    sensitive="cond",
)
def _solve(torch: Any, a: Any, b: Any) -> Any:
    if b.dim() == 2:
        return torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)
    return torch.linalg.solve(a, b)


def _diag_infer(args: Sequence[Arg]) -> Shape:
    s = args[0].shape
    if is_square(s):
        return (s[0],)
    if is_vector(s):
        return (s[0], s[0])
    raise ShapeError(f"needs a square matrix or a vector, got shape {fmt_shape(s)}")


@register(
    "diag",
    "diag(x)",
    "Square matrix: its diagonal as a vector [n]. Vector [n] or [n, 1]: the diagonal matrix",
    "[n] or [n, n]",
    _diag_infer,
    cost=entrywise,
    sensitive=None,
)
def _diag(torch: Any, x: Any) -> Any:
    if x.dim() == 3 and x.shape[-1] == x.shape[-2]:
        return x.diagonal(dim1=-2, dim2=-1)
    return torch.diag_embed(_flat(x))


def _kron_infer(args: Sequence[Arg]) -> Shape:
    a, b = args
    if not a.shape or not b.shape:
        raise ShapeError(
            f"needs matrices or vectors, got {fmt_shape(a.shape)} and {fmt_shape(b.shape)}"
        )
    if len(a.shape) == 1 and len(b.shape) == 1:
        return (a.shape[0] * b.shape[0],)
    sa = a.shape if len(a.shape) == 2 else (a.shape[0], 1)
    sb = b.shape if len(b.shape) == 2 else (b.shape[0], 1)
    if len(sa) != 2 or len(sb) != 2:
        raise ShapeError(
            f"needs matrices or vectors, got {fmt_shape(a.shape)} and {fmt_shape(b.shape)}"
        )
    return (sa[0] * sb[0], sa[1] * sb[1])


@register(
    "kron",
    "kron(A, B)",
    "Kronecker product; a plain vector [n] next to a matrix counts as a column [n, 1]",
    "[ma*mb, na*nb]",
    _kron_infer,
    nargs=2,
    cost=entrywise,
    sensitive=None,
)
def _kron(torch: Any, a: Any, b: Any) -> Any:
    t = a.shape[0]
    if a.dim() == 2 and b.dim() == 2:
        return (a[:, :, None] * b[:, None, :]).reshape(t, -1)
    a = _as_col(torch, a)
    b = _as_col(torch, b)
    # An explicit outer product and reshape: no contiguity requirements on the inputs.
    out = a[:, :, None, :, None] * b[:, None, :, None, :]
    return out.reshape(t, a.shape[1] * b.shape[1], a.shape[2] * b.shape[2])


def _outer_infer(args: Sequence[Arg]) -> Shape:
    return (_need_vector(args[0]), _need_vector(args[1]))


@register(
    "outer",
    "outer(x, y)",
    "Outer product x y^T of two vectors",
    "[n, m]",
    _outer_infer,
    nargs=2,
    cost=entrywise,
    sensitive=None,
)
def _outer(torch: Any, x: Any, y: Any) -> Any:
    return _flat(x)[:, :, None] * _flat(y)[:, None, :]


def _vec_infer(args: Sequence[Arg]) -> Shape:
    return (numel(args[0].shape), 1)


@register(
    "vec",
    "vec(M)",
    "Stack the columns of M into one column",
    "[m*n, 1]",
    _vec_infer,
    cost=entrywise,
    sensitive=None,
)
def _vec(torch: Any, m: Any) -> Any:
    t = m.shape[0]
    if m.dim() == 3:
        m = _mT(m)
    return m.reshape(t, -1, 1)


@register(
    "sym",
    "sym(M)",
    "Symmetric part (M + M^T) / 2",
    "[n, n]",
    _square_same,
    cost=entrywise,
    sensitive=None,
)
def _sym(torch: Any, m: Any) -> Any:
    return 0.5 * (m + _mT(m))


@register(
    "expm", "expm(M)", "Matrix exponential", "[n, n]", _square_same, cost=cubic(20), sensitive=None
)
def _expm(torch: Any, m: Any) -> Any:
    _bounded_squarings(m)
    return _matrix_exp(torch, m)


_MATRIX_EXP: dict[int, Any] = {}  # id(torch) -> the autograd Function below, built once


def _matrix_exp(torch: Any, m: Any) -> Any:
    """``torch.linalg.matrix_exp`` with a backward that is homogeneous in the gradient it
    receives. torch's own backward exponentiates the block matrix [[M^H, G], [0, M^H]] with G
    as it comes, so a gradient much larger than M (f scaled by 1e10) enlarges the block's norm
    and its error: relative 2e-5 at 1e10, wrong in every digit at 1e100. Here G is divided by
    its largest entry first and the result multiplied back (the map is linear in G), so scaling
    f changes the gradient by exactly that scale. The backward is itself made of this function,
    so second derivatives (a Hessian) get the same treatment."""
    fn = _MATRIX_EXP.get(id(torch))
    if fn is None:

        class MatrixExp(torch.autograd.Function):  # type: ignore[misc]
            @staticmethod
            def forward(ctx: Any, a: Any) -> Any:
                ctx.save_for_backward(a)
                return torch.linalg.matrix_exp(a)

            @staticmethod
            def backward(ctx: Any, g: Any) -> Any:
                (a,) = ctx.saved_tensors
                scale = g.detach().abs().amax(dim=(-2, -1), keepdim=True)
                scale = torch.where(scale > 0, scale, torch.ones_like(scale))
                n = a.shape[-1]
                ah = a.mH
                block = torch.cat(
                    [torch.cat([ah, g / scale], -1), torch.cat([torch.zeros_like(ah), ah], -1)],
                    -2,
                )
                return MatrixExp.apply(block)[..., :n, n:] * scale

        fn = _MATRIX_EXP[id(torch)] = MatrixExp
    return fn.apply(m)


# The matrix exponential scales its input by 2^-s until the norm is small (about 5.4, torch's
# bound for its degree-18 approximant in float64), then squares s times: s grows with
# log2 of the norm, so an input of norm 1e300 costs a thousand n x n products where a normal one
# costs none or a few. Inputs that would need more than MAX_SQUARINGS are refused before any
# work: their exponential overflows or keeps no accuracy anyway (e^x overflows past x = 710).
MAX_SQUARINGS = 20
SQUARING_NORM = 5.37 * 2.0**MAX_SQUARINGS  # about 5.6e6


def _bounded_squarings(m: Any) -> None:
    """Refuse an exponential whose input's 1-norm would need more than MAX_SQUARINGS."""
    norm = float(m.detach().abs().sum(dim=-2).amax())  # the largest 1-norm over the trials
    if norm > SQUARING_NORM:  # NaN compares False: NaN/Inf inputs cost nothing and are caught later
        raise ValueTooLarge(
            f"its input has 1-norm {norm:.3g} on some draw, over {SQUARING_NORM:.3g}: scaling and "
            f"squaring would need more than {MAX_SQUARINGS} squarings, and the result would "
            f"overflow or keep no accuracy (scale the argument down, or draw smaller values)"
        )


class ValueTooLarge(Exception):
    """An argument whose value (not its shape) would make a function's cost unbounded; the
    evaluator adds the expression's text and raises it as an EvalError."""


def _sin_cos_m(torch: Any, m: Any) -> tuple[Any, Any]:
    # expm(iM) = cos M + i sin M for a real M. One complex n x n exponential costs about a
    # third of the real 2n x 2n block form expm([[0, M], [-M, 0]]), its backward likewise.
    _bounded_squarings(m)
    e = _matrix_exp(torch, m * 1j)
    return e.imag, e.real


# sinm and cosm: the exponential of a complex n x n matrix
@register("sinm", "sinm(M)", "Matrix sine", "[n, n]", _square_same, cost=cubic(80), sensitive=None)
def _sinm(torch: Any, m: Any) -> Any:
    return _sin_cos_m(torch, m)[0]


@register(
    "cosm", "cosm(M)", "Matrix cosine", "[n, n]", _square_same, cost=cubic(80), sensitive=None
)
def _cosm(torch: Any, m: Any) -> Any:
    return _sin_cos_m(torch, m)[1]


def _matpow_infer(args: Sequence[Arg]) -> Shape:
    need_square(args[0])
    _static_int(args[1], "the power k")
    return args[0].shape


def _matpow_cost(args: Sequence[Arg], out: Shape) -> int:
    # repeated squaring: about two products per bit of k
    shape = args[0].shape
    n = shape[-1] if shape else 1
    k = int(args[1].static or 0)
    return 2 * max(1, k.bit_length()) * n**3


@register(
    "matpow",
    "matpow(M, k)",
    "Matrix power M^k for an integer constant k >= 0 (M^0 = I)",
    "[n, n]",
    _matpow_infer,
    nargs=2,
    static=(1,),
    cost=_matpow_cost,
    sensitive=None,
)
def _matpow(torch: Any, m: Any, k: int) -> Any:
    return torch.linalg.matrix_power(m, k)


@register(
    "eigvalsh",
    "eigvalsh(M)",
    "Eigenvalues of a symmetric matrix M, ascending",
    "[n]",
    lambda a: (need_square(a[0]),),
    category="eigen",
    cost=cubic(10),
    sensitive=None,
    symmetric_arg=True,
)
def _eigvalsh(torch: Any, m: Any) -> Any:
    return torch.linalg.eigvalsh(0.5 * (m + m.mH))  # mH: a Hermitian m may be complex


@register(
    "eigvecsh",
    "eigvecsh(M)",
    "Orthonormal eigenvectors (columns) of a symmetric matrix M, in eigvalsh order",
    "[n, n]",
    _square_same,
    category="eigen",
    cost=cubic(30),
    sensitive="gap",
    symmetric_arg=True,
    gauged=True,
)
def _eigvecsh(torch: Any, m: Any) -> Any:
    return fn_decomp.eigh_gauged(torch, m)[1]  # the canonical sign gauge (fn_decomp)


def _col_infer(args: Sequence[Arg]) -> Shape:
    need_matrix(args[0])
    m, n = args[0].shape
    j = _static_int(args[1], "the column index")
    if j >= n:
        raise ShapeError(f"column index {j} out of range for shape {fmt_shape(args[0].shape)}")
    return (m, 1)


@register(
    "col",
    "col(M, j)",
    "Column j (0-based integer constant) of M",
    "[m, 1]",
    _col_infer,
    nargs=2,
    static=(1,),
    category="indexing",
    cost=entrywise,
    sensitive=None,
)
def _col(torch: Any, m: Any, j: int) -> Any:
    return m[:, :, j : j + 1]


def _entry_infer(args: Sequence[Arg]) -> Shape:
    shape = args[0].shape
    idx = [_static_int(a, "an index") for a in args[1:]]
    if len(idx) != len(shape):
        raise ShapeError(f"needs {len(shape)} indices for shape {fmt_shape(shape)}, got {len(idx)}")
    for i, d in zip(idx, shape, strict=True):
        if i >= d:
            raise ShapeError(f"index {i} out of range for shape {fmt_shape(shape)}")
    return ()


@register(
    "entry",
    "entry(x, i) / entry(M, i, j)",
    "A single entry (0-based integer constants)",
    "[]",
    _entry_infer,
    nargs=(2, 3),
    static=(1, 2),
    category="indexing",
    cost=entrywise,
    sensitive=None,
)
def _entry(torch: Any, x: Any, *idx: int) -> Any:
    key = (slice(None), *idx)  # every trial of the batch, then the entry
    return x[key]


# ---- constructors ---------------------------------------------------------------------------


def _eye_infer(args: Sequence[Arg], k: Any = 0) -> Shape:
    n = _static_int(args[0], "the size n", lo=1)
    m = _static_int(args[1], "the size m", lo=1) if len(args) > 1 else n
    if not isinstance(k, int) or isinstance(k, bool):
        raise ShapeError(f"the diagonal offset k= must be an integer, got {k!r}")
    return (n, m)


@register(
    "eye",
    "eye(n) / eye(n, m, k=0)",
    "Identity matrix [n, n], or [n, m] with ones on diagonal k (k > 0 above the main one)",
    "[n, n] or [n, m]",
    _eye_infer,
    nargs=(1, 2),
    static=(0, 1),
    category="constructor",
    cost=entrywise,
    sensitive=None,
    keywords={"k": 0},
)
def _eye(torch: Any, n: int, m: int | None = None, *, like: Any, k: int = 0) -> Any:
    m = n if m is None else m
    ones = torch.ones(n, m, dtype=like.dtype, device=like.device)
    return torch.triu(torch.tril(ones, k), k)


def _fill_infer(args: Sequence[Arg]) -> Shape:
    return tuple(_static_int(a, "a size", lo=1) for a in args)


@register(
    "ones",
    "ones(m) / ones(m, n) / ones(d1, ..., dk)",
    "All-ones vector [m], matrix [m, n] or tensor of up to 6 axes",
    "[m], [m, n], ...",
    _fill_infer,
    nargs=(1, 6),
    static=range(6),
    category="constructor",
    cost=entrywise,
    sensitive=None,
)
def _ones(torch: Any, *sizes: int, like: Any) -> Any:
    return torch.ones(sizes, dtype=like.dtype, device=like.device)


@register(
    "zeros",
    "zeros(m) / zeros(m, n) / zeros(d1, ..., dk)",
    "All-zeros vector [m], matrix [m, n] or tensor of up to 6 axes",
    "[m], [m, n], ...",
    _fill_infer,
    nargs=(1, 6),
    static=range(6),
    category="constructor",
    cost=entrywise,
    sensitive=None,
)
def _zeros(torch: Any, *sizes: int, like: Any) -> Any:
    return torch.zeros(sizes, dtype=like.dtype, device=like.device)


# ---- elementwise ----------------------------------------------------------------------------


def register_elementwise(
    name: str,
    summary: str,
    op: Callable[[Any, Any], Any],
    margin: Callable[..., Any] | None = None,
    branch: Callable[..., Any] | None = None,
) -> None:
    """A function of one tensor applied entry by entry (its result has the argument's shape);
    with a ``margin`` (and a ``branch``), one with kinks that the degeneracy guard keeps draws
    away from."""
    register(
        name,
        f"{name}(x)",
        summary,
        "shape of x",
        _same,
        cost=entrywise,
        sensitive=None if margin is None else "kink",
        margin=margin,
        branch=branch,
        category="elementwise",
    )(op)


register_elementwise("exp", "Elementwise exponential", lambda torch, x: torch.exp(x))
register_elementwise("log", "Elementwise natural logarithm", lambda torch, x: torch.log(x))
register_elementwise("sin", "Elementwise sine", lambda torch, x: torch.sin(x))
register_elementwise("cos", "Elementwise cosine", lambda torch, x: torch.cos(x))
register_elementwise("tanh", "Elementwise hyperbolic tangent", lambda torch, x: torch.tanh(x))
register_elementwise("sqrt", "Elementwise square root", lambda torch, x: torch.sqrt(x))
register_elementwise(
    "sigmoid", "Elementwise logistic 1/(1+exp(-x))", lambda torch, x: torch.sigmoid(x)
)
register_elementwise(
    "softplus",
    "Elementwise log(1 + exp(x))",
    lambda torch, x: torch.nn.functional.softplus(x),
)


# The other families register themselves on import: tensor operations and reductions along
# axes, piecewise and order functions, constants.
from matgrad.lang import (  # noqa: E402, F401
    fn_axes,
    fn_complex,
    fn_constants,
    fn_decomp,
    fn_piecewise,
)
