from __future__ import annotations

import json

import pytest
import torch

from matgrad.engine.core import Settings, check_identity, compare, identity_seed, run
from matgrad.limits import DEFAULT_LIMITS
from matgrad.spec.schema import Claim, Identity, load_text


def one(text: str, **settings) -> object:
    (ident,) = load_text(text, "t.yaml")
    assert isinstance(ident, Identity), ident
    return check_identity(ident, Settings(**settings), "cpu")


def ident_yaml(f: str, claims: str, vars_: str, dims: str = "{n: 4, m: 3}", extra: str = "") -> str:
    return f"id: t\ndims: {dims}\nvars: {vars_}\nf: {f!r}\n{claims}\n{extra}"


RIGHT = [
    pytest.param("tr(inv(X) @ A)", "grad: {X: '-(inv(X) @ A @ inv(X)).T'}",
                 "{X: {shape: [n, n], domain: invertible}, A: [n, n]}", id="trace-inverse"),
    pytest.param("x.T @ A @ x", "grad: {x: '(A + A.T) @ x'}", "{x: [n, 1], A: [n, n]}",
                 id="quadratic-form"),
    pytest.param("a.T @ X @ b", "grad: {X: 'a @ b.T'}", "{a: [n, 1], X: [n, m], b: [m, 1]}",
                 id="bilinear-nonsquare"),
    pytest.param("det(X)", "grad: {X: 'det(X) * inv(X).T'}",
                 "{X: {shape: [n, n], domain: invertible}}", id="det"),
    pytest.param("logdet(X)", "grad: {X: 'inv(X).T'}",
                 "{X: {shape: [n, n], domain: invertible}}", id="logdet-negative-det-too"),
    pytest.param("inv(X)", "differential: {X: '-inv(X) @ dX @ inv(X)'}",
                 "{X: {shape: [n, n], domain: invertible}}", id="differential-inverse"),
    pytest.param("X @ Y", "differential: {X: 'dX @ Y', Y: 'X @ dY'}", "{X: [n, m], Y: [m, n]}",
                 id="differential-product"),
    pytest.param("x.T @ A @ x + b.T @ x", "hessian: {x: 'A + A.T'}",
                 "{x: [n, 1], A: [n, n], b: [n, 1]}", id="hessian"),
    pytest.param("sum(exp(x))", "hessian: {x: 'diag(exp(x))'}", "{x: [n]}", id="hessian-plain"),
    pytest.param("logsumexp(x)", "grad: {x: 'softmax(x)'}", "{x: [n, 1]}", id="logsumexp"),
    pytest.param("norm(X) ** 2", "grad: {X: '2 * X'}", "{X: [n, m]}", id="frobenius"),
    pytest.param("tr(expm(X))", "grad: {X: 'expm(X).T'}", "{X: [n, n]}", id="expm"),
    pytest.param("tr(X)", "grad: {X: 'eye(n)', Y: 'zeros(n, m)'}", "{X: [n, n], Y: [n, m]}",
                 id="unused-variable-has-zero-gradient"),
    pytest.param("sum(vec(X) * vec(X))", "grad: {X: '2 * X'}", "{X: [n, m]}", id="vec"),
    pytest.param("tr(kron(X, Y))", "grad: {X: 'tr(Y) * eye(n)'}", "{X: [n, n], Y: [m, m]}",
                 id="kron"),
]


@pytest.mark.parametrize(("f", "claims", "vars_"), RIGHT)
def test_right_identities_pass(f: str, claims: str, vars_: str) -> None:
    for seed in range(3):
        r = one(ident_yaml(f, claims, vars_), seed=seed)
        assert r.status == "passed", r.message


