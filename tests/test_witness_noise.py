"""Witnesses that know their noise floor: finite differences and the Taylor test say they
cannot judge (``undefined``, the identity an ``error`` with the reason) where the rounding
noise of f at their steps swallows the signal, instead of agreeing with anything."""

from __future__ import annotations

import pytest

from matgrad.engine.core import Settings, check_identity
from matgrad.spec.schema import Identity, load_text

MAT = "{A: [n, n], X: [n, n]}"
VEC = "{A: [n, n], x: [n, 1]}"

# A large constant added to f: its rounding (ulp(1e20) = 16384) hides the change of f over
# any step a witness takes, so every claim below "fits" inside the noise.
WRONG_UNDER_A_CONSTANT = [
    pytest.param("1e20 + tr(A @ X)", "grad: {X: 'A'}", MAT, id="grad-transposed"),
    pytest.param("1e20 + tr(A @ X)", "grad: {X: '-A.T'}", MAT, id="grad-wrong-sign"),
    pytest.param("1e20 + tr(A @ X)", "grad: {X: 'zeros(n, n)'}", MAT, id="grad-zero"),
    pytest.param("1e20 + X @ A", "differential: {X: 'A @ dX'}", MAT, id="differential"),
    pytest.param("1e20 + x.T @ A @ x", "hessian: {x: 'A'}", VEC, id="hessian"),
]


def run(f: str, claim: str, vars_: str, witness: str, seed: int = 0):
    text = f"id: t\ndims: {{n: 3}}\nvars: {vars_}\nf: {f!r}\n{claim}\nwitness: [{witness}]\n"
    (ident,) = load_text(text, "t.yaml")
    assert isinstance(ident, Identity), ident
    return check_identity(ident, Settings(seed=seed), "cpu")


@pytest.mark.parametrize("witness", ["fd", "taylor"])
@pytest.mark.parametrize(("f", "claim", "vars_"), WRONG_UNDER_A_CONSTANT)
def test_a_witness_under_the_noise_says_it_cannot_judge_on_every_seed(
    f: str, claim: str, vars_: str, witness: str
) -> None:
    # Before: every one of these passed ("agrees") on every seed.
    for seed in range(50):
        r = run(f, claim, vars_, witness, seed)
        assert r.status == "error", (seed, r.status, r.message)
        (c,) = r.claims
        (w,) = c.witnesses
        assert w.verdict == "undefined", (seed, w)
        assert "cannot judge" in w.message and "rounding noise" in w.message
        assert "cannot judge" in c.message


RIGHT_WITHOUT_THE_CONSTANT = [
    pytest.param("tr(A @ X)", "grad: {X: 'A.T'}", MAT, id="grad"),
    pytest.param("X @ A", "differential: {X: 'dX @ A'}", MAT, id="differential"),
    pytest.param("x.T @ A @ x", "hessian: {x: 'A + A.T'}", VEC, id="hessian"),
    pytest.param("1e3 + tr(A @ X)", "grad: {X: 'A.T'}", MAT, id="grad-small-constant"),
    # zero derivatives of an f that reads the variable: f still moves over the step
    pytest.param("sum(A @ x)", "hessian: {x: 'zeros(n, n)'}", VEC, id="hessian-of-linear"),
    pytest.param("Q.T @ Q", "differential: {Q: 'zeros(n, n)'}\ndirections: tangent",
                 "{Q: {shape: [n, n], domain: orthogonal}}", id="tangent-zero"),
]


@pytest.mark.parametrize("witness", ["fd", "taylor"])
@pytest.mark.parametrize(("f", "claim", "vars_"), RIGHT_WITHOUT_THE_CONSTANT)
def test_a_right_claim_above_the_noise_still_agrees(
    f: str, claim: str, vars_: str, witness: str
) -> None:
    for seed in range(50):
        r = run(f, claim, vars_, witness, seed)
        assert r.status == "passed", (seed, r.message)
        (w,) = r.claims[0].witnesses
        assert w.verdict == "agrees"


