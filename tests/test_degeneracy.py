"""The degeneracy guard: near-singular and repeated-eigenvalue draws are redrawn, and an identity
that sits on the degenerate set is an error with the measured number."""

from __future__ import annotations

import pytest
import torch

from matgrad.engine import degeneracy
from matgrad.engine.core import Settings, _draw, check_identity, identity_seed
from matgrad.spec.schema import Identity, compile_identity, load_text


def parsed(text: str) -> Identity:
    (ident,) = load_text(text, "t.yaml")
    assert isinstance(ident, Identity), ident
    return ident


def checked(text: str, **settings):
    return check_identity(parsed(text), Settings(**settings), "cpu")


ALWAYS_SINGULAR = [
    pytest.param(
        "id: t\nvars: {X: [3, 2], A: [3, 3]}\nf: tr(inv(X @ X.T) @ A)\n"
        "grad: {X: '-2 * inv(X @ X.T) @ A @ inv(X @ X.T) @ X'}\n",
        "t.yaml:1: identity 't': degenerate draws: in f, the argument of inv(X @ X.T) is (nearly) "
        "singular: condition number ",
        id="inv-rank-deficient",
    ),
    pytest.param(
        "id: t\nvars: {X: [3, 1]}\nlet: {v: 'col(eigvecsh(X @ X.T), 0)'}\nf: sum(v * v)\n"
        "grad: {X: 'zeros(3, 1)'}\n",
        "t.yaml:1: identity 't': degenerate draws: in let v, the argument of eigvecsh(X @ X.T) has "
        "a repeated eigenvalue next to the eigenvectors used (column 0): relative gap ",
        id="eigvecsh-repeated-zero",
    ),
    pytest.param(
        "id: t\nvars: {X: [3, 3]}\nf: logdet(X - X.T)\ngrad: {X: 'zeros(3, 3)'}\n",
        "t.yaml:1: identity 't': degenerate draws: in f, the argument of logdet(X - X.T) is "
        "(nearly) singular: condition number ",
        id="logdet-odd-skew",
    ),
    pytest.param(
        "id: t\nvars: {X: [3, 3], b: [3, 1]}\nf: sum(X @ b)\ngrad: {b: 'solve(X - X, b)'}\n",
        "t.yaml:1: identity 't': degenerate draws: in grad b, the argument of solve(X - X, b) is "
        "(nearly) singular: condition number inf",
        id="solve-in-a-claim",
    ),
]


@pytest.mark.parametrize(("text", "start"), ALWAYS_SINGULAR)
def test_always_degenerate_is_an_error_with_the_measure(text: str, start: str) -> None:
    r = checked(text)
    assert r.status == "error", r.message
    assert r.message.startswith(start), r.message
    assert "still after 5 redraws" in r.message
    assert r.message.endswith("choose domains that keep it away (e.g. spd or invertible)")


def test_exact_rank_deficiency_of_pinv_is_fine() -> None:
    # pinv(lam I - A) at an eigenvalue lam is singular by design; pinv is smooth there
    # (constant rank), so the guard must not refuse it.
    text = """
id: t
dims: {n: 4}
vars: {A: {shape: [n, n], domain: symmetric}}
let:
  lam: "entry(eigvalsh(A), 1)"
  v: "col(eigvecsh(A), 1)"
f: v
differential: {A: "pinv(lam * eye(n) - A) @ dA @ v"}
directions: tangent
"""
    assert checked(text).status == "passed"


def test_conditioned_domains_are_not_measured() -> None:
    ident = parsed("id: t\nvars: {X: {shape: [3, 3], domain: invertible}}\nf: logdet(X)\n"
                   "grad: {X: 'inv(X).T'}\n")
    assert degeneracy.sites(compile_identity(ident, 4)) == []
    real = parsed("id: t\nvars: {X: [3, 3]}\nf: logdet(X)\ngrad: {X: 'inv(X).T'}\n")
    assert [s.text for s in degeneracy.sites(compile_identity(real, 4))] == ["logdet(X)", "inv(X)"]


def test_identities_without_sensitive_functions_keep_their_draw_object() -> None:
    ident = parsed("id: t\nvars: {X: [3, 3]}\nf: tr(X @ X)\ngrad: {X: '2 * X.T'}\n")
    compiled = compile_identity(ident, 4)
    draw = _draw(ident, 4, 7)
    assert degeneracy.guard(compiled, draw, lambda k: pytest.fail("redrew"), "float64") is draw


