"""Per-draw throughput: matgrad's batched engine against what a user would write instead.

Baselines, each on the same identities and measured in this run:

* naive loop: one draw at a time in Python (sample, autograd, evaluate the claim, compare),
  as in a notebook; it uses matgrad's own parsed expressions, so the difference is batching
  and the engine's overhead, nothing else;
* ``torch.autograd.gradcheck``: one draw at a time, finite differences against autograd.

Each is timed in five interleaved rounds and the best round kept. Reported as time per draw
and the ratio baseline / matgrad (higher is better for matgrad).
"""

from __future__ import annotations

import math
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
from _common import LIBRARY, QUICK, table  # noqa: E402

from matgrad.engine.core import Settings, check_identity, identity_seed  # noqa: E402
from matgrad.lang import domains  # noqa: E402
from matgrad.spec.schema import Identity, compile_identity, load_all  # noqa: E402

ROUNDS = 5


def grad_identities(limit: int) -> list[Identity]:
    """Library identities with only grad claims on small inputs (what gradcheck can do too)."""
    out = []
    for item in load_all([str(LIBRARY)]):
        if not isinstance(item, Identity) or item.expect != "pass":
            continue
        if all(c.kind == "grad" for c in item.claims):
            out.append(item)
    step = max(1, len(out) // limit)
    return out[::step][:limit]


def naive_loop(ident: Identity, draws: int) -> None:
    compiled = compile_identity(ident, 1)
    gen = torch.Generator().manual_seed(identity_seed(0, ident.id))
    like = torch.zeros(1, dtype=torch.float64)
    for _ in range(draws):
        env = {
            v.name: domains.sample(torch, v.domain, v.shape, 1, gen).requires_grad_()
            for v in ident.vars.values()
        }
        for name, b in compiled.lets:
            env[name] = b.evaluate(env, torch, like)
        f = compiled.f.evaluate(env, torch, like)
        for claim, bound in compiled.claims:
            (g,) = torch.autograd.grad(f.sum(), [env[claim.var]], retain_graph=True,
                                       allow_unused=True)
            with torch.no_grad():
                value = bound.evaluate(env, torch, like)
            if g is not None and not isinstance(value, float):
                torch.allclose(value.reshape(g.shape), g, rtol=1e-6, atol=1e-9)


def gradcheck_loop(ident: Identity, draws: int) -> None:
    compiled = compile_identity(ident, 1)
    gen = torch.Generator().manual_seed(identity_seed(0, ident.id))
    like = torch.zeros(1, dtype=torch.float64)
    var = ident.claims[0].var
    for _ in range(draws):
        env = {
            v.name: domains.sample(torch, v.domain, v.shape, 1, gen) for v in ident.vars.values()
        }

        def fn(x: torch.Tensor) -> torch.Tensor:
            local = dict(env, **{var: x})  # noqa: B023 - fn is called in this iteration only
            for name, b in compiled.lets:
                local[name] = b.evaluate(local, torch, like)
            out = compiled.f.evaluate(local, torch, like)
            return out if not isinstance(out, float) else x.sum() * 0 + out

        torch.autograd.gradcheck(fn, (env[var].requires_grad_(),), raise_exception=False)


def matgrad_batched(idents: list[Identity], trials: int) -> None:
    settings = Settings(trials=trials, device="cpu")
    for ident in idents:
        check_identity(ident, settings, "cpu")


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def main() -> str:
    idents = grad_identities(8 if QUICK else 24)
    torch.set_num_threads(1)  # the baselines, like the engine on tiny inputs, run single-threaded
    matgrad_batched(idents, 2)  # warm-up: first-call costs are start-up, measured elsewhere
    rows = []
    trial_counts = [1, 10, 100] if QUICK else [1, 10, 100, 1000]
    for trials in trial_counts:
        naive_draws = min(trials, 100 if QUICK else 300)
        g_draws = min(trials, 3 if QUICK else 10)
        # Interleaved rounds, the best of each: a slow spell of a shared machine then falls
        # on matgrad and the baselines alike.
        m = n = g = math.inf
        for _ in range(ROUNDS):
            m = min(m, timed(matgrad_batched, idents, trials))
            n = min(n, sum(timed(naive_loop, i, naive_draws) for i in idents) / naive_draws)
            g = min(g, sum(timed(gradcheck_loop, i, g_draws) for i in idents) / g_draws)
        per = m / trials
        rows.append([trials, per * 1e3, n * 1e3, g * 1e3, n / per, g / per])
    return table(
        f"Per-draw throughput ({len(idents)} grad identities of the bundled library, "
        f"float64, CPU)",
        ["trials", "matgrad ms/draw", "naive loop ms/draw", "gradcheck ms/draw",
         "× naive", "× gradcheck"],
        rows,
    )


if __name__ == "__main__":
    print(main())
