"""How variables are drawn: one sampler per domain, all batched over trials.

Every sampler draws from an explicit ``torch.Generator`` (never the global RNG) in float64 on
the CPU, so a draw is the same on every device and dtype. Structured domains are built so the
maths is well-defined and well-conditioned: singular values or eigenvalues lie in
[0.5, 2], so condition numbers are at most 4.

The shape rules (which domain fits which shape) live here too and import no torch, so
``matgrad validate`` stays fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from matgrad.lang.functions import Shape

LO, HI = 0.5, 2.0


@dataclasses.dataclass(frozen=True)
class Domain:
    name: str
    summary: str
    shapes: str  # which shapes it accepts, in words
    fits: Callable[[Shape], bool]


def _any(shape: Shape) -> bool:
    return True


def _square(shape: Shape) -> bool:
    return len(shape) == 2 and shape[0] == shape[1]


def _matrix(shape: Shape) -> bool:
    return len(shape) == 2


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in [
        Domain("real", "independent standard normal entries (the default)", "any", _any),
        Domain("positive", f"entries uniform in [{LO}, {HI}]", "any", _any),
        Domain("symmetric", "X = (A + A^T)/sqrt(2), A standard normal", "square [n, n]", _square),
        Domain(
            "spd",
            f"symmetric positive definite, eigenvalues uniform in [{LO}, {HI}]",
            "square [n, n]",
            _square,
        ),
        Domain(
            "invertible",
            f"U diag(s) V^T, U, V random orthogonal, s uniform in [{LO}, {HI}] (not symmetric)",
            "square [n, n]",
            _square,
        ),
        Domain("orthogonal", "Haar-random orthogonal matrix", "square [n, n]", _square),
        Domain(
            "diagonal",
            f"diagonal matrix, diagonal entries of random sign and size in [{LO}, {HI}]",
            "square [n, n]",
            _square,
        ),
        Domain(
            "fullrank",
            f"full column/row rank, singular values uniform in [{LO}, {HI}]",
            "matrix [m, n]",
            _matrix,
        ),
    ]
}

# Domains whose matrices are symmetric (gradient conventions and tangent directions use it).
SYMMETRIC = frozenset({"symmetric", "spd"})


def _uniform(torch: Any, shape: tuple[int, ...], gen: Any) -> Any:
    return LO + (HI - LO) * torch.rand(shape, generator=gen, dtype=torch.float64)


def _orthogonal(torch: Any, t: int, n: int, gen: Any) -> Any:
    a = torch.randn((t, n, n), generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    # Fix the signs so the distribution is Haar (QR alone is biased); a zero counts as +.
    signs = torch.where(torch.diagonal(r, dim1=-2, dim2=-1) < 0, -1.0, 1.0)
    return q * signs.unsqueeze(-2)


def sample(torch: Any, domain: str, shape: Shape, trials: int, gen: Any) -> Any:
    """A float64 CPU tensor of shape ``[trials, *shape]`` drawn from ``domain``."""
    full = (trials, *shape)
    if domain == "real":
        return torch.randn(full, generator=gen, dtype=torch.float64)
    if domain == "positive":
        return _uniform(torch, full, gen)
    if domain == "symmetric":
        a = torch.randn(full, generator=gen, dtype=torch.float64)
        return (a + a.transpose(-1, -2)) / 2**0.5
    n = shape[0] if shape else 0
    if domain == "spd":
        q = _orthogonal(torch, trials, n, gen)
        s = _uniform(torch, (trials, n), gen)
        x = (q * s.unsqueeze(-2)) @ q.transpose(-1, -2)
        return 0.5 * (x + x.transpose(-1, -2))
    if domain == "invertible":
        u = _orthogonal(torch, trials, n, gen)
        v = _orthogonal(torch, trials, n, gen)
        s = _uniform(torch, (trials, n), gen)
        return (u * s.unsqueeze(-2)) @ v.transpose(-1, -2)
    if domain == "orthogonal":
        return _orthogonal(torch, trials, n, gen)
    if domain == "diagonal":
        s = _uniform(torch, (trials, n), gen)
        sign = torch.where(torch.rand((trials, n), generator=gen) < 0.5, -1.0, 1.0)
        return torch.diag_embed(s * sign.to(torch.float64))
    if domain == "fullrank":
        m, k = shape
        r = min(m, k)
        u = _orthogonal(torch, trials, m, gen)[..., :r]
        v = _orthogonal(torch, trials, k, gen)[..., :r]
        s = _uniform(torch, (trials, r), gen)
        return (u * s.unsqueeze(-2)) @ v.transpose(-1, -2)
    raise KeyError(domain)


def direction(torch: Any, domain: str, point: Any, gen: Any, tangent: bool) -> Any:
    """A random direction at ``point`` (float64, CPU, batched like ``point``).

    Unconstrained (standard normal) unless ``tangent``: then symmetric for symmetric/spd,
    diagonal for diagonal, and X S with S skew-symmetric for orthogonal X.
    """
    d = torch.randn(point.shape, generator=gen, dtype=torch.float64)
    if not tangent:
        return d
    if domain in SYMMETRIC:
        return (d + d.transpose(-1, -2)) / 2**0.5
    if domain == "diagonal":
        return torch.diag_embed(torch.diagonal(d, dim1=-2, dim2=-1))
    if domain == "orthogonal":
        return point @ ((d - d.transpose(-1, -2)) / 2**0.5)
    return d
