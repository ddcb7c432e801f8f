"""The eigen-decomposition of a general square matrix: ``eig`` and ``eigvals``.

Eigenvalues and eigenvectors of a general (non-symmetric) matrix are complex, also for a real
matrix (``torch.linalg.eig``); the claims about them use the complex numbers of
``matgrad.lang.fn_complex`` and docs/format.md "Complex variables".

Order. torch returns eigenvalues in the order its algorithm finds them, which can change under
a small perturbation. matgrad returns them sorted by real part, ascending, and a complex
conjugate pair (or eigenvalues of equal real part) by imaginary part, ascending, so
``eigvals(A)`` is one function of ``A``; its columns of eigenvectors follow.

Gauge. An eigenvector is defined up to a complex factor. matgrad returns each with unit
2-norm and its entry of largest size real and positive (``fn_decomp.gauge_signs``), so a claim
about a single eigenvector has one meaning on every draw.

The degeneracy guard (:func:`eig_margin`) redraws trials where two eigenvalues nearly coincide
(neither values nor vectors are differentiable there), where the order by real part is near a
tie, where the gauge is near a tie between two entries of a vector, or where the eigenvectors
are nearly dependent (an ill-conditioned eigenvalue problem).

``torch`` is passed in, as in ``matgrad.lang.functions``.
"""

from __future__ import annotations

from typing import Any

from matgrad.lang.fn_decomp import eigen_infer, gauge_margin, gauge_signs
from matgrad.lang.functions import (
    SQUARE,
    cubic,
    need_square,
    register,
)

# Real parts closer than this (relative to the largest eigenvalue in size) count as equal for
# the order, so the two members of a conjugate pair are ordered by their imaginary parts. The
# degeneracy guard keeps any other two eigenvalues much further apart than this.
_SAME_REAL = 1e-9



def _order(torch: Any, lam: Any) -> Any:
    """[T, n]: the indices that sort ``lam`` by real part, then imaginary part."""
    with torch.no_grad(), torch.utils._python_dispatch._disable_current_modes():
        lam = lam.detach()
        scale = lam.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(lam.real.dtype).tiny)
        key = torch.round(lam.real.to(torch.float64) / (scale.to(torch.float64) * _SAME_REAL))
        by_imag = torch.argsort(lam.imag, dim=-1, stable=True)
        by_real = torch.argsort(key.gather(-1, by_imag), dim=-1, stable=True)
        return by_imag.gather(-1, by_real)


def _sorted(torch: Any, a: Any) -> tuple[Any, Any]:
    lam, vecs = torch.linalg.eig(a)
    idx = _order(torch, lam)
    lam = lam.gather(-1, idx)
    vecs = vecs.gather(-1, idx.unsqueeze(-2).expand_as(vecs))
    return lam, vecs



@register(
    "eig",
    "eig(A).values / eig(A).vectors",
    "Eigen-decomposition of a general square A (complex): values [n] sorted by real part, then "
    "imaginary part, and vectors (columns) in that order, each of unit norm with its entry of "
    "largest size real and positive",
    "values [n], vectors [n, n] (complex)",
    eigen_infer,
    category="eigen",
    cost=cubic(60),
    sensitive="eig",
    parts=("values", "vectors"),
)
def _eig(torch: Any, a: Any) -> tuple[Any, Any]:
    lam, vecs = _sorted(torch, a)
    return lam, vecs * gauge_signs(torch, vecs).unsqueeze(-2)


@register(
    "eigvals",
    "eigvals(A)",
    "Eigenvalues of a general square A (complex), sorted by real part, then imaginary part",
    "[n] (complex)",
    lambda args: (need_square(args[0], SQUARE),),
    category="eigen",
    cost=cubic(30),
    sensitive="eig",
)
def _eigvals(torch: Any, a: Any) -> Any:
    return _sorted(torch, a)[0]


def eig_margin(torch: Any, a: Any) -> Any:
    """[T]: the least of the smallest distance between two eigenvalues, the smallest difference
    of real parts that decides the order (a conjugate pair aside), both relative to the largest
    eigenvalue in size; the gauge's distance to a tie; and the reciprocal condition number of
    the eigenvector matrix."""
    lam, vecs = _sorted(torch, a)
    real_dtype = lam.real.dtype
    n = lam.shape[-1]
    if n < 2:
        return torch.full(lam.shape[:1], float("inf"), dtype=real_dtype, device=a.device)
    scale = lam.abs().amax(dim=-1).clamp_min(torch.finfo(real_dtype).tiny)
    off = ~torch.eye(n, dtype=torch.bool, device=a.device)
    dist = (lam.unsqueeze(-1) - lam.unsqueeze(-2)).abs()
    inf = torch.full_like(dist, float("inf"))
    gap = torch.where(off, dist, inf).flatten(1).amin(dim=1) / scale
    # the order: real parts of two eigenvalues that are not a conjugate pair of a real matrix
    d_real = (lam.real.unsqueeze(-1) - lam.real.unsqueeze(-2)).abs()
    pair = off & (d_real <= _SAME_REAL * 1e3 * scale.reshape(-1, 1, 1))
    if not a.is_complex():
        conj = (lam.unsqueeze(-1) - lam.conj().unsqueeze(-2)).abs()
        pair = pair & (conj <= 1e-6 * scale.reshape(-1, 1, 1))
    else:
        pair = torch.zeros_like(pair)
    tie = torch.where(off & ~pair, d_real, inf).flatten(1).amin(dim=1) / scale
    s = torch.linalg.svdvals(vecs)
    rcond = torch.where(s[:, 0] > 0, s[:, -1] / s[:, 0], torch.zeros_like(s[:, 0]))
    out = torch.minimum(torch.minimum(gap, tie), rcond)
    return torch.minimum(out, gauge_margin(torch, vecs))
