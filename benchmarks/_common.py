"""Shared helpers of the benchmark suite: timing, tables, the bundled library."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "identities"
QUICK = os.environ.get("MATGRAD_BENCH_QUICK") == "1"


def command_times(
    commands: Sequence[Sequence[str]], repeat: int = 5, env: dict[str, str] | None = None
) -> list[float]:
    """Median wall time of each subprocess (start-up included), measured in rounds: every
    round runs each command once, so a slow spell of a shared machine falls on all of them
    rather than on whichever command was running then."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(repeat):
        for argv, out in zip(commands, times, strict=True):
            t = time.perf_counter()
            subprocess.run(
                list(argv),
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                check=False,
            )
            out.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def peak_rss_mb(argv: Sequence[str]) -> tuple[float, float]:
    """(wall seconds, peak resident memory in MB) of a subprocess."""
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "w = time.perf_counter() - t\n"
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header]] + [[_cell(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"\n## {title}\n"]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=False)) + " |")
    return "\n".join(lines)


def _cell(c: object) -> str:
    if isinstance(c, float):
        if c == 0 or math.isnan(c):
            return f"{c:g}"
        if abs(c) >= 100:
            return f"{c:.0f}"
        if abs(c) >= 1:
            return f"{c:.2f}"
        return f"{c:.3g}"
    return str(c)


def machine() -> str:
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}, {cuda}"
    )


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    num = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
    den = sum((a - mx) ** 2 for a in lx)
    return num / den if den else float("nan")
