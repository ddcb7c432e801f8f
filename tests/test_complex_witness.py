"""The witnesses that do not use autograd (finite differences, the Taylor test) on complex
variables: gradients in each Wirtinger convention, differentials of complex-valued f, wrong
conventions caught on every seed, the finite-difference value checked against central
differences on the real and imaginary parts written here, and the noise floor."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from matgrad.claims import KINDS
from matgrad.engine import witness
from matgrad.engine.core import Settings, _draw, check_identity
from matgrad.limits import Limits
from matgrad.spec.schema import Identity, compile_identity, load_text

CONVENTIONS = ("conjugate-wirtinger", "wirtinger", "pytorch")
# f = ||A Z - B||_F^2 (Hjørungnes): df/dconj(Z) = A^H (A Z - B)
F = "norm(A @ Z - B)**2"
RIGHT = {
    "conjugate-wirtinger": "A.H @ (A @ Z - B)",
    "wirtinger": "conj(A.H @ (A @ Z - B))",
    "pytorch": "2 * A.H @ (A @ Z - B)",
}
# the classic mistakes: the factor 2 of the convention, the conjugate
WRONG = {
    "conjugate-wirtinger": ["2 * A.H @ (A @ Z - B)", "conj(A.H @ (A @ Z - B))"],
    "wirtinger": ["2 * conj(A.H @ (A @ Z - B))", "A.H @ (A @ Z - B)"],
    "pytorch": ["A.H @ (A @ Z - B)", "2 * conj(A.H @ (A @ Z - B))"],
}
VARS = """\
vars:
  Z: {shape: [3, 2], domain: complex}
  A: {shape: [4, 3], domain: complex}
  B: {shape: [4, 2], domain: complex}
