"""Random identities within the limits, with random witnesses, stay within the documented bounds
of memory and time (docs/limits.md): the budgets are decided before anything is allocated and
cover every path, so no identity that passes them can run away.

The limits are scaled down (a hundredth of the default work and elements) so that each example
is quick; the bounds scale with them. Memory is the peak resident size of a fresh process
checking a batch of identities, against the same process checking a trivial one. Time is bounded
generously (a conservative 1e8 multiply-adds a second, plus start-up): the test guards against
an unbounded path, not a slow one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MAX_ELEMENTS = 500_000
MAX_WORK = 1_000_000_000
LIMITS = ["--limit", f"max_elements={MAX_ELEMENTS}", "--limit", f"max_work={MAX_WORK}"]
WORKSPACE = 200 << 20  # the witnesses' working space for their chunks of points (docs/limits.md)
MEMORY_BOUND = 4 * 8 * MAX_ELEMENTS + WORKSPACE  # bytes above start-up, per docs/limits.md
RATE = 1e8  # multiply-adds a second, far below any machine's

# (f, right gradient, domain, square only): functions whose cost grows with n^3 or with values
FORMS = [
    ("sum(X * X)", "2 * X", "real", False),
    ("tr(expm(0.01 * X))", "0.01 * expm(0.01 * X).T", "real", True),
    ("tr(inv(X))", "-(inv(X) @ inv(X)).T", "invertible", True),
    ("logdet(X)", "inv(X).T", "spd", True),
    ("sum(X @ X)", "ones(n, n) @ X.T + X.T @ ones(n, n)", "real", True),
]
WRAPPER = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
)


@st.composite
def identities(draw: st.DrawFn) -> str:
    out = ["identities:"]
    for k in range(draw(st.integers(1, 3))):
        f, grad, domain, square = draw(st.sampled_from(FORMS))
        n = draw(st.integers(2, 200))
        wrong = draw(st.booleans())
        witness = draw(st.sets(st.sampled_from(["autograd", "fd", "taylor"]), min_size=1))
        trials = draw(st.integers(1, 30))
        shape = "[n, n]" if square or draw(st.booleans()) else "[n]"
        out += [
            f"  - id: random-{k}",
            f"    dims: {{n: {n}}}",
            f"    vars: {{X: {{shape: {shape}, domain: {domain}}}}}",
            f'    f: "{f}"',
            f'    grad: {{X: "{"-" if wrong else ""}({grad})"}}',
            f"    witness: [{', '.join(sorted(witness))}]",
            f"    trials: {trials}",
        ]
    return "\n".join(out) + "\n"


# glibc raises its mmap threshold each time a large block is freed, and later blocks of that
# size then come from the heap, whose freed memory the peak keeps: the same check measured
# 209 or 433 MiB from run to run. A fixed threshold returns every large block when it is
# freed, so the peak is what was alive at once, the same on every run.
MEASURE_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 << 10)}


def _peak(path: Path, limits: list[str] = LIMITS) -> tuple[int, float]:
    cmd = [sys.executable, "-m", "matgrad", "check", str(path), *limits]
    start = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True,
        env=MEASURE_ENV,
    )
    return int(r.stdout.strip()), time.perf_counter() - start


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=identities())
def test_random_identities_stay_within_the_memory_and_time_bounds(text: str, tmp_path: Path) -> None:
    trivial = tmp_path / "trivial.yaml"
    trivial.write_text(
        "id: trivial\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\n", encoding="utf-8"
    )
    base, _ = _peak(trivial)
    path = tmp_path / "random.yaml"
    path.write_text(text, encoding="utf-8")
    peak, seconds = _peak(path)
    assert peak - base <= MEMORY_BOUND, (peak - base, text)
    count = text.count("- id:")
    assert seconds <= 3 * 5 + count * MAX_WORK / RATE, (seconds, text)


def test_the_taylor_witness_takes_about_the_memory_of_the_autograd_check(tmp_path: Path) -> None:
    # Its points are built chunk by chunk; all at once they were 15 copies of the variable per
    # direction, four to five times the memory of the autograd check itself. The Taylor test
    # runs after the autograd check, whose results it keeps, so about twice is what is left.
    def identity(witness: str) -> Path:
        path = tmp_path / f"{witness}.yaml"
        path.write_text(
            f"id: big-{witness}\ndims: {{n: 512}}\nvars: {{X: [n, n]}}\nf: sum(X * X)\n"
            f"grad: {{X: 2 * X}}\nwitness: [{witness}]\ntrials: 8\n",
            encoding="utf-8",
        )
        return path

    trivial = tmp_path / "trivial.yaml"
    trivial.write_text(
        "id: trivial\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\n", encoding="utf-8"
    )
    base, _ = _peak(trivial, [])
    autograd, _ = _peak(identity("autograd"), [])
    taylor, _ = _peak(identity("taylor"), [])
    assert taylor - base <= 2.5 * (autograd - base) + (64 << 20), (taylor - base, autograd - base)
