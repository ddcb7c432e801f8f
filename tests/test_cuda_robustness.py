"""The hardening guarantees on a CUDA device (skipped where there is none)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.engine.core import Settings, check_identity, run
from matgrad.limits import DEFAULT_LIMITS, Limits
from matgrad.spec.schema import load_text

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _check(text: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    (item,) = load_text(text, "t.yaml", limits)
    return check_identity(item, Settings(limits=limits), "cuda")


def test_out_of_memory_on_the_gpu_is_an_error_not_a_bug() -> None:
    # With the limits raised past the card: two 80 GB intermediates.
    huge = Limits(max_elements=10**12, max_work=10**16)
    text = (
        "id: a\nvars: {x: [1024]}\nf: sum(outer(x, x) * outer(x, x))\n"
        "grad: {x: '4 * outer(x, x) @ x'}\ntrials: 10000\n"
    )
    try:
        r = _check(text, huge)
    finally:
        torch.cuda.empty_cache()
    assert (r.status, r.internal) == ("error", False)
    assert r.message.startswith("t.yaml:1: identity 'a': out of memory (OutOfMemoryError); ")
    assert _check("id: b\nvars: {X: [3, 3]}\nf: tr(X)\ngrad: {X: eye(3)}\n").status == "passed"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("id: a\nvars: {X: [1024, 1024]}\nf: sum(kron(X, X))\ngrad: {X: X}\n",
                     id="element-budget"),
        pytest.param("id: a\nvars: {X: [1024, 1024]}\nf: \"tr("
                     + " @ ".join(["expm(X)"] * 20) + ")\"\ngrad: {X: X}\ntrials: 1\n",
                     id="work-budget"),
    ],
)
def test_refused_identity_allocates_nothing_on_the_gpu(text: str) -> None:
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    r = _check(text)
    assert (r.status, r.internal) == ("error", False)
    assert torch.cuda.max_memory_allocated() == before


@pytest.mark.parametrize(
    ("f", "claim"),
    [
        pytest.param("sum(sqrt(x - x))", "grad: {x: zeros(3)}", id="grad-truth"),
        pytest.param("sqrt(x - x)", "differential: {x: zeros(3)}", id="differential-truth"),
        pytest.param("sum(sqrt(x - x))", "hessian: {x: 'zeros(3, 3)'}", id="hessian-truth"),
        pytest.param("sum(x)", "grad: {x: 'ones(3) / (x - x)'}", id="claim"),
    ],
)
def test_nan_never_passes_on_the_gpu(f: str, claim: str) -> None:
    r = _check(f"id: t\nvars: {{x: [3]}}\nf: {f!r}\n{claim}\n")
    assert r.status == "error" and "NaN/Inf" in r.message


MIXED = """
identities:
  - {id: right, vars: {X: {shape: [4, 4], domain: invertible}}, f: tr(inv(X)),
     grad: {X: "-(inv(X) @ inv(X)).T"}}
  - {id: wrong, vars: {X: {shape: [4, 4], domain: invertible}}, f: tr(inv(X)),
     grad: {X: "-inv(X) @ inv(X)"}}
  - {id: hess, vars: {x: [4]}, f: sum(exp(x)), hessian: {x: diag(exp(x))}}
  - {id: diff, vars: {X: [4, 4]}, f: expm(X), differential: {X: "dX @ expm(X)"}}
"""


def test_same_seed_same_report_on_the_gpu() -> None:
    items = load_text(MIXED, "t.yaml")

    def once() -> dict[str, Any]:
        d = run(items, Settings(seed=11, device="cuda")).to_dict()
        d.pop("seconds")
        for r in d["results"]:
            r.pop("seconds")
        return d

    first, second = once(), once()
    assert first["device"] == "cuda"
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_command_line_on_the_gpu(tmp_path) -> None:
    path = tmp_path / "ids.yaml"
    path.write_text(MIXED)
    r = CliRunner().invoke(app, ["check", str(path), "--device", "cuda", "--format", "json"])
    assert r.exit_code == 1, r.output  # "wrong" mismatches
    data = json.loads(r.stdout)
    assert data["device"] == "cuda"
    assert {x["id"]: x["status"] for x in data["results"]} == {
        "right": "passed", "wrong": "failed", "hess": "passed", "diff": "failed"
    }
