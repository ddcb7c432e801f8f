"""Run every benchmark and print its tables (``make bench``)."""

from __future__ import annotations

import time

import custom_backward
import library_scale
import matrix_scale
import overhead
import startup
import throughput
from _common import machine

if __name__ == "__main__":
    start = time.perf_counter()
    print(f"# matgrad benchmarks\n\nMachine: {machine()}")
    for mod in (startup, throughput, overhead, library_scale, matrix_scale, custom_backward):
        t = time.perf_counter()
        print(mod.main(), flush=True)
        print(f"\n({mod.__name__}: {time.perf_counter() - t:.0f} s)", flush=True)
    print(f"\nTotal: {time.perf_counter() - start:.0f} s")
