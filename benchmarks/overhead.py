"""Engine overhead: matgrad against the same identity batched by hand in torch.

The workload is 20 copies of the gradient of tr(X^-1 A) (X 5 x 5 invertible, A 5 x 5), each
with its own id and so its own draws, checked with ``matgrad.check`` (the public API: settings,
compile, budget, draw, degeneracy guard, autograd, claim, compare, result objects).

The baseline is what a careful person writes directly in torch for each identity: draw X and A
with matgrad's own samplers from the identity's seed (the very inputs matgrad draws), one
forward pass of f = tr(X^-1 A) over all trials, one backward, the claimed gradient
-X^-T A^T X^-T over all trials (X^-1 computed once), and one ``torch.allclose``.
Both do the same maths on the same inputs, so the ratio matgrad / baseline is the engine's
own overhead (1.0 would be none). Drawing an invertible matrix (two batched QR
factorisations) is a large share of both; the draws alone are timed too, and the ratio
with them left out of both sides shows the overhead against the rest of the maths.

Timed in 15 interleaved rounds, the best round of each kept, as in ``throughput.py`` (more
rounds: the whole table takes seconds, and a shared machine needs them).
"""

from __future__ import annotations

import math
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
from _common import QUICK, table  # noqa: E402

import matgrad  # noqa: E402
from matgrad.engine.core import identity_seed  # noqa: E402
from matgrad.lang import domains  # noqa: E402
from matgrad.spec.schema import Identity, load_text  # noqa: E402

COPIES = 20
N = 5
ROUNDS = 15
RTOL, ATOL = 1e-6, 1e-9  # matgrad's float64 defaults


def identities(copies: int = COPIES) -> list[Identity]:
    """``copies`` identical gradient identities of tr(X^-1 A) with distinct ids (so distinct
    draws); the claim is written as in the bundled library (identities/seed.yaml)."""
    out = []
    for k in range(copies):
        (item,) = load_text(
            f"id: trace-inverse-{k:02d}\ndims: {{n: {N}}}\n"
            "vars: {X: {shape: [n, n], domain: invertible}, A: [n, n]}\n"
            "f: tr(inv(X) @ A)\ngrad: {X: '-inv(X).T @ A.T @ inv(X).T'}\n",
            "overhead.yaml",
        )
        assert isinstance(item, Identity)
        out.append(item)
    return out


def draw(ident: Identity, trials: int) -> tuple[torch.Tensor, torch.Tensor]:
    """matgrad's draw: one generator per identity, the variables in declaration order."""
    gen = torch.Generator().manual_seed(identity_seed(0, ident.id))
    x = domains.sample(torch, "invertible", (N, N), trials, gen)
    a = domains.sample(torch, "real", (N, N), trials, gen)
    return x, a


def draws_only(idents: list[Identity], trials: int) -> bool:
    for ident in idents:
        draw(ident, trials)
    return True


def by_hand(idents: list[Identity], trials: int) -> bool:
    ok = True
    for ident in idents:
        x, a = draw(ident, trials)
        x.requires_grad_()
        f = torch.linalg.inv(x).matmul(a).diagonal(dim1=-2, dim2=-1).sum(-1)
        (g,) = torch.autograd.grad(f.sum(), x)
        with torch.no_grad():
            xit = torch.linalg.inv(x).mT
            claim = -xit @ a.mT @ xit
        ok &= torch.allclose(claim, g, rtol=RTOL, atol=ATOL)
    return ok


def with_matgrad(idents: list[Identity], trials: int) -> bool:
    return matgrad.check(idents, trials=trials, device="cpu").ok


def timed(fn, *args) -> float:
    t = time.perf_counter()
    assert fn(*args), f"{fn.__name__} did not pass"  # both must reach the right verdict
    return time.perf_counter() - t


def main() -> str:
    idents = identities()
    torch.set_num_threads(1)  # tiny inputs: matgrad runs them on one thread, so does the baseline
    with_matgrad(idents, 2)  # warm-up: first-call costs are start-up, measured elsewhere
    by_hand(idents, 2)
    rows = []
    for trials in [100] if QUICK else [10, 100, 1000]:
        m = h = d = math.inf
        for _ in range(ROUNDS):
            m = min(m, timed(with_matgrad, idents, trials))
            h = min(h, timed(by_hand, idents, trials))
            d = min(d, timed(draws_only, idents, trials))
        rows.append(
            [trials, m * 1e3, h * 1e3, d * 1e3, m / h, (m - d) / (h - d),
             (m - h) / len(idents) * 1e6]
        )
    return table(
        f"Engine overhead ({len(idents)} copies of grad tr(X^-1 A), {N}x{N}, float64, CPU)",
        ["trials", "matgrad ms", "by hand in torch ms", "of which drawing ms", "× by hand",
         "× by hand, draws left out", "overhead µs/identity"],
        rows,
    )


if __name__ == "__main__":
    print(main())
