from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.engine.core import resolve_device

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_a_usage_error() -> None:
    with pytest.raises(Exception, match="CUDA is not available"):
        resolve_device("cuda")
    r = CliRunner().invoke(app, ["check", str(ROOT / "identities" / "seed.yaml"), "--device", "cuda"])
    assert r.exit_code == 2
    assert "CUDA is not available here" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_auto_falls_back_to_cpu() -> None:
    assert resolve_device("auto") == "cpu"
