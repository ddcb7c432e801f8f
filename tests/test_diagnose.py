"""Failure diagnosis: each hint fires on the mistake it names, and stays quiet on look-alikes."""

from __future__ import annotations

import json

import pytest

from matgrad.engine import diagnose
from matgrad.engine.core import Settings, check_identity, run
from matgrad.report import json as json_report
from matgrad.spec.schema import Identity, load_text


def claim_of(text: str, **settings):
    (ident,) = load_text(text, "t.yaml")
    assert isinstance(ident, Identity), ident
    r = check_identity(ident, Settings(**settings), "cpu")
    (c,) = r.claims
    return c


def ident(f: str, claim: str, vars_: str, extra: str = "") -> str:
    return f"id: t\ndims: {{n: 3, m: 2}}\nvars: {vars_}\nf: {f!r}\n{claim}\n{extra}"


SQUARE = "{X: [n, n], A: [n, n]}"
SYM_X = "{X: {shape: [n, n], domain: symmetric}, A: [n, n]}"
SPD_X = "{X: {shape: [n, n], domain: spd}}"
QUAD = "{x: [n, 1], A: [n, n]}"
PAIR = "{X: [n, m], Y: [n, m]}"
SQUARE_PAIR = "{X: [n, n], Y: [n, n]}"
SCALARS = "{x: [1]}"

FIRES = [
    pytest.param("tr(A @ X)", "grad: {X: A}", SQUARE, "", "transposed: the claim equals the "
                 "autograd value transposed (a numerator/denominator layout mix-up; did you mean "
                 ".T?)", id="transposed"),
    pytest.param("tr(A @ X)", "grad: {X: '-A.T'}", SQUARE, "",
                 "wrong sign: the claim equals minus the autograd value", id="wrong-sign"),
    pytest.param("tr(A @ X)", "grad: {X: '-A'}", SQUARE, "",
                 "transposed, wrong sign: the claim equals minus the autograd value transposed",
                 id="transposed-and-sign"),
    pytest.param("norm(X) ** 2", "grad: {X: '4 * X'}", PAIR, "",
                 "off by a factor 2.000: the claim equals 2.000 x the autograd value",
                 id="factor-2"),
    pytest.param("norm(X) ** 2", "grad: {X: X}", PAIR, "",
                 "off by a factor 0.500: the claim equals 0.500 x the autograd value",
                 id="factor-half"),
    pytest.param("tr(A @ X)", "grad: {X: '3 * A'}", SQUARE, "",
                 "transposed, off by a factor 3.000: the claim equals 3.000 x the autograd value "
                 "transposed", id="transposed-and-factor"),
    pytest.param("logdet(X)", "grad: {X: '2 * inv(X) - diag(diag(inv(X)))'}", SPD_X, "",
                 "convention free: the claim is the free-parameter gradient G + G.T - G*I of X; "
                 "set convention: free, or claim the gradient in the identity's convention",
                 id="convention-free"),
    pytest.param("tr(A @ X)", "grad: {X: 'sym(A)'}", SYM_X, "",
                 "convention frobenius: the claim is the Frobenius gradient sym(G) = (G + G.T)/2 "
                 "of X; set convention: frobenius, or claim the gradient in the identity's "
                 "convention", id="convention-frobenius"),
    pytest.param("tr(A @ X)", "grad: {X: 'A.T'}", SYM_X, "convention: frobenius",
                 "convention entrywise: the claim is the entrywise gradient (what autograd "
                 "returns) of X; set convention: entrywise, or claim the gradient in the "
                 "identity's convention", id="convention-entrywise"),
    pytest.param("x.T @ A @ x", "hessian: {x: '2 * A'}", QUAD, "",
                 "not symmetrised: the symmetric part (C + C.T)/2 of the claim C matches "
                 "autograd, which is symmetric; the claim is missing its transposed half",
                 id="hessian-not-symmetrised"),
    pytest.param("X.T @ X", "differential: {X: '2 * X.T @ dX'}", "{X: [n, n]}", "",
                 "not symmetrised: the symmetric part (C + C.T)/2 of the claim C matches "
                 "autograd, which is symmetric; the claim is missing its transposed half",
                 id="differential-not-symmetrised"),
    pytest.param("tr(A @ X)", "grad: {X: 'sym(A)'}", SQUARE, "",
                 "symmetric part only: the claim equals the symmetric part (G + G.T)/2 of the "
                 "autograd value G, which is not symmetric", id="symmetric-part-only"),
    pytest.param("x.T @ A @ x", "grad: {x: '2 * A @ x'}", QUAD, "",
                 "symmetric inputs only: the claim matches autograd when A is symmetric, but not "
                 "in general (a formula valid only for symmetric matrices, or a missing "
                 "symmetrisation such as 2 * A @ x for (A + A.T) @ x)", id="symmetric-inputs"),
    pytest.param("(a.T @ B @ x) * tr(C)", "grad: {x: 'B.T @ a * tr(C)'}",
                 "{a: [n, 1], B: [n, n], C: [n, n], x: [n, 1]}", "",
                 None, id="right-claim-no-hint"),
    pytest.param("tr(A @ X @ B)", "grad: {X: 'B.T @ A.T'}", "{X: [n, n], A: [n, n], B: [n, n]}",
                 "", "term 1 'B.T @ A.T' has its factors in the wrong order: 'A.T @ B.T'",
                 id="product-order"),
    pytest.param("sum(X * Y)", "grad: {X: 'X + Y'}", PAIR, "", "term 1 'X' should be dropped",
                 id="extra-term"),
    pytest.param("tr(X @ X.T @ A)", "grad: {X: '(A + A.T) @ X + X'}", SQUARE, "",
                 "term 2 'X' should be dropped", id="near-miss-extra-term"),
    pytest.param("sum(X * Y)", "grad: {X: X}", PAIR, "",
                 "swapped variables: the claim is the grad for Y, not for X (same shape; check "
                 "the order of the arguments)", id="swapped-grad"),
    pytest.param("X @ Y", "differential: {X: 'X @ dX'}", SQUARE_PAIR, "",
                 "swapped variables: the claim is the differential for Y, not for X (same shape; "
                 "check the order of the arguments)", id="swapped-differential"),
]