def test_only_degenerate_trials_are_redrawn(monkeypatch) -> None:
    ident = parsed("id: t\nvars: {X: [3, 3]}\nf: logdet(X)\ngrad: {X: 'inv(X).T'}\n")
    compiled = compile_identity(ident, 12)
    draw = _draw(ident, 12, identity_seed(0, "t"))
    (site, _) = degeneracy.sites(compiled)
    cond = degeneracy.measure(site, draw[0]["X"])
    # Pretend the better-conditioned half of the trials is fine and the rest is degenerate.
    limit = float(cond.median())
    monkeypatch.setitem(degeneracy.THRESHOLDS, "float64", (1e-5, limit))
    redraws = []

    def redraw(k):
        redraws.append(k)
        return _draw(ident, 12, identity_seed(0, f"redraw {k}"))

    xs, _ = degeneracy.guard(compiled, draw, redraw, "float64")
    kept = cond <= limit
    assert bool(kept.any()) and bool((~kept).any())
    assert torch.equal(xs["X"][kept], draw[0]["X"][kept])  # good trials keep their values
    assert not torch.equal(xs["X"][~kept], draw[0]["X"][~kept])
    assert bool((degeneracy.measure(site, xs["X"]) <= limit).all())
    assert redraws and redraws == list(range(1, len(redraws) + 1))


def test_guard_is_reproducible_through_the_engine() -> None:
    text = "id: t\nvars: {X: [3, 3], A: [3, 3]}\nf: tr(inv(X) @ A)\ngrad: {X: '-(inv(X) @ A @ inv(X)).T'}\n"
    a = checked(text, seed=4, trials=50)
    b = checked(text, seed=4, trials=50)
    assert a.status == b.status == "passed"
    assert a.claims[0].max_abs_err == b.claims[0].max_abs_err


def test_float32_has_its_own_thresholds() -> None:
    assert degeneracy.THRESHOLDS["float32"][1] < degeneracy.THRESHOLDS["float64"][1]
    assert degeneracy.THRESHOLDS["float32"][0] > degeneracy.THRESHOLDS["float64"][0]


def test_simple_eigenvalue_next_to_repeated_ones_is_not_refused() -> None:
    # The top eigenvalue of x x^T is |x|^2 (simple); the others are a repeated 0. Its
    # gradient 2x is well defined, so the gap guard must not refuse the identity.
    text = (
        "id: t\ndims: {n: 4}\nvars: {x: [n, 1]}\nf: 'entry(eigvalsh(x @ x.T), 3)'\n"
        "grad: {x: '2 * x'}\n"
    )
    r = checked(text)
    assert r.status == "passed", r.message


@pytest.mark.parametrize(
    ("values", "finite"),
    [
        ([1.0, -2.0, 0.0], True),
        ([1e308, 1e308, -1e308], True),  # their sum overflows; they are finite all the same
        ([1.0, float("nan")], False),
        ([float("inf"), 1.0], False),
        ([-float("inf")], False),
        ([], True),
    ],
)
def test_all_finite(values: list[float], finite: bool) -> None:
    for dtype in (torch.float64, torch.float32):
        x = torch.tensor(values, dtype=torch.float64).to(dtype)
        if dtype is torch.float32 and any(abs(v) == 1e308 for v in values):
            continue
        assert degeneracy.all_finite(x) is finite


# ---- the guard measures only the eigenvalue gaps next to the eigenvectors a claim uses ------

# A @ A.T with A of rank 2 in 4 dimensions has the eigenvalue 0 twice: its lower eigenvectors
# are not differentiable, its top one (column 3) is. lambda_max = v^T A A^T v, d/dA = 2 v v^T A.
LOW_RANK_TOP = """
id: t
dims: {n: 4, k: 2}
vars: {A: [n, k]}
let: {v: "col(eigvecsh(A @ A.T), 3)"}
f: "v.T @ A @ A.T @ v"
grad: {A: "2 * v @ v.T @ A"}
"""


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(LOW_RANK_TOP, id="col-in-a-let"),
        pytest.param(
            LOW_RANK_TOP.replace(
                'let: {v: "col(eigvecsh(A @ A.T), 3)"}',
                'let: {V: "eigvecsh(A @ A.T)", v: "col(V, n - 1)"}',
            ),
            id="through-a-let-that-holds-the-eigenvectors",
        ),
        pytest.param(
            "id: t\ndims: {n: 4}\nvars: {a: [n, 1], b: [n, 1]}\n"
            "let: {M: 'outer(a, a) + outer(b, b)', w: 'entry(eigvecsh(M), 0, 3)'}\n"
            "f: 'w * w'\ndifferential: {a: '2 * w * entry(pinv(entry(eigvalsh(M), 3) * eye(n) - M)"
            " @ (outer(da, a) + outer(a, da)) @ col(eigvecsh(M), 3), 0, 0)'}\n",
            id="entry-of-the-top-eigenvector",
        ),
    ],
)
def test_a_simple_eigenvector_of_a_matrix_with_repeated_eigenvalues_is_checked(text) -> None:
    # Before: refused on every seed (the repeated zero eigenvalues were measured too).
    for seed in range(50):
        r = checked(text, seed=seed)
        assert r.status == "passed", (seed, r.message)


def test_the_wrong_claim_on_the_top_eigenvector_still_fails() -> None:
    wrong = LOW_RANK_TOP.replace('"2 * v @ v.T @ A"', '"v @ v.T @ A"')
    for seed in range(50):
        assert checked(wrong, seed=seed).status == "failed", seed
    # and the witnesses that do not trust autograd agree
    r = checked(LOW_RANK_TOP, witnesses=("fd", "taylor"))
    assert r.status == "passed" and r.claims[0].agreement == "all agree", r.message