"""


def grad_text(claim: str, convention: str, witness_: str) -> str:
    return (
        f"id: t\n{VARS}f: {json.dumps(F)}\nconvention: {convention}\n"
        f"witness: [{witness_}]\ngrad:\n  Z: {json.dumps(claim)}\n"
    )


def one(text: str, **kw: object) -> object:
    (ident,) = load_text(textwrap.dedent(text), "t.yaml")
    assert isinstance(ident, Identity), ident
    return check_identity(ident, Settings(**kw), "cpu")  # type: ignore[arg-type]


@pytest.mark.parametrize("witness_", ["fd", "taylor"])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_a_right_gradient_passes_each_witness_in_each_convention(
    witness_: str, convention: str
) -> None:
    for seed in range(5):
        r = one(grad_text(RIGHT[convention], convention, witness_), seed=seed)
        assert r.status == "passed", (seed, r.message)
        assert [w.name for w in r.claims[0].witnesses] == [witness_]


@pytest.mark.parametrize("witness_", ["fd", "taylor"])
@pytest.mark.parametrize(
    ("convention", "mistake"),
    [(c, k) for c in CONVENTIONS for k in range(2)],
    ids=[f"{c}-{m}" for c in CONVENTIONS for m in ("factor-2", "conjugated")],
)
def test_a_wrong_convention_fails_each_witness_on_every_seed(
    witness_: str, convention: str, mistake: int
) -> None:
    claim = WRONG[convention][mistake]
    for seed in range(20):
        r = one(grad_text(claim, convention, witness_), seed=seed)
        assert r.status == "failed", (seed, r.status, r.message)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_both_witnesses_agree_with_autograd_on_a_hermitian_log_det(convention: str) -> None:
    # f = log det S = log |det S| for S Hermitian positive definite, its entries independent:
    # f = re(log det S), df/dconj(S) = conj(inv(S).T) / 2 = inv(S).H / 2
    claim = {"conjugate-wirtinger": "inv(S).H / 2", "wirtinger": "inv(S).T / 2",
             "pytorch": "inv(S).H"}[convention]
    r = one(f"""
        id: t
        vars: {{S: {{shape: [3, 3], domain: hpd}}}}
        f: "logdet(S)"
        convention: {convention}
        witness: [autograd, fd, taylor]
        grad: {{S: "{claim}"}}
    """)
    assert (r.status, r.claims[0].agreement) == ("passed", "all agree"), r.message


# ---- finite differences against central differences written here ------------------------------


def _parts_gradient(f, z: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """df/dRe z + i df/dIm z, entry by entry, by central differences (per trial of z)."""
    out = torch.zeros_like(z)
    flat = out.reshape(z.shape[0], -1)
    for k in range(flat.shape[1]):
        e = torch.zeros_like(z).reshape(z.shape[0], -1)
        e[:, k] = h
        e = e.reshape(z.shape)
        flat[:, k] = (f(z + e) - f(z - e)) / (2 * h) + 1j * (f(z + 1j * e) - f(z - 1j * e)) / (
            2 * h
        )
    return out


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_finite_differences_give_each_convention(convention: str) -> None:
    (ident,) = load_text(grad_text(RIGHT[convention], convention, "fd"), "t.yaml")
    assert isinstance(ident, Identity)
    compiled = compile_identity(ident, 4)
    xs, ds = _draw(ident, 4, 0)
    ev = witness.Evaluator(compiled, (xs, ds), "cpu")
    claim, _ = compiled.claims[0]
    value, _ = witness.finite_differences(
        ev, claim, KINDS["grad"].converter(torch, ident, "Z"), Limits()
    )
    a, b = xs["A"], xs["B"]

    def f(z: torch.Tensor) -> torch.Tensor:
        return (a @ z - b).abs().pow(2).sum(dim=(-2, -1))

    parts = _parts_gradient(f, xs["Z"])  # torch's .grad: df/dX + i df/dY
    expected = {"pytorch": parts, "conjugate-wirtinger": parts / 2,
                "wirtinger": parts.conj() / 2}[convention]
    assert value.dtype == torch.complex128
    assert torch.allclose(value, expected, rtol=1e-6, atol=1e-6)
    # and it is the closed form
    closed = a.mH @ (a @ xs["Z"] - b)
    closed = {"pytorch": 2 * closed, "conjugate-wirtinger": closed,
              "wirtinger": closed.conj()}[convention]
    assert torch.allclose(value, closed, rtol=1e-6, atol=1e-6)


def test_finite_differences_step_every_entry_along_both_parts() -> None:
    (ident,) = load_text(grad_text(RIGHT["pytorch"], "pytorch", "fd"), "t.yaml")
    assert isinstance(ident, Identity)
    compiled = compile_identity(ident, 10)
    # 6 complex entries, real and imaginary parts, two steps each way, two step sizes
    assert witness.fd_evals("grad", (3, 2), complex_var=True) == 4 * 6 * 2
    assert witness.fd_evals("grad", (3, 2)) == 2 * 6 * 2
    # a differential steps along its complex direction: as many as for a real one
    assert witness.fd_evals("differential", (3, 2), complex_var=True) == 4
    assert witness.witness_work(compiled, ("fd",), 10) > 0


# ---- differentials of complex-valued f ---------------------------------------------------------


@pytest.mark.parametrize("witness_", ["fd", "taylor"])
@pytest.mark.parametrize(
    ("f", "claim", "ok"),
    [
        pytest.param("inv(Z)", "-inv(Z) @ dZ @ inv(Z)", True, id="holomorphic"),
        pytest.param("Z @ Z.H", "dZ @ Z.H + Z @ dZ.H", True, id="non-holomorphic"),
        pytest.param("Z @ Z.H", "dZ @ Z.H + Z @ dZ.T", False, id="T-for-H"),
        pytest.param("Z @ Z.H", "dZ @ Z.H", False, id="conj-term-missing"),
        pytest.param("det(Z)", "det(Z) * tr(inv(Z) @ dZ)", True, id="det"),
        pytest.param("det(Z)", "det(Z) * tr(inv(Z) @ conj(dZ))", False, id="det-conjugated"),
    ],
)
def test_differentials_of_complex_f_under_each_witness(
    witness_: str, f: str, claim: str, ok: bool
) -> None:
    for seed in range(5):
        r = one(f"""
            id: t
            vars: {{Z: {{shape: [3, 3], domain: complex-invertible}}}}
            f: "{f}"
            witness: [{witness_}]
            differential: {{Z: "{claim}"}}
        """, seed=seed)
        assert r.status == ("passed" if ok else "failed"), (seed, r.message)


# ---- the noise floor holds for complex values -------------------------------------------------


@pytest.mark.parametrize("witness_", ["fd", "taylor"])
@pytest.mark.parametrize(
    ("f", "key", "claim"),
    [
        pytest.param("1e20 + norm(Z)**2", "grad", "2 * Z", id="real-f"),
        pytest.param("(1e20 + 1e20j) + Z * Z", "differential", "3 * Z * dZ", id="complex-f"),
    ],
)
def test_a_wrong_claim_inside_the_rounding_of_f_cannot_be_judged(
    witness_: str, f: str, key: str, claim: str
) -> None:
    r = one(f"""
        id: t
        vars: {{Z: {{shape: [3, 2], domain: complex}}}}
        f: "{f}"
        witness: [{witness_}]
        {key}: {{Z: "{claim}"}}
    """)
    assert r.status == "error", r.message
    assert witness.CANNOT_JUDGE in r.message


def test_a_failure_seen_by_every_witness_names_complex_entries() -> None:
    r = one(grad_text(WRONG["pytorch"][0], "pytorch", "fd"))
    assert r.status == "failed"
    assert "mismatched finite differences" in r.message
    assert "i, finite differences" in r.message  # both values printed as a + bi