WRONG = [
    pytest.param("tr(inv(X) @ A)", "grad: {X: '-inv(X) @ A @ inv(X)'}",
                 "{X: {shape: [n, n], domain: invertible}, A: [n, n]}", id="missing-transpose"),
    pytest.param("x.T @ A @ x", "grad: {x: '2 * A @ x'}", "{x: [n, 1], A: [n, n]}",
                 id="missing-symmetrisation"),
    pytest.param("a.T @ X @ b", "grad: {X: '-a @ b.T'}", "{a: [n, 1], X: [n, m], b: [m, 1]}",
                 id="sign"),
    pytest.param("norm(X) ** 2", "grad: {X: 'X'}", "{X: [n, m]}", id="factor-2"),
    pytest.param("X @ X", "differential: {X: '2 * X @ dX'}", "{X: [n, n]}",
                 id="differential-missing-term"),
    pytest.param("x.T @ A @ x", "hessian: {x: '2 * A'}", "{x: [n, 1], A: [n, n]}",
                 id="hessian-not-symmetrised"),
    pytest.param("tr(A @ X @ B)", "grad: {X: 'B @ A'}", "{A: [m, n], X: [n, n], B: [n, m]}",
                 id="product-order"),
]


@pytest.mark.parametrize(("f", "claims", "vars_"), WRONG)
def test_wrong_identities_fail(f: str, claims: str, vars_: str) -> None:
    for seed in range(3):
        r = one(ident_yaml(f, claims, vars_), seed=seed)
        assert r.status == "failed", r.message
        assert "mismatched on trial" in r.message
        r = one(ident_yaml(f, claims, vars_, extra="expect: fail"), seed=seed)
        assert r.status == "xfailed"


def test_expect_fail_that_passes_is_xpassed() -> None:
    r = one(ident_yaml("tr(X)", "grad: {X: 'eye(n)'}", "{X: [n, n]}", extra="expect: fail"))
    assert r.status == "xpassed"
    assert not r.ok


def test_one_wrong_claim_among_right_ones_is_xfailed() -> None:
    text = ident_yaml("tr(X @ Y)", "grad: {X: 'Y.T', Y: 'X'}", "{X: [n, m], Y: [m, n]}",
                      extra="expect: fail")
    r = one(text)
    assert r.status == "xfailed"
    assert [c.status for c in r.claims] == ["passed", "failed"]


def test_wrong_shape_is_a_failed_claim_with_a_layout_hint() -> None:
    r = one(ident_yaml("a.T @ x", "grad: {x: 'a.T'}", "{a: [n, 1], x: [n, 1]}"))
    assert r.status == "failed"
    (c,) = r.claims
    assert c.message == "grad x: the claim has shape [1, 4], but it must have shape [4, 1] (the shape of x)"
    assert c.hint and "transposed" in c.hint


def test_nan_is_never_a_pass() -> None:
    r = one(ident_yaml("sum(sqrt(x))", "grad: {x: '0.5 / sqrt(x)'}", "{x: [n]}"))
    assert r.status == "error"
    assert "NaN/Inf" in r.message


def test_nan_in_claim_is_an_error() -> None:
    r = one(ident_yaml("sum(x)", "grad: {x: 'log(x - x)'}", "{x: [n]}"))
    assert r.status == "error"
    assert "the claim grad x gives NaN/Inf on 100 of 100 draws" in r.message


def test_inf_never_passes_even_when_both_sides_agree() -> None:
    t = torch.full((2, 3), float("inf"), dtype=torch.float64)
    c = Claim("grad", "x", "x", 1, 1)
    assert compare(c, t, t, (3,), 1e-6, 1e-9).status == "error"


def test_compare_names_the_first_non_finite_trial_of_each_side() -> None:
    truth = torch.zeros(4, 3, dtype=torch.float64)
    value = truth.clone()
    c = Claim("grad", "x", "x", 1, 1)
    value[2, 1] = float("nan")
    res = compare(c, truth, value, (3,), 1e-6, 1e-9)
    assert res.status == "error" and "claim evaluates to NaN/Inf on trial 2" in res.message
    truth[1, 0] = float("-inf")
    res = compare(c, truth, value, (3,), 1e-6, 1e-9)
    assert res.status == "error" and "autograd gives NaN/Inf on trial 1" in res.message


def test_compare_overflowing_difference_of_finite_values_is_a_mismatch() -> None:
    truth = torch.full((2, 2), 1e308, dtype=torch.float64)
    res = compare(Claim("grad", "x", "x", 1, 1), truth, -truth, (2,), 1e-6, 1e-9)
    assert res.status == "failed"
    assert res.max_abs_err == float("inf")


