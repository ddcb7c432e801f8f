"""How variables are drawn: one sampler per domain, all batched over trials.

Every sampler draws from an explicit ``torch.Generator`` (never the global RNG) in float64 on
the CPU, so a draw is the same on every device and dtype. Structured domains are built so the
maths is well-defined and well-conditioned: singular values or eigenvalues lie in
[0.5, 2] times the trial's scale, so condition numbers are at most 4.

Draws come at several scales: trial i of a batch is multiplied by ``SCALES[i % 3]`` (1, 0.1,
10), for every domain whose promise survives a scale (``scaled``: all but ``orthogonal``). A
claim wrong only in a region away from the origin (x < -3, say) is then visited on a third of
the trials, and one wrong only near it on another third. The scale is a fact of the trial
index, not a random draw: the generator's stream is the same as without it, and a draw is
reproducible from the seed alone.

Each domain is one :class:`Domain` entry in :data:`DOMAINS` that carries every fact about it:
which shapes it fits, how it is drawn, its tangent directions, whether its draws are symmetric
or well-conditioned by construction, what drawing costs, and how the diagnosis makes a draw
symmetric. Adding a domain is adding one entry; the schema, the budget, the engine, the
degeneracy guard and the docs read the entry. ``torch`` is passed in, so this module imports
no torch and ``matgrad validate`` stays fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from matgrad.lang.functions import Shape

LO, HI = 0.5, 2.0

# The scale of trial i is SCALES[i % len(SCALES)] (trial 0 keeps the unit scale, so a one-trial
# run draws as before).
SCALES = (1.0, 0.1, 10.0)


DEFAULT = "real"  # the domain of a variable that names none


@dataclasses.dataclass(frozen=True)
class Domain:
    """One domain. Every field is required: a new domain cannot leave a fact out."""

    name: str
    summary: str
    shapes: str  # which shapes it accepts, in words
    fits: Callable[[Shape], bool]
    # (torch, shape, trials, generator) -> float64 CPU tensor [trials, *shape]; a ranked
    # domain's sampler also takes rank= (the variable's ``rank:``)
    sample: Callable[..., Any]
    # (d, point) -> a tangent direction at ``point`` made from the standard normal ``d``
    tangent: Callable[[Any, Any], Any]
    # draws are symmetric matrices with free off-diagonal entries: the gradient conventions
    # (entrywise, frobenius, free) apply to them ("diagonal" has no off-diagonal freedom)
    symmetric: bool
    conditioned: bool  # singular values in [LO, HI] (condition number <= 4) by construction
    # draws are multiplied by the trial's scale (SCALES): the domain's promise holds at any
    # scale (conditioning is scale-free; a positive entry stays positive). Orthogonal is not.
    scaled: bool
    # shape -> the sizes of the random orthogonal matrices one draw takes (what drawing costs
    # beyond the entries; the work budget weighs each n by QR * n^3)
    orthogonals: Callable[[Shape], tuple[int, ...]]
    # a draw -> a symmetric draw like it, for the diagnosis "symmetric inputs only"; None when
    # the domain's draws are symmetric already or have no symmetric counterpart
    symmetrized: Callable[[Any], Any] | None
    # draws are complex (complex128 on the CPU; the run casts them to complex64 with float32):
    # directions are complex too, and a grad claim is read in a Wirtinger convention
    complex: bool
    # draws equal their conjugate transpose (their transpose when real): the functions of
    # self-adjoint matrices (eigvalsh, eigh, cholesky) accept them
    hermitian: bool
    # the variable may say ``rank: k`` (1 <= k <= min(m, n)), passed to the sampler as rank=
    ranked: bool
    # (torch, point, moved) -> ``moved`` ([..., *shape], near ``point``, batched like it from
    # the right) brought back onto the domain, for the witnesses' steps along tangent directions
    # where f is not defined off it (pinv of a rank-deficient matrix); None: steps stay as
    # they are (f extends smoothly off the domain, or the domain is open)
    retract: Callable[[Any, Any, Any], Any] | None


def _any(shape: Shape) -> bool:
    return True


def _square(shape: Shape) -> bool:
    return len(shape) == 2 and shape[0] == shape[1]


def _matrix(shape: Shape) -> bool:
    return len(shape) == 2


def _tall(shape: Shape) -> bool:
    return len(shape) == 2 and shape[0] >= shape[1]


def _vector(shape: Shape) -> bool:
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def _uniform(torch: Any, shape: tuple[int, ...], gen: Any) -> Any:
    return LO + (HI - LO) * torch.rand(shape, generator=gen, dtype=torch.float64)


def _orthogonal(torch: Any, t: int, n: int, gen: Any) -> Any:
    a = torch.randn((t, n, n), generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    # Fix the signs so the distribution is Haar (QR alone is biased); a zero counts as +.
    signs = torch.where(torch.diagonal(r, dim1=-2, dim2=-1) < 0, -1.0, 1.0)
    return q * signs.unsqueeze(-2)


def _mT(x: Any) -> Any:
    return x.transpose(-1, -2)


# ---- samplers ------------------------------------------------------------------------------


def _sample_real(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    return torch.randn((trials, *shape), generator=gen, dtype=torch.float64)


def _sample_positive(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    return _uniform(torch, (trials, *shape), gen)


def _sample_symmetric(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    a = torch.randn((trials, *shape), generator=gen, dtype=torch.float64)
    return (a + _mT(a)) / 2**0.5


def _sample_spd(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    n = shape[0]
    q = _orthogonal(torch, trials, n, gen)
    s = _uniform(torch, (trials, n), gen)
    x = (q * s.unsqueeze(-2)) @ _mT(q)
    return 0.5 * (x + _mT(x))


def _sample_invertible(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    n = shape[0]
    u = _orthogonal(torch, trials, n, gen)
    v = _orthogonal(torch, trials, n, gen)
    s = _uniform(torch, (trials, n), gen)
    return (u * s.unsqueeze(-2)) @ _mT(v)


def _sample_orthogonal(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    return _orthogonal(torch, trials, shape[0], gen)


def _sample_diagonal(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    n = shape[0]
    s = _uniform(torch, (trials, n), gen)
    sign = torch.where(torch.rand((trials, n), generator=gen) < 0.5, -1.0, 1.0)
    return torch.diag_embed(s * sign.to(torch.float64))


def _sample_fullrank(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    m, k = shape
    r = min(m, k)
    u = _orthogonal(torch, trials, m, gen)[..., :r]
    v = _orthogonal(torch, trials, k, gen)[..., :r]
    s = _uniform(torch, (trials, r), gen)
    return (u * s.unsqueeze(-2)) @ _mT(v)


def _signed_diagonal(torch: Any, trials: int, n: int, gen: Any, positive: bool) -> Any:
    s = _uniform(torch, (trials, n), gen)
    if positive:
        return s
    sign = torch.where(torch.rand((trials, n), generator=gen) < 0.5, -1.0, 1.0)
    return s * sign.to(torch.float64)


def _sample_lower(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    n = shape[0]
    off = torch.tril(torch.randn((trials, n, n), generator=gen, dtype=torch.float64), -1)
    return off + torch.diag_embed(_signed_diagonal(torch, trials, n, gen, positive=False))


def _sample_upper(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    return _mT(_sample_lower(torch, shape, trials, gen))


def _sample_positive_diagonal(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    n = shape[0]
    off = torch.tril(torch.randn((trials, n, n), generator=gen, dtype=torch.float64), -1)
    return off + torch.diag_embed(_signed_diagonal(torch, trials, n, gen, positive=True))


def _sample_unit_lower(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    n = shape[0]
    off = torch.tril(torch.randn((trials, n, n), generator=gen, dtype=torch.float64), -1)
    return off + torch.eye(n, dtype=torch.float64)


def _sample_stiefel(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    n, p = shape
    return _orthogonal(torch, trials, n, gen)[..., :p].contiguous()


def _sample_sphere(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    x = torch.randn((trials, *shape), generator=gen, dtype=torch.float64)
    return x / x.flatten(1).norm(dim=1).reshape(-1, *([1] * len(shape)))


def _sample_simplex(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    # uniform on the simplex (Dirichlet(1)): normalised standard exponentials
    u = torch.rand((trials, *shape), generator=gen, dtype=torch.float64)
    e = -torch.log1p(-u)
    return e / e.flatten(1).sum(dim=1).reshape(-1, *([1] * len(shape)))


def _sample_mask(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    u = torch.rand((trials, *shape), generator=gen, dtype=torch.float64)
    return (u < 0.5).to(torch.float64)


def default_rank(shape: Shape) -> int:
    """The rank of a ``rank`` draw that names none: one short of full (at least 1)."""
    return max(1, min(shape) - 1)


def _sample_rank(torch: Any, shape: Shape, trials: int, gen: Any, rank: int | None = None) -> Any:
    m, n = shape
    k = default_rank(shape) if rank is None else rank
    left = torch.randn((trials, m, k), generator=gen, dtype=torch.float64)
    right = torch.randn((trials, k, n), generator=gen, dtype=torch.float64)
    return (left @ right) / k**0.5


# ---- complex samplers: real and imaginary parts drawn in float64, combined ----------------


def _complex_normal(torch: Any, shape: tuple[int, ...], gen: Any) -> Any:
    """Standard complex normal entries: E|z|^2 = 1, real and imaginary parts independent."""
    re = torch.randn(shape, generator=gen, dtype=torch.float64)
    im = torch.randn(shape, generator=gen, dtype=torch.float64)
    return torch.complex(re, im) / 2**0.5


def _mH(x: Any) -> Any:
    return x.transpose(-1, -2).conj()


def _unitary(torch: Any, t: int, n: int, gen: Any) -> Any:
    q, r = torch.linalg.qr(_complex_normal(torch, (t, n, n), gen))
    # Haar: divide each column by the phase of R's diagonal entry (a zero counts as 1)
    d = torch.diagonal(r, dim1=-2, dim2=-1)
    phase = torch.where(d.abs() > 0, d / d.abs(), torch.ones_like(d))
    return q * phase.unsqueeze(-2)


def _sample_complex(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    return _complex_normal(torch, (trials, *shape), gen)


def _sample_hermitian(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    a = _complex_normal(torch, (trials, *shape), gen)
    return (a + _mH(a)) / 2**0.5


def _sample_hpd(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    n = shape[0]
    u = _unitary(torch, trials, n, gen)
    s = _uniform(torch, (trials, n), gen).to(u.dtype)
    x = (u * s.unsqueeze(-2)) @ _mH(u)
    return 0.5 * (x + _mH(x))


def _sample_unitary(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    return _unitary(torch, trials, shape[0], gen)


def _sample_complex_invertible(torch: Any, shape: Shape, trials: int, gen: Any) -> Any:
    n = shape[0]
    u = _unitary(torch, trials, n, gen)
    v = _unitary(torch, trials, n, gen)
    s = _uniform(torch, (trials, n), gen).to(u.dtype)
    return (u * s.unsqueeze(-2)) @ _mH(v)


def _hermitian_direction(d: Any, point: Any) -> Any:
    return (d + _mH(d)) / 2**0.5


def _unitary_direction(d: Any, point: Any) -> Any:
    return point @ ((d - _mH(d)) / 2**0.5)  # X S with S skew-Hermitian


# ---- tangent directions, draw costs, symmetric counterparts ----------------------------------


def _free(d: Any, point: Any) -> Any:
    return d


def _symmetric_direction(d: Any, point: Any) -> Any:
    return (d + _mT(d)) / 2**0.5


def _diagonal_direction(d: Any, point: Any) -> Any:
    return d.diagonal(dim1=-2, dim2=-1).diag_embed()


def _orthogonal_direction(d: Any, point: Any) -> Any:
    return point @ ((d - _mT(d)) / 2**0.5)  # X S with S skew-symmetric


def _lower_direction(d: Any, point: Any) -> Any:
    return d.tril()


def _upper_direction(d: Any, point: Any) -> Any:
    return d.triu()


def _strictly_lower_direction(d: Any, point: Any) -> Any:
    return d.tril(-1)


def _stiefel_direction(d: Any, point: Any) -> Any:
    # the projection onto the tangent space at X: D - X sym(X^T D)
    return d - point @ _symmetric_part(_mT(point) @ d)


def _sphere_direction(d: Any, point: Any) -> Any:
    dims = tuple(range(1, d.dim()))
    return d - point * (point * d).sum(dim=dims, keepdim=True)


def _simplex_direction(d: Any, point: Any) -> Any:
    dims = tuple(range(1, d.dim()))
    return d - d.mean(dim=dims, keepdim=True)


def _fixed_rank_direction(d: Any, point: Any) -> Any:
    # the projection onto the tangent space at X of the matrices of X's rank:
    # P_U D + D P_V - P_U D P_V, with P_U = X X^+ and P_V = X^+ X the projections onto X's
    # columns and rows (singular values under 1e-10 of the largest are the exact zeros of a
    # draw, at rounding level in float64)
    pinv = point.pinverse(rcond=1e-10)
    pu, pv = point @ pinv, pinv @ point
    return pu @ d + d @ pv - pu @ d @ pv


def _fixed_rank_retract(torch: Any, point: Any, moved: Any) -> Any:
    # the nearest matrix of the point's rank (the truncated SVD): a step A + h D along a
    # tangent D leaves the rank-k matrices by O(h^2), and back on them the step is still
    # A + h D + O(h^2), so first-order claims are judged as along a straight line
    s = torch.linalg.svdvals(point)
    k = int((s > 1e-10 * s[..., :1]).sum(dim=-1).max())
    u, sv, vh = torch.linalg.svd(moved, full_matrices=False)
    return (u[..., :k] * sv[..., None, :k]) @ vh[..., :k, :]


def _no_direction(d: Any, point: Any) -> Any:
    return d * 0


def _no_orthogonals(shape: Shape) -> tuple[int, ...]:
    return ()


def _one_orthogonal(shape: Shape) -> tuple[int, ...]:
    return (shape[-1],)


def _one_orthogonal_rows(shape: Shape) -> tuple[int, ...]:
    return (shape[0],)


def _symmetric_part(x: Any) -> Any:
    return 0.5 * (x + _mT(x))


def _gram(x: Any) -> Any:
    return x @ _mT(x)


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in [
        Domain(
            "real",
            "independent normal entries, standard deviation the trial's scale (the default)",
            "any",
            _any,
            sample=_sample_real,
            tangent=_free,
            symmetric=False,
            conditioned=False,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=_symmetric_part,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "positive",
            f"entries uniform in [{LO}, {HI}] times the trial's scale",
            "any",
            _any,
            sample=_sample_positive,
            tangent=_free,
            symmetric=False,
            conditioned=False,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=_symmetric_part,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "symmetric",
            "X = (A + A^T)/sqrt(2), A normal at the trial's scale",
            "square [n, n]",
            _square,
            sample=_sample_symmetric,
            tangent=_symmetric_direction,
            symmetric=True,
            conditioned=False,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=True,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "spd",
            f"symmetric positive definite, eigenvalues uniform in [{LO}, {HI}] times the "
            "trial's scale",
            "square [n, n]",
            _square,
            sample=_sample_spd,
            tangent=_symmetric_direction,
            symmetric=True,
            conditioned=True,
            scaled=True,
            orthogonals=_one_orthogonal,
            symmetrized=None,
            hermitian=True,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "invertible",
            f"U diag(s) V^T, U, V random orthogonal, s uniform in [{LO}, {HI}] times the trial's "
            "scale (not symmetric)",
            "square [n, n]",
            _square,
            sample=_sample_invertible,
            tangent=_free,
            symmetric=False,
            conditioned=True,
            scaled=True,
            orthogonals=lambda shape: (shape[-1], shape[-1]),
            symmetrized=_gram,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "orthogonal",
            "Haar-random orthogonal matrix (not scaled)",
            "square [n, n]",
            _square,
            sample=_sample_orthogonal,
            tangent=_orthogonal_direction,
            symmetric=False,
            conditioned=True,
            scaled=False,
            orthogonals=_one_orthogonal,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "diagonal",
            f"diagonal matrix, diagonal entries of random sign and size in [{LO}, {HI}] times the "
            "trial's scale",
            "square [n, n]",
            _square,
            sample=_sample_diagonal,
            tangent=_diagonal_direction,
            symmetric=False,
            conditioned=True,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=True,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "fullrank",
            f"full column/row rank, singular values uniform in [{LO}, {HI}] times the trial's "
            "scale",
            "matrix [m, n]",
            _matrix,
            sample=_sample_fullrank,
            tangent=_free,
            symmetric=False,
            conditioned=True,
            scaled=True,
            orthogonals=lambda shape: (shape[0], shape[1]),
            symmetrized=_gram,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "rank",
            "matrix of exact rank k (the variable's rank: k, default min(m, n) - 1): the "
            "product of [m, k] and [k, n] standard normal factors over sqrt(k); tangent "
            "directions of the matrices of rank k",
            "matrix [m, n]",
            _matrix,
            sample=_sample_rank,
            tangent=_fixed_rank_direction,
            symmetric=False,
            conditioned=False,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=True,
            retract=_fixed_rank_retract,
        ),
        Domain(
            "lower",
            f"lower triangular: normal entries below the diagonal, diagonal entries of random "
            f"sign and size in [{LO}, {HI}], all times the trial's scale",
            "square [n, n]",
            _square,
            sample=_sample_lower,
            tangent=_lower_direction,
            symmetric=False,
            conditioned=False,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "upper",
            "upper triangular, drawn as the transpose of a lower draw",
            "square [n, n]",
            _square,
            sample=_sample_upper,
            tangent=_upper_direction,
            symmetric=False,
            conditioned=False,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "positive-diagonal",
            f"lower triangular with a positive diagonal in [{LO}, {HI}] (a Cholesky factor), "
            "times the trial's scale",
            "square [n, n]",
            _square,
            sample=_sample_positive_diagonal,
            tangent=_lower_direction,
            symmetric=False,
            conditioned=False,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "unit-lower",
            "lower triangular with ones on the diagonal, normal entries below (not scaled)",
            "square [n, n]",
            _square,
            sample=_sample_unit_lower,
            tangent=_strictly_lower_direction,
            symmetric=False,
            conditioned=False,
            scaled=False,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "stiefel",
            "n x p with orthonormal columns (X^T X = I), the first p columns of a Haar-random "
            "orthogonal matrix (not scaled); tangent directions D - X sym(X^T D)",
            "matrix [n, p], n >= p",
            _tall,
            sample=_sample_stiefel,
            tangent=_stiefel_direction,
            symmetric=False,
            conditioned=True,
            scaled=False,
            orthogonals=_one_orthogonal_rows,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "sphere",
            "unit vector, uniform on the sphere (not scaled); tangent directions orthogonal to x",
            "vector [n] or [n, 1]",
            _vector,
            sample=_sample_sphere,
            tangent=_sphere_direction,
            symmetric=False,
            conditioned=False,
            scaled=False,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "simplex",
            "probability vector, positive entries summing to 1, uniform on the simplex (not "
            "scaled); tangent directions sum to 0",
            "vector [n] or [n, 1]",
            _vector,
            sample=_sample_simplex,
            tangent=_simplex_direction,
            symmetric=False,
            conditioned=False,
            scaled=False,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "mask",
            "entries 0 or 1, each 1 with probability 1/2 (not scaled); for dropout and padding "
            "masks: its tangent direction is zero",
            "any",
            _any,
            sample=_sample_mask,
            tangent=_no_direction,
            symmetric=False,
            conditioned=False,
            scaled=False,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=False,
            complex=False,
            ranked=False,
            retract=None,
        ),
        Domain(
            "complex",
            "independent complex normal entries (real and imaginary parts normal, E|z|^2 the "
            "trial's scale squared)",
            "any",
            _any,
            sample=_sample_complex,
            tangent=_free,
            symmetric=False,
            conditioned=False,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=False,
            complex=True,
            ranked=False,
            retract=None,
        ),
        Domain(
            "hermitian",
            "X = (A + A^H)/sqrt(2), A complex normal at the trial's scale",
            "square [n, n]",
            _square,
            sample=_sample_hermitian,
            tangent=_hermitian_direction,
            symmetric=False,
            conditioned=False,
            scaled=True,
            orthogonals=_no_orthogonals,
            symmetrized=None,
            hermitian=True,
            complex=True,
            ranked=False,
            retract=None,
        ),
        Domain(
            "hpd",
            f"Hermitian positive definite, U diag(s) U^H with U random unitary, s uniform in "
            f"[{LO}, {HI}] times the trial's scale",
            "square [n, n]",
            _square,
            sample=_sample_hpd,
            tangent=_hermitian_direction,
            symmetric=False,
            conditioned=True,
            scaled=True,
            orthogonals=_one_orthogonal,
            symmetrized=None,
            hermitian=True,
            complex=True,
            ranked=False,
            retract=None,
        ),
        Domain(
            "unitary",
            "Haar-random unitary matrix (not scaled); tangent directions X S, S skew-Hermitian",
            "square [n, n]",
            _square,
            sample=_sample_unitary,
            tangent=_unitary_direction,
            symmetric=False,
            conditioned=True,
            scaled=False,
            orthogonals=_one_orthogonal,
            symmetrized=None,
            hermitian=False,
            complex=True,
            ranked=False,
            retract=None,
        ),
        Domain(
            "complex-invertible",
            f"U diag(s) V^H, U, V random unitary, s uniform in [{LO}, {HI}] times the trial's "
            "scale (not Hermitian)",
            "square [n, n]",
            _square,
            sample=_sample_complex_invertible,
            tangent=_free,
            symmetric=False,
            conditioned=True,
            scaled=True,
            orthogonals=lambda shape: (shape[-1], shape[-1]),
            symmetrized=None,
            hermitian=False,
            complex=True,
            ranked=False,
            retract=None,
        ),
    ]
}


def trial_scales(torch: Any, trials: int) -> Any:
    """The scale of each trial of a batch: ``SCALES`` repeated, float64 [trials]."""
    cycle = torch.tensor(SCALES, dtype=torch.float64)
    return cycle.repeat(-(-trials // len(SCALES)))[:trials]


def rescale(torch: Any, domain: str, x: Any, factor: Any) -> Any:
    """``x`` ([trials, ...], a fresh draw: changed in place, no copy) with each trial
    multiplied by ``factor`` ([trials]) when the domain is scaled; as it is otherwise."""
    if not DOMAINS[domain].scaled:
        return x
    return x.mul_(factor.reshape(-1, *([1] * (x.dim() - 1))))


def sample(
    torch: Any, domain: str, shape: Shape, trials: int, gen: Any, rank: int | None = None
) -> Any:
    """A float64 (complex128 for a complex domain) CPU tensor of shape ``[trials, *shape]``
    drawn from ``domain``, trial i at the scale ``SCALES[i % 3]`` when the domain is scaled;
    ``rank``: the variable's ``rank:`` for a ranked domain."""
    dom = DOMAINS[domain]
    if dom.ranked and rank is not None:
        x = dom.sample(torch, shape, trials, gen, rank=rank)
    else:
        x = dom.sample(torch, shape, trials, gen)
    return rescale(torch, domain, x, trial_scales(torch, trials))


def direction(torch: Any, domain: str, point: Any, gen: Any, tangent: bool) -> Any:
    """A random direction at ``point`` (float64, CPU, batched like ``point``).

    Unconstrained (standard normal) unless ``tangent``: then the domain's own tangent
    direction (symmetric for symmetric/spd, diagonal for diagonal, X S with S skew-symmetric
    for orthogonal X). Complex (standard complex normal) for a complex domain.
    """
    if DOMAINS[domain].complex:
        d = _complex_normal(torch, tuple(point.shape), gen)
    else:
        d = torch.randn(point.shape, generator=gen, dtype=torch.float64)
    if not tangent:
        return d
    return DOMAINS[domain].tangent(d, point)


def has_direction(domain: str) -> bool:
    """Whether a variable of ``domain`` can move at all (a mask cannot: its tangent is zero),
    so that f has derivatives with respect to it."""
    return DOMAINS[domain].tangent is not _no_direction
