"""Matrix scale: one identity family (the gradient of tr(X^-1 A)) at growing n and trials:
time and peak memory, the fitted growth exponent in n, float32 against float64, and CUDA
when present. Sizes the memory guard refuses are reported as refused, not run."""

from __future__ import annotations

import os
import resource
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
from _common import QUICK, fit_exponent, table  # noqa: E402

from matgrad.engine.core import Settings, check_identity  # noqa: E402
from matgrad.limits import Limits  # noqa: E402
from matgrad.spec.schema import Identity, load_text  # noqa: E402

# The study raises the work and memory limits (a deliberate large run), but keeps a memory
# guard: sizes that would not fit in a few GB are refused before anything is allocated.
LIMITS = Limits(max_work=10**14, max_elements=400_000_000)


VERBOSE = os.environ.get("MATGRAD_BENCH_VERBOSE") == "1"


def identity(n: int) -> Identity:
    (item,) = load_text(
        f"id: scale-{n}\ndims: {{n: {n}}}\n"
        "vars: {X: {shape: [n, n], domain: invertible}, A: [n, n]}\n"
        "f: tr(inv(X) @ A)\ngrad: {X: '-(inv(X) @ A @ inv(X)).T'}\n",
        "scale.yaml",
    )
    assert isinstance(item, Identity)
    return item


def run_one(n: int, trials: int, dtype: str, device: str) -> tuple[str, float]:
    settings = Settings(trials=trials, dtype=dtype, device=device, limits=LIMITS)
    ident = identity(n)
    warm = Settings(trials=1, dtype=dtype, device=device, limits=LIMITS)
    check_identity(ident, warm, device)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    r = check_identity(ident, settings, device)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t
    status = r.status if r.status != "error" else "refused: " + r.message.split(": ", 2)[-1][:60]
    return status, elapsed


def main() -> str:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if os.environ.get("MATGRAD_BENCH_DEVICES"):
        devices = os.environ["MATGRAD_BENCH_DEVICES"].split(",")
    ns = [4, 16, 64, 256] if QUICK else [4, 16, 64, 256, 1024]
    trial_counts = [1, 10, 100] if QUICK else [1, 10, 100, 1000]
    out = []
    for device in devices:
        rows = []
        for dtype in ("float64", "float32"):
            for n in ns:
                for trials in trial_counts:
                    status, t = run_one(n, trials, dtype, device)
                    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                    rows.append([device, dtype, n, trials, status, t * 1e3, rss])
                    if VERBOSE:
                        print(rows[-1], flush=True)
        out.append(table(
            f"Matrix scale on {device} (peak MB is the process high-water mark so far)",
            ["device", "dtype", "n", "trials", "verdict", "ms", "peak MB"], rows))
        for dtype in ("float64", "float32"):
            pts = [(r[2], r[5]) for r in rows
                   if r[0] == device and r[1] == dtype and r[3] == 1 and r[2] >= 64
                   and r[4] == "passed"]
            if len(pts) >= 2:
                k = fit_exponent([p[0] for p in pts], [p[1] for p in pts])
                out.append(f"\nGrowth exponent in n ({device}, {dtype}, 1 trial, n >= 64): "
                           f"time ~ n^{k:.2f}")
    return "\n".join(out)


if __name__ == "__main__":
    print(main())
