"""The benchmark scripts keep working as the package moves (nothing here is timed)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def load() -> Iterator[object]:
    """Import benchmark modules as ``make bench`` does (from the benchmarks folder), then
    forget them: their names (``startup``, ``throughput``) are not the package's."""
    sys.path.insert(0, str(BENCHMARKS))

    def load(name: str) -> ModuleType:
        return importlib.import_module(name)

    try:
        yield load
    finally:
        sys.path.remove(str(BENCHMARKS))
        for path in BENCHMARKS.glob("*.py"):
            sys.modules.pop(path.stem, None)


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCHMARKS.glob("*.py")))
def test_every_benchmark_script_imports(load, name: str) -> None:
    load(name)


def test_the_overhead_baseline_draws_matgrads_inputs_and_agrees_with_it(load) -> None:
    from matgrad.engine.core import Settings, check_compiled
    from matgrad.spec.schema import compile_identity

    overhead = load("overhead")
    idents = overhead.identities(2)
    assert overhead.with_matgrad(idents, 3) and overhead.by_hand(idents, 3)
    for ident in idents:
        keep: list = []
        check_compiled(compile_identity(ident, 3), Settings(trials=3), "cpu", keep)
        ((run, _, _, _, _),) = keep
        x, a = overhead.draw(ident, 3)
        assert torch.equal(run.x["X"], x) and torch.equal(run.x["A"], a)


def test_the_custom_backward_row_checks_the_same_function_both_ways(load) -> None:
    bench = load("custom_backward")
    assert bench.matgrad_seconds(4)[1] == "passed"
    assert bench.gradcheck_seconds(2)[1] is True
    assert "vs gradcheck" in bench.main(points=3)