@pytest.mark.parametrize("witness", ["fd", "taylor"])
@pytest.mark.parametrize(
    ("f", "claim", "vars_"),
    [
        pytest.param("tr(A @ X)", "grad: {X: 'A'}", MAT, id="grad-transposed"),
        pytest.param("X @ A", "differential: {X: 'A @ dX'}", MAT, id="differential"),
        pytest.param("x.T @ A @ x", "hessian: {x: 'A'}", VEC, id="hessian"),
    ],
)
def test_a_wrong_claim_above_the_noise_is_still_caught(
    f: str, claim: str, vars_: str, witness: str
) -> None:
    for seed in range(10):
        r = run(f, claim, vars_, witness, seed)
        assert r.status == "failed", (seed, r.message)


@pytest.mark.parametrize("witness", ["fd", "taylor"])
def test_f_that_does_not_read_the_variable_is_judged_exactly(witness: str) -> None:
    # f = A has no rounding noise in X (moving X changes no input of f): a zero claim is
    # judged right, a nonzero one wrong, though f's size would suggest a noise floor.
    right = run("A", "differential: {X: 'zeros(n, n)'}", MAT, witness)
    assert right.status == "passed", right.message
    wrong = run("A", "differential: {X: 'dX'}", MAT, witness)
    assert wrong.status == "failed", wrong.message
    # through a let, too
    let = "let: {B: '2 * A'}"
    r = run("B", "differential: {X: 'zeros(n, n)'}\n" + let, MAT, witness)
    assert r.status == "passed", r.message


def test_a_mismatch_beyond_the_noise_is_still_a_failure() -> None:
    # The claim is far outside the noise (1e15 against a noise of ~1e11): a real disagreement.
    r = run("1e20 + tr(A @ X)", "grad: {X: '1e15 * A.T'}", MAT, "fd")
    assert r.status == "failed", r.message


def test_a_witness_that_cannot_judge_abstains_beside_one_that_can() -> None:
    # autograd is not troubled by a large constant: it judges alone, and the report still says
    # which witnesses could not.
    vars_ = MAT
    right = run("1e20 + tr(A @ X)", "grad: {X: 'A.T'}", vars_, "autograd, fd, taylor")
    assert right.status == "passed", right.message
    said = {w.name: w.verdict for w in right.claims[0].witnesses}
    assert said == {"autograd": "agrees", "fd": "undefined", "taylor": "undefined"}
    wrong = run("1e20 + tr(A @ X)", "grad: {X: 'A'}", vars_, "autograd, fd, taylor")
    assert wrong.status == "failed", wrong.message


def test_no_witness_can_judge_says_so() -> None:
    r = run("1e20 + tr(A @ X)", "grad: {X: 'A'}", MAT, "fd, taylor")
    assert r.status == "error"
    assert r.message.startswith("grad X: no witness can judge: finite differences cannot judge")
    assert "the Taylor test cannot judge" in r.message


def test_the_documented_samples_reproduce(monkeypatch) -> None:
    # docs/diagnosis.md shows these outputs with … where numbers depend on the draws.
    import re
    import shlex
    from pathlib import Path

    from typer.testing import CliRunner

    from matgrad.cli import app

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    doc = (root / "docs" / "diagnosis.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```text\n\$ matgrad (check docs/examples/[^\n]+)\n(.*?)```", doc, re.S)
    assert len(blocks) >= 2
    for command, shown in blocks:
        r = CliRunner().invoke(app, shlex.split(command))
        for line in shown.splitlines():
            pattern = ".*".join(re.escape(part) for part in line.split("…"))
            assert re.search("^" + pattern + "$", r.stdout, re.M), (command, line, r.stdout)


@pytest.mark.parametrize("witness", ["fd", "taylor"])
def test_no_wrong_claim_passes_at_any_constant(witness: str) -> None:
    # Between a harmless constant and a hopeless one the noise grows through the signal; a
    # remainder visible at a single Taylor step once let a zero claim "agree" at c = 1e11.
    for c in ("1e6", "1e9", "1e10", "1e11", "1e12", "1e14", "1e16"):
        for claim in ("A", "-A.T", "zeros(n, n)"):
            for seed in range(20):
                r = run(f"{c} + tr(A @ X)", f"grad: {{X: '{claim}'}}", MAT, witness, seed)
                assert r.status in ("failed", "error"), (c, claim, seed, r.message)