@pytest.mark.parametrize(("f", "claim", "vars_", "extra", "hint"), FIRES)
def test_hint_fires(f: str, claim: str, vars_: str, extra: str, hint: str | None) -> None:
    c = claim_of(ident(f, claim, vars_, extra))
    if hint is None:
        assert c.status == "passed" and c.hint is None
        return
    assert c.status == "failed", c.message
    assert c.hint == hint


def test_symmetric_inputs_names_the_input_that_matters() -> None:
    # C alone decides; A and D are square too and must not be named.
    text = ident(
        "x.T @ C @ x + tr(A @ D)",
        "grad: {x: '2 * C @ x'}",
        "{A: [n, n], C: [n, n], D: [n, n], x: [n, 1]}",
    )
    assert claim_of(text).hint.startswith("symmetric inputs only: the claim matches autograd when C is")


def test_a_term_that_needs_the_transpose_of_one_input_is_named() -> None:
    # Only the first term needs C.T: the repair says so rather than "C symmetric".
    text = ident(
        "(A @ x + b).T @ C @ (D @ x + e)",
        "grad: {x: 'D.T @ C @ (A @ x + b) + A.T @ C @ (D @ x + e)'}",
        "{A: [n, n], b: [n, 1], C: [n, n], D: [n, n], e: [n, 1], x: [n, 1]}",
    )
    assert claim_of(text).hint == (
        "term 1 'D.T @ C @ (A @ x + b)' has 'C' where 'C.T' belongs: 'D.T @ C.T @ (A @ x + b)'"
    )


def test_some_trials_only() -> None:
    # d|x|/dx is sign(x); the claim 1 is right exactly on the trials where x > 0.
    c = claim_of(ident("sum(abs(x))", "grad: {x: 'ones(1)'}", SCALARS), trials=20)
    assert c.status == "failed"
    assert c.hint is not None and c.hint.startswith("some trials only: the claim matches autograd on ")
    assert "suspect the domain or conditioning" in c.hint
    good = int(c.hint.split(" on ")[1].split(" of ")[0])
    assert 0 < good < 20