@pytest.mark.parametrize(
    ("text", "used"),
    [
        pytest.param(LOW_RANK_TOP.replace("), 3)", "), 0)"), "(column 0)",
                     id="a-degenerate-eigenvector"),
        pytest.param(LOW_RANK_TOP.replace("), 3)", "), 1)"), "(column 1)",
                     id="next-to-the-repeated-pair"),
        pytest.param(
            LOW_RANK_TOP.replace('let: {v: "col(eigvecsh(A @ A.T), 3)"}',
                                 'let: {V: "eigvecsh(A @ A.T)", v: "col(V, 3)"}')
            .replace('f: "v.T @ A @ A.T @ v"', 'f: "v.T @ A @ A.T @ v + sum(V * V)"'),
            "has repeated eigenvalues",
            id="also-used-whole",
        ),
        pytest.param(
            LOW_RANK_TOP.replace('col(eigvecsh(A @ A.T), 3)', 'eigvecsh(A @ A.T) @ ones(n, 1)'),
            "has repeated eigenvalues",
            id="used-whole",
        ),
    ],
)
def test_a_claim_that_uses_a_degenerate_eigenvector_is_still_refused(text, used) -> None:
    r = checked(text)
    assert r.status == "error", r.message
    assert "degenerate draws" in r.message and used in r.message, r.message


def test_the_columns_each_site_measures() -> None:
    def columns(text: str) -> list[tuple[int, ...] | None]:
        ident = parsed(text)
        compiled = compile_identity(ident, 2)
        return [s.columns for s in degeneracy.sites(compiled)]

    assert columns(LOW_RANK_TOP) == [(3,)]
    two = LOW_RANK_TOP.replace('f: "v.T @ A @ A.T @ v"',
                               'f: "v.T @ A @ A.T @ v + sum(col(eigvecsh(A @ A.T), 2))"')
    assert columns(two) == [(2, 3)]
    whole = LOW_RANK_TOP.replace('f: "v.T @ A @ A.T @ v"',
                                 'f: "v.T @ A @ A.T @ v + sum(eigvecsh(A @ A.T))"')
    assert columns(whole) == [None]


# ---- kinks and ties (piecewise and order functions, comparisons) -------------------------------


def test_a_tie_on_one_trial_is_redrawn_and_counted() -> None:
    ident = parsed("id: t\nvars: {x: [3]}\nf: amax(x)\ngrad: {x: 'x >= amax(x)'}\n")
    compiled = compile_identity(ident, 6)
    xs, ds = _draw(ident, 6, identity_seed(0, "t"))
    xs["x"][2] = torch.tensor([1.0, 1.0 + 1e-9, 0.3], dtype=torch.float64)  # a near tie
    tally = degeneracy.Tally()
    out, _ = degeneracy.guard(
        compiled, (xs, ds), lambda k: _draw(ident, 6, identity_seed(0, f"redraw {k}")),
        "float64", tally,
    )
    assert tally.degenerate == 1
    assert not torch.equal(out["x"][2], xs["x"][2])
    keep = [0, 1, 3, 4, 5]
    assert torch.equal(out["x"][keep], xs["x"][keep])


def test_an_identity_that_sits_on_a_tie_is_refused() -> None:
    r = checked(
        "id: t\nvars: {x: [3], y: [3]}\nf: sum(maximum(x, x + 1e-9 * y))\n"
        "grad: {x: 'ones(3)'}\n"
    )
    assert r.status == "error"
    assert "are at a kink or a tie" in r.message and "maximum(x, x + 1e-9 * y)" in r.message


def test_structural_zeros_at_a_kink_are_not_degenerate() -> None:
    # the upper triangle of tril(X) is exactly 0 on every draw: relu'(0) = 0 there, as claimed
    r = checked("id: t\nvars: {X: [4, 4]}\nf: sum(relu(tril(X)))\ngrad: {X: 'tril(X) > 0'}\n")
    assert r.status == "passed", r.message
    assert r.redrawn_degenerate == 0


def test_piecewise_claims_are_judged_on_every_seed() -> None:
    right = "id: t\nvars: {x: [6]}\nf: sum(abs(x))\ngrad: {x: 'sign(x)'}\n"
    wrong = "id: t\nvars: {x: [6]}\nf: sum(abs(x))\ngrad: {x: '(x > 0) * 1.0'}\n"
    for seed in range(5):
        assert checked(right, seed=seed).status == "passed"
        assert checked(wrong, seed=seed).status == "failed"


def test_a_batched_transpose_slip_gets_a_per_term_hint() -> None:
    r = checked(
        "id: t\ndims: {B: 2, n: 3}\nvars: {A: [B, n, n], X: [B, n, n]}\n"
        "f: sum(A * (X @ X))\ngrad: {X: 'A @ X.mT + X.mT @ A.mT'}\n"
    )
    assert r.status == "failed"
    assert r.claims[0].hint is not None and ".mT" in r.claims[0].hint