def test_compare_with_zero_tolerance_needs_exact_equality() -> None:
    c = Claim("grad", "x", "x", 1, 1)
    truth = torch.tensor([[0.0, 2.0], [0.0, -1.0]], dtype=torch.float64)
    res = compare(c, truth, truth.clone(), (2,), 0.0, 0.0)
    assert res.status == "passed" and res.max_ratio == 0.0 and res.max_rel_err == 0.0
    off = truth.clone()
    off[1, 0] = 1e-300  # next to an exact zero: any difference is over a zero bound
    res = compare(c, truth, off, (2,), 0.0, 0.0)
    assert res.status == "failed" and (res.worst.trial, res.worst.index) == (1, [0])


def test_compare_has_no_relative_error_when_autograd_is_all_zero() -> None:
    zero = torch.zeros(3, 2, dtype=torch.float64)
    res = compare(Claim("grad", "x", "x", 1, 1), zero, zero.clone(), (2,), 1e-6, 1e-9)
    assert res.status == "passed" and res.max_rel_err is None
    # nothing absolute: next to an all-zero truth, 1e-12 is a mismatch (atol scales by 0)
    res = compare(Claim("grad", "x", "x", 1, 1), zero, zero + 1e-12, (2,), 1e-6, 1e-9)
    assert res.status == "failed" and res.max_rel_err is None


def test_claim_values_never_carry_autograd_state() -> None:
    # A claim that is a bare variable evaluates to that variable's tensor: it must not be
    # the leaf autograd differentiated (the diagnosis works on plain values).
    from matgrad.engine.core import check_compiled
    from matgrad.spec.schema import compile_identity

    (ident,) = load_text(ident_yaml("0.5 * norm(X) ** 2", "grad: {X: 'X'}", "{X: [n, m]}"), "t")
    keep: list = []
    (res,) = check_compiled(compile_identity(ident, 3), Settings(trials=3), "cpu", keep)
    assert res.status == "passed"
    ((_, _, truth, value, _),) = keep
    assert not value.requires_grad and not truth.requires_grad


def test_a_claim_computes_a_subexpression_it_repeats_once(monkeypatch) -> None:
    # grad tr(X^-1 A) = -X^-T A^T X^-T writes inv(X) twice: one inverse for f (autograd
    # keeps its own), one for the claim, not two.
    inverses = []
    real_inv = torch.linalg.inv
    monkeypatch.setattr(torch.linalg, "inv", lambda m: inverses.append(1) or real_inv(m))
    r = one(ident_yaml("tr(inv(X) @ A)", "grad: {X: '-inv(X).T @ A.T @ inv(X).T'}",
                       "{X: {shape: [n, n], domain: invertible}, A: [n, n]}"))
    assert r.status == "passed", r.message
    assert len(inverses) == 2


def test_compare_records_worst_entry() -> None:
    truth = torch.zeros(3, 2, 2, dtype=torch.float64)
    claim = truth.clone()
    claim[2, 1, 0] = 0.5
    res = compare(Claim("grad", "X", "X", 1, 1), truth, claim, (2, 2), 1e-6, 1e-9)
    assert res.status == "failed"
    assert (res.worst.trial, res.worst.index) == (2, [1, 0])
    assert res.worst.claimed == 0.5 and res.worst.autograd == 0.0
    assert res.max_abs_err == 0.5


def test_tolerance_override_and_float32() -> None:
    text = ident_yaml("tr(inv(X))", "grad: {X: '-(inv(X) @ inv(X)).T'}",
                      "{X: {shape: [n, n], domain: invertible}}")
    assert one(text, dtype="float32").status == "passed"
    loose = text + "tol: {rtol: 1.0, atol: 10.0}\n"
    wrong = loose.replace("-(inv(X) @ inv(X)).T", "(inv(X) @ inv(X)).T")
    # A tolerance that hides the mistake needs the bound raised (and the reports say so).
    (refused,) = load_text(wrong, "t.yaml")
    assert not isinstance(refused, Identity) and "over the limit max_tol=0.1" in str(refused.error)
    raised = DEFAULT_LIMITS.replace(max_tol=10.0)
    (ident,) = load_text(wrong, "t.yaml", raised)
    assert isinstance(ident, Identity), ident
    r = check_identity(ident, Settings(limits=raised), "cpu")
    assert r.status == "passed"  # the user asked for a tolerance that hides it
    assert r.loose_tol == {"rtol": 1.0, "atol": 10.0}


