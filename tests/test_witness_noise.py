"""Witnesses that know their noise floor: finite differences and the Taylor test say they
cannot judge (``undefined``, the identity an ``error`` with the reason) where the rounding
noise of f at their steps swallows the signal, instead of agreeing with anything."""

from __future__ import annotations

import math

import pytest

from matgrad.engine import witness as witnesses
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


# ---- f's own rounding noise, measured (Monte Carlo arithmetic), and settling remainders -----

# Right identities of the bundled library that finite differences or the Taylor test once
# judged wrong at the scale-10 draws (each was an `error` with --fd --taylor on some of seeds
# 0-9): log(1 - sigmoid(z)) rounds to a staircase at large z, tanh and sigmoid saturate so
# that the remainder settles into its slope only at steps below f's noise, and torch's
# softplus is exactly z above z = 20 (its derivative off sigmoid's by e^-z).
ML_ONCE_ERRORS = [
    "ml-logreg-grad",
    "ml-logreg-grad-softplus-form",
    "ml-mlp-tanh-grad",
    "ml-mlp-tanh-batch-grad",
    "ml-mlp-tanh-softmax-xent-grad",
    "ml-mlp-sigmoid-grad",
    "ml-attention-grad",
    "ml-attention-differential",
]


def test_right_library_identities_pass_beside_every_witness() -> None:
    import matgrad

    for seed in range(10):
        report = matgrad.check(
            "identities/ml", seed=seed, witnesses=("fd", "taylor"), device="cpu",
            select=tuple(ML_ONCE_ERRORS),
        )
        assert len(report.results) == len(ML_ONCE_ERRORS)
        for r in report.results:
            assert r.status == "passed", (seed, r.id, [c.message for c in r.claims])


def _library(ident_id: str, witness: tuple[str, ...]) -> Identity:
    import dataclasses

    from matgrad.spec.schema import load_file

    (ident,) = [i for i in load_file("identities/ml/regression.yaml") if i.id == ident_id]
    assert isinstance(ident, Identity)
    return dataclasses.replace(ident, witness=witness)


@pytest.mark.parametrize("witness", ["fd", "taylor"])
def test_a_staircase_f_is_not_judged_wrong_by_a_witness_alone(witness: str) -> None:
    # log(1 - sigmoid(z)) at z ~ 35: 1 - sigmoid(z) is a few ulps of 1, so f moves in steps of
    # about 0.1 and eps * |f| underestimates its noise a million times. Before, each witness
    # alone failed this right identity on 8 of 10 seeds; f's measured noise makes it say it
    # cannot judge there.
    ident = _library("ml-logreg-grad", (witness,))
    for seed in range(10):
        r = check_identity(ident, Settings(seed=seed), "cpu")
        assert r.status in ("passed", "error"), (seed, r.message)
        if r.status == "error":
            assert "cannot judge" in r.message, (seed, r.message)


def test_the_taylor_test_allows_an_error_within_rtol() -> None:
    # torch's softplus is exactly z above z = 20, so sigmoid(z), its derivative everywhere
    # else, is off by e^-z < 2e-9 there: far within rtol, yet a remainder of exactly slope 1
    # above f's noise. Before, the right claim failed the Taylor test on every seed.
    def one(claim: str, seed: int) -> str:
        return run("sum(softplus(25 + x))", f"grad: {{x: '{claim}'}}", "{x: [n, 1]}",
                   "taylor", seed).status

    for seed in range(10):
        assert one("sigmoid(25 + x)", seed) != "failed", seed
        assert one("sigmoid(24 + x)", seed) == "failed", seed
        assert one("sigmoid(25.1 + x)", seed) == "failed", seed


@pytest.mark.parametrize(
    ("low", "settling"),
    [
        pytest.param([(1.3, 1.1, 1.5)], True, id="right-claim-rising-to-2"),
        pytest.param([(1.4, math.nan, math.nan)], True, id="two-steps-only"),
        pytest.param([(1.2, 1.35, 1.05)], False, id="wrong-claim-falling-to-1"),
        pytest.param([(0.7, 0.5, 0.9)], False, id="wrong-claim-rising-below-1"),
        pytest.param([(1.3, 1.1, 1.5), (1.1, 1.2, 1.0)], False, id="one-direction-wrong"),
        pytest.param([(1.3, 1.25, 1.3)], False, id="flat"),
        pytest.param([], False, id="no-low-slope"),
    ],
)
def test_a_low_slope_is_set_aside_only_while_it_may_still_settle(
    low: list[tuple[float, float, float]], settling: bool
) -> None:
    assert witnesses._settling(low) is settling
