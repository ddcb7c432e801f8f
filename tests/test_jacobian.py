"""Jacobian claims (d vec f / d (vec X)^T, vec stacking columns), Hessians with respect to a
matrix in the vec layout, the layout hints, and `directions: tangent` beside claims without a
direction."""

from __future__ import annotations

import pytest

from matgrad.engine.core import check_identity
from matgrad.results import IdentityResult
from matgrad.settings import Settings
from matgrad.spec.schema import load_text, validate

AXB = "dims: {p: 4, m: 2, n: 3, q: 5}\nvars: {A: [p, m], X: [m, n], B: [n, q]}\nf: A @ X @ B\n"
INV = "dims: {n: 3}\nvars: {X: {shape: [n, n], domain: invertible}}\nf: inv(X)\n"
QUAD = "dims: {m: 3, n: 2}\nvars: {X: [m, n], A: [m, m]}\nf: tr(X.T @ A @ X)\n"
SOFTMAX = "dims: {n: 4}\nvars: {x: [n]}\nlet: {s: softmax(x)}\nf: s\n"
CUBE = "dims: {n: 3}\nvars: {x: [n]}\nf: x * x * x\n"


def result(text: str, seed: int = 0, witnesses: tuple[str, ...] = ()) -> IdentityResult:
    (item,) = load_text("id: t\n" + text, "t.yaml")
    return check_identity(item, Settings(seed=seed, witnesses=witnesses), "cpu")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("text", "claim", "status"),
    [
        pytest.param(AXB, "jacobian: {X: 'kron(B.T, A)'}", "passed", id="axb"),
        pytest.param(AXB, "jacobian: {X: 'kron(A, B.T)'}", "failed", id="axb-row-major"),
        pytest.param(INV, "jacobian: {X: '-kron(inv(X).T, inv(X))'}", "passed", id="inverse"),
        pytest.param(INV, "jacobian: {X: '-kron(inv(X), inv(X))'}", "failed", id="inverse-no-t"),
        pytest.param(SOFTMAX, "jacobian: {x: 'diag(s) - outer(s, s)'}", "passed", id="softmax"),
        pytest.param(CUBE, "jacobian: {x: '3 * diag(x * x)'}", "passed", id="elementwise"),
        pytest.param(CUBE, "jacobian: {x: '3 * outer(x, x)'}", "failed", id="elementwise-outer"),
        pytest.param(QUAD, "hessian: {X: 'kron(eye(n), A + A.T)'}", "passed", id="matrix-hessian"),
        pytest.param(QUAD, "hessian: {X: 'kron(eye(n), 2 * A)'}", "failed", id="hessian-not-sym"),
    ],
)
def test_right_and_wrong_claims_by_every_witness(text: str, claim: str, status: str,
                                                 seed: int) -> None:
    r = result(text + claim + "\n", seed, witnesses=("fd", "taylor"))
    assert r.status == status, r.message
    (c,) = r.claims
    verdicts = {w.name: w.verdict for w in c.witnesses}
    assert verdicts["autograd"] == ("agrees" if status == "passed" else "disagrees")
    assert set(verdicts) == {"autograd", "fd", "taylor"}


def test_the_vec_layout_matches_a_hand_made_jacobian() -> None:
    # f = X.T for a 2 x 3 X: vec(X.T) = K vec X, K the commutation matrix built entry by entry:
    # (vec X)_(i + 2j) = X[i, j] and (vec X.T)_(j + 3i) = X[i, j].
    entries = []
    for r in range(6):
        a, b = r % 3, r // 3  # (vec X.T)_r = X.T[a, b] = X[b, a] = (vec X)_(b + 2a)
        entries.append(f"outer(col(eye(6), {r}), col(eye(6), {b + 2 * a}))")
    k = " + ".join(entries)
    r = result(f"vars: {{X: [2, 3]}}\nf: X.T\njacobian: {{X: '{k}'}}\n")
    assert r.status == "passed", r.message


def test_a_claim_in_the_transposed_shape_names_the_layout() -> None:
    r = result(AXB + "jacobian: {X: 'kron(B, A.T)'}\n")
    (c,) = r.claims
    assert c.status == "failed"
    assert c.message == (
        "jacobian X: the claim has shape [6, 20], but it must have shape [20, 6] "
        "([numel(f), numel(X)], d vec f / d (vec X)^T)"
    )
    assert c.hint is not None and c.hint.startswith(
        "transposed layout: the claim is [6, 20], the shape of d (vec f)^T / d vec X"
    )