def test_symmetric_conventions() -> None:
    base = ident_yaml("tr(A @ X)", "grad: {X: CLAIM}", "{X: {shape: [n, n], domain: symmetric}, A: [n, n]}")
    entrywise = base.replace("CLAIM", "A.T")
    assert one(entrywise).status == "passed"
    frob = base.replace("CLAIM", "sym(A)") + "convention: frobenius\n"
    r = one(frob)
    assert r.status == "passed" and r.claims[0].convention == "frobenius"
    free = base.replace("CLAIM", "'A + A.T - diag(diag(A))'") + "convention: free\n"
    assert one(free).status == "passed"
    assert one(base.replace("CLAIM", "A.T") + "convention: free\n").status == "failed"


def test_seed_per_identity_is_order_independent() -> None:
    assert identity_seed(0, "a") == identity_seed(0, "a")
    assert identity_seed(0, "a") != identity_seed(1, "a")
    assert identity_seed(0, "a") != identity_seed(0, "b")
    text = """
identities:
  - id: one
    vars: {X: [3, 3]}
    f: tr(X @ X)
    grad: {X: 'X.T + X.T + 1.0e-3 * X'}
  - id: two
    vars: {X: [3, 3]}
    f: tr(X @ X)
    grad: {X: 'X.T + X.T + 1.0e-3 * X'}
"""
    items = load_text(text, "t.yaml")
    forward = run(items, Settings(seed=5)).to_dict()
    backward = run(list(reversed(items)), Settings(seed=5)).to_dict()
    by_id = {r["id"]: r for r in forward["results"]}
    for r in backward["results"]:
        assert r["claims"][0]["max_abs_err"] == by_id[r["id"]]["claims"][0]["max_abs_err"]


def test_same_seed_same_json() -> None:
    items = load_text(ident_yaml("tr(inv(X))", "grad: {X: 'inv(X).T'}",
                                 "{X: {shape: [n, n], domain: invertible}}"), "t.yaml")

    def scrub(d: dict) -> str:
        d = dict(d, seconds=0)
        d["results"] = [dict(r, seconds=0) for r in d["results"]]
        return json.dumps(d, sort_keys=True)

    assert scrub(run(items, Settings(seed=3)).to_dict()) == scrub(run(items, Settings(seed=3)).to_dict())


def test_trials_setting_overrides_file() -> None:
    r = one(ident_yaml("tr(X)", "grad: {X: 'eye(n)'}", "{X: [n, n]}", extra="trials: 3"), trials=7)
    assert r.trials == 7
    r = one(ident_yaml("tr(X)", "grad: {X: 'eye(n)'}", "{X: [n, n]}", extra="trials: 3"))
    assert r.trials == 3


def test_internal_error_is_reported_for_that_identity_only(monkeypatch) -> None:
    import matgrad.engine.core as engine

    def boom(*a, **k):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(engine, "check_compiled", boom)
    r = one(ident_yaml("tr(X)", "grad: {X: 'eye(n)'}", "{X: [n, n]}"))
    assert r.status == "error" and r.internal
    assert "This is a bug in matgrad: please report it" in r.message


