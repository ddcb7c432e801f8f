"""The CUDA path: the same draws and the same verdicts as on the CPU. Skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from matgrad.engine.core import Settings, resolve_device, run
from matgrad.spec.schema import load_all

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")


def test_auto_picks_cuda() -> None:
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_library_verdicts_match_cpu(dtype: str) -> None:
    items = load_all([str(ROOT / "identities")])
    cpu = run(items, Settings(device="cpu", dtype=dtype))
    gpu = run(items, Settings(device="cuda", dtype=dtype))
    assert gpu.device == "cuda"
    assert [(r.id, r.status) for r in gpu.results] == [(r.id, r.status) for r in cpu.results]
    if dtype == "float64":
        assert all(r.ok for r in gpu.results), [r.message for r in gpu.results if not r.ok]


def test_draws_are_device_independent() -> None:
    # The variables are drawn on the CPU and moved: a wrong claim's worst entry (an O(1)
    # error) is the same entry with the same values on both devices.
    items = load_all([str(ROOT / "identities" / "seed.yaml")])
    cpu = run(items, Settings(device="cpu")).to_dict()["results"]
    gpu = run(items, Settings(device="cuda")).to_dict()["results"]
    compared = 0
    for a, b in zip(cpu, gpu, strict=True):
        for ca, cb in zip(a["claims"], b["claims"], strict=True):
            if ca["status"] == "failed" and ca["worst"] is not None:
                assert (ca["worst"]["trial"], ca["worst"]["index"]) == (
                    cb["worst"]["trial"], cb["worst"]["index"]
                )
                assert ca["worst"]["autograd"] == pytest.approx(cb["worst"]["autograd"], rel=1e-9)
                assert ca["worst"]["claimed"] == pytest.approx(cb["worst"]["claimed"], rel=1e-9)
                compared += 1
    assert compared >= 3