@pytest.mark.parametrize(
    ("text", "claim", "hint"),
    [
        pytest.param(AXB, "kron(A, B.T)", "row-major vec layout", id="row-major"),
        pytest.param("dims: {n: 3}\nvars: {x: [n], A: [n, n]}\nf: A @ x * x\n",
                     "(diag(x) @ A + diag(A @ x)).T", "transposed layout", id="square-transposed"),
    ],
)
def test_a_claim_in_another_layout_gets_a_hint_naming_it(text: str, claim: str,
                                                         hint: str) -> None:
    r = result(text + f"jacobian: {{{'X' if 'X' in text else 'x'}: '{claim}'}}\n")
    (c,) = r.claims
    assert c.status == "failed"
    assert c.hint is not None and c.hint.split(":")[0] == hint
    assert c.message.endswith("vec stacking the columns)")


def test_a_row_major_matrix_hessian_gets_a_hint_naming_the_layout() -> None:
    r = result("dims: {n: 3}\nvars: {X: [n, n], A: [n, n]}\nf: tr(X.T @ A @ X)\n"
               "hessian: {X: 'kron(A + A.T, eye(n))'}\n")
    (c,) = r.claims
    assert c.status == "failed"
    assert c.hint is not None and c.hint.startswith("row-major vec layout: the claim is the "
                                                    "Hessian with X flattened row by row")
    assert "[9, 9], vec stacking the columns" in c.message


def test_the_right_layout_hint_comes_from_finite_differences_too() -> None:
    (item,) = load_text("id: t\n" + AXB + "jacobian: {X: 'kron(A, B.T)'}\nwitness: [fd]\n",
                        "t.yaml")
    r = check_identity(item, Settings(), "cpu")
    (c,) = r.claims
    assert c.status == "failed"
    assert c.hint is not None and c.hint.startswith("row-major vec layout")


def test_a_matrix_hessian_has_the_vec_shape() -> None:
    r = result(QUAD + "hessian: {X: 'kron(eye(m), A + A.T)'}\n")
    (c,) = r.claims
    assert c.message == (
        "hessian X: the claim has shape [9, 9], but it must have shape [6, 6]"
    )


def test_a_jacobian_of_a_scalar_f_is_a_row() -> None:
    ok = result("dims: {n: 3}\nvars: {x: [n, 1]}\nf: x.T @ x\njacobian: {x: '2 * x.T'}\n")
    assert ok.status == "passed", ok.message
    column = result("dims: {n: 3}\nvars: {x: [n, 1]}\nf: x.T @ x\njacobian: {x: '2 * x'}\n")
    assert column.claims[0].hint is not None
    assert column.claims[0].hint.startswith("transposed layout")


def test_tangent_directions_beside_a_claim_without_direction_are_refused() -> None:
    text = (
        "id: t\ndims: {n: 3}\nvars: {X: {shape: [n, n], domain: symmetric}, A: [n, n]}\n"
        "f: tr(A @ X)\ngrad: {X: A.T}\ndirections: tangent\n"
    )
    (item,) = load_text(text, "t.yaml")
    ((_, err),) = validate([item])
    assert err is not None
    assert str(err) == (
        "t.yaml:6:1: identity 't', key directions: directions: tangent shapes only the "
        "directions of differential claims, but the grad X claim (line 5) has no direction: a "
        "gradient is about every entry of X, and tangent directions would be ignored for it. "
        "Remove directions: tangent, or write the claim as a differential claim along dX (in "
        "an identity of its own if the others need free directions)"
    )


@pytest.mark.parametrize("kind", ["grad", "hessian", "jacobian"])
def test_tangent_directions_are_refused_for_every_kind_without_a_direction(kind: str) -> None:
    f = "tr(A @ X)" if kind != "jacobian" else "A @ X"
    text = (f"id: t\ndims: {{n: 2}}\nvars: {{X: [n, n], A: [n, n]}}\nf: {f}\n"
            f"{kind}: {{X: '0'}}\ndirections: tangent\n")
    (item,) = load_text(text, "t.yaml")
    ((_, err),) = validate([item])
    assert err is not None and err.key == "directions"
    assert f"the {kind} X claim (line 5) has no direction" in str(err)


def test_tangent_directions_with_differential_claims_stay_allowed() -> None:
    text = ("id: t\ndims: {n: 2}\nvars: {Q: {shape: [n, n], domain: orthogonal}}\nf: Q.T @ Q\n"
            "differential: {Q: '0'}\ndirections: tangent\n")
    (item,) = load_text(text, "t.yaml")
    assert validate([item]) == [(item, None)]