def test_keyboard_interrupt_returns_partial_report(monkeypatch) -> None:
    import matgrad.engine.core as engine

    items = load_text("identities:\n" + "".join(
        f"  - {{id: i{k}, vars: {{X: [2, 2]}}, f: tr(X), grad: {{X: 'eye(2)'}}}}\n" for k in range(3)
    ), "t.yaml")
    real = engine.check_identity
    calls = []

    def interrupt_second(item, settings, device=None):
        calls.append(item.id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(item, settings, device)

    monkeypatch.setattr(engine, "check_identity", interrupt_second)
    report = run(items, Settings())
    assert not report.complete
    assert [r.id for r in report.results] == ["i0"]


def test_pinv_of_exactly_singular_matrix_treats_rounding_noise_as_zero() -> None:
    # (lambda_i I - A) is singular at an eigenvalue; rounding leaves a singular value ~1e-15
    # that torch's default pinv cut-off inverted, failing a right identity on rare draws.
    text = """
id: eigvec-pinv
dims: {n: 4}
vars: {A: {shape: [n, n], domain: symmetric}}
directions: tangent
let: {V: eigvecsh(A), l: eigvalsh(A)}
f: "col(V, 1)"
differential: {A: "pinv(entry(l, 1) * eye(n) - A) @ dA @ col(V, 1)"}
"""
    for seed in range(3):
        r = one(text, seed=seed, trials=2000)
        assert r.status == "passed", r.message


def test_let_may_use_a_direction_in_differential_claims() -> None:
    text = """
id: let-direction
dims: {n: 3}
vars: {X: {shape: [n, n], domain: invertible}, Y: [n, n]}
let: {Xi: inv(X), dXi: "-Xi @ dX @ Xi"}
f: Xi @ Y
differential: {X: dXi @ Y, Y: Xi @ dY}
"""
    r = one(text)
    assert r.status == "passed", r.message


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ("grad: {X: 'dXi'}", "name 'dXi' uses dX: it can only be used in a differential claim for X"),
        ("differential: {Y: 'dXi'}", "name 'dXi' uses dX"),
    ],
)
def test_direction_let_outside_its_claims_is_an_error(claims: str, message: str) -> None:
    text = (
        "id: t\ndims: {n: 3}\nvars: {X: [n, n], Y: [n, n]}\n"
        "let: {dXi: 'dX @ Y'}\nf: tr(X @ Y)\n" + claims + "\n"
    )
    r = one(text)
    assert r.status == "error"
    assert message in r.message


def test_large_batched_inverse_after_small_identities() -> None:
    # Raising torch's thread count again after lowering it for small work broke batched LU
    # of large matrices ("Pivots given to lu_solve must all be greater or equal to 1").
    from matgrad.limits import Limits

    small = ident_yaml("tr(X)", "grad: {X: 'eye(n)'}", "{X: [n, n]}").replace("id: t", "id: s")
    big = (
        "id: big\ndims: {n: 1024}\nvars: {X: {shape: [n, n], domain: invertible}}\n"
        "f: tr(inv(X))\ngrad: {X: '-(inv(X) @ inv(X)).T'}\ntrials: 10\n"
    )
    items = load_text(small, "s.yaml") + load_text(big, "b.yaml")
    limits = Limits(max_work=10**14, max_elements=400_000_000)
    report = run(items, Settings(dtype="float32", limits=limits, device="cpu"))
    assert [r.status for r in report.results] == ["passed", "passed"], report.results[1].message


def test_checking_differentials_does_not_load_symbolic_shapes() -> None:
    # torch.autograd.grad with explicit grad_outputs (and forward-mode dual tensors) import
    # torch.fx's symbolic shapes and sympy on first use: about a second of start-up.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from matgrad.engine.core import Settings, check_identity\n"
        "from matgrad.spec.schema import load_text\n"
        "text = 'id: a\\nvars: {X: [3, 3], Y: [3, 3]}\\nf: X @ Y\\ndifferential: {X: dX @ Y}\\n'\n"
        "(i,) = load_text(text, 'a.yaml')\n"
        "r = check_identity(i, Settings(), 'cpu')\n"
        "print(r.status, 'sympy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["passed", "False"], out.stderr


def test_mismatch_message_quotes_the_errors_of_the_trial_it_names() -> None:
    # Trial 0 has the largest absolute error (10 on 100, within rtol 0.2); trial 1 the worst
    # ratio to its tolerance (1 on 0.001): the message names trial 1 and quotes its figures,
    # the table's columns keep the largest over every trial.
    truth = torch.tensor([[100.0, 1.0], [0.001, 1.0]], dtype=torch.float64)
    value = torch.tensor([[110.0, 1.0], [1.001, 1.0]], dtype=torch.float64)
    claim = Claim("grad", "x", "x", 1, 1)
    res = compare(claim, truth, value, (2,), 0.2, 0.0)
    assert res.status == "failed"
    assert res.message.startswith(
        "grad x mismatched on trial 1 at [0]: claimed 1.001, autograd 0.001 (max abs err 1, "
        "max rel err 1e+03 on that trial)"
    )
    assert res.max_abs_err == pytest.approx(10.0)
