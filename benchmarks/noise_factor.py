"""How large the noise factor C of the decision rule must be (docs/decision-rule.md).

For every right identity of the bundled library, checked at the given dtype, trials and
seeds, and every claim that needed the rounding-noise estimate (it failed the strict rtol
part), the factor it needs: the largest (|claim - autograd| - rtol*|autograd|) / noise over
its entries. Prints the largest needs and any false fail at the current NOISE_FACTOR.

    python benchmarks/noise_factor.py float32 1000 6
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from matgrad.engine import tensors
from matgrad.engine.core import Settings, check_compiled
from matgrad.spec.schema import Identity, compile_identity, load_file

ROOT = Path(__file__).resolve().parent.parent


def main(dtype: str, trials: int, seeds: int) -> None:
    items = []
    for path in sorted((ROOT / "identities").rglob("*.yaml")):
        items += [i for i in load_file(str(path)) if isinstance(i, Identity)]
    need: list[tuple[float, str, int]] = []
    fails = []
    for item in items:
        if item.expect != "pass":
            continue
        for seed in range(seeds):
            keep: list = []
            results = check_compiled(
                compile_identity(item, trials), Settings(seed=seed, dtype=dtype, trials=trials),
                "cpu", keep,
            )
            for res, (_, _, truth, value, noise) in zip(results, keep, strict=True):
                if res.status != "passed":
                    fails.append((item.id, seed, res.message[:160]))
                if noise is None:
                    continue
                t = truth.shape[0]
                tr = truth.reshape(t, -1).double()
                cl = value.reshape(t, -1).double().expand_as(tr)
                over = (cl - tr).abs() - (res.rtol or 0.0) * tr.abs()
                ratio = torch.where(over > 0, over / noise.double(), torch.zeros_like(over))
                need.append((float(ratio.max()), item.id, seed))
    need.sort(reverse=True)
    c = tensors.NOISE_FACTOR[getattr(torch, dtype)]
    print(f"{dtype}, {trials} trials, seeds 0-{seeds - 1}, NOISE_FACTOR {c}, "
          f"PERTURBATION_ULPS {tensors.PERTURBATION_ULPS}")
    print(f"claims that needed the noise estimate: {len(need)}")
    for c, ident, seed in need[:8]:
        print(f"  needs C = {c:.3g}: {ident} (seed {seed})")
    print(f"false fails: {len(fails)}")
    for f in fails[:20]:
        print("  ", *f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