LOOK_ALIKES = [
    # wrong for every draw, with none of the named structures
    pytest.param("tr(A @ X)", "grad: {X: 'A @ A'}", SQUARE, id="unrelated-square"),
    # factor that changes from draw to draw is not "a constant factor"
    pytest.param("norm(X) ** 2", "grad: {X: 'tr(X.T @ X) * X'}", PAIR, id="data-dependent-factor"),
    # wrong in every convention
    pytest.param("logdet(X)", "grad: {X: 'X'}", SPD_X, id="no-convention-fits"),
    # x is never sign(x) on any trial
    pytest.param("sum(abs(x))", "grad: {x: 'x'}", SCALARS, id="never-right"),
    # wrong product order that no reordering of the claim's factors repairs
    pytest.param("tr(A @ X @ B)", "grad: {X: 'B.T @ A'}", "{X: [n, n], A: [n, n], B: [n, n]}",
                 id="product-order-and-transpose"),
    # a term off by a factor that no edit of one or two terms repairs
    pytest.param("tr(X @ X.T @ A)", "grad: {X: 'A @ X + A.T @ X @ A'}", SQUARE, id="near-miss"),
    # a claim that is zero is not "off by a factor 0"
    pytest.param("tr(A @ X)", "grad: {X: 'zeros(n, n)'}", SQUARE, id="zero-claim"),
]


@pytest.mark.parametrize(("f", "claim", "vars_"), LOOK_ALIKES)
def test_hint_stays_quiet(f: str, claim: str, vars_: str) -> None:
    c = claim_of(ident(f, claim, vars_), trials=20)
    assert c.status == "failed", c.message
    assert c.hint is None, c.hint


def test_symmetric_truth_is_not_called_transposed() -> None:
    # tr(X.T @ X): the truth 2X is symmetric only when X is; take symmetric X, claim -2X:
    # the hint is the sign, never "transposed".
    c = claim_of(ident("tr(X.T @ X)", "grad: {X: '-2 * X'}", SYM_X))
    assert c.hint == "wrong sign: the claim equals minus the autograd value"


def test_passing_claims_are_never_diagnosed(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(diagnose, "diagnose", lambda p: calls.append(p) or None)
    items = load_text(
        "identities:\n"
        "  - {id: a, vars: {X: [3, 3]}, f: tr(X), grad: {X: 'eye(3)'}}\n"
        "  - {id: b, vars: {X: [3, 3]}, f: tr(X @ X), grad: {X: '2 * X.T'}}\n",
        "t.yaml",
    )
    report = run(items, Settings())
    assert [r.status for r in report.results] == ["passed", "passed"]
    assert calls == []


def test_hint_in_json_report() -> None:
    items = load_text(ident("tr(A @ X)", "grad: {X: A}", SQUARE), "t.yaml")
    data = json.loads(json_report.render(run(items, Settings())))
    assert data["results"][0]["claims"][0]["hint"].startswith("transposed: ")


def test_hint_in_table_and_details(write) -> None:
    from typer.testing import CliRunner

    from matgrad.cli import app

    wrong = write(ident("norm(X) ** 2", "grad: {X: '4 * X'}", PAIR), "wrong.yaml")
    r = CliRunner().invoke(app, ["check", wrong])
    assert r.exit_code == 1
    header = next(line for line in r.stdout.splitlines() if "verdict" in line)
    assert header.rstrip("┃ ").endswith("hint")
    row = next(line for line in r.stdout.splitlines() if "grad X" in line and "FAIL" in line)
    assert "off by a factor 2.000" in row
    assert (
        "    hint: off by a factor 2.000: the claim equals 2.000 x the autograd value\n" in r.stdout
    )
    right = write(ident("norm(X) ** 2", "grad: {X: '2 * X'}", PAIR), "right.yaml")
    r = CliRunner().invoke(app, ["check", right])
    assert r.exit_code == 0 and "hint" not in r.stdout
