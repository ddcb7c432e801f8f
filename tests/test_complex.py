"""Complex variables: the domains' dtypes, the language (1j, .H, conj, real, imag, angle), the
Wirtinger conventions of grad claims against torch's autograd and against finite differences
on the real and imaginary parts, the hints, the errors, and complex numbers in the reports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from matgrad.engine import tensors
from matgrad.engine.core import Settings, check_identity
from matgrad.errors import ExprError
from matgrad.lang.expr import Scope, bind, parse
from matgrad.report import csv as csv_report
from matgrad.results import IDENTITY_STATUSES, Worst, fmt_number
from matgrad.spec.schema import Identity, Invalid, load_text
from tests.test_fuzz import trees


def one(text: str, **kw: object) -> object:
    (ident,) = load_text(textwrap.dedent(text), "t.yaml")
    if isinstance(ident, Invalid):
        return ident
    return check_identity(ident, Settings(**kw), "cpu")  # type: ignore[arg-type]


def grad_identity(f: str, claim: str, convention: str | None = None, shape: str = "[3, 2]",
                  extra_vars: str = "") -> str:
    conv = f"convention: {convention}\n" if convention else ""
    return (
        f"id: t\nvars:\n  Z: {{shape: {shape}, domain: complex}}\n{extra_vars}"
        f"f: {json.dumps(f)}\n{conv}grad:\n  Z: {json.dumps(claim)}\n"
    )


# ---- the language: shapes, literals, .H -------------------------------------------------------

SCOPE = Scope({"Z": (3, 2), "z": (3,), "S": (3, 3), "T": (2, 3, 3)}, {"n": 3})


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        pytest.param("Z.H", (2, 3), id="H-matrix"),
        pytest.param("z.H", (3,), id="H-vector"),
        pytest.param("Z.H @ Z", (2, 2), id="gram"),
        pytest.param("1j", (), id="imaginary"),
        pytest.param("2 + 3.5j", (), id="complex-sum"),
        pytest.param("1j * Z", (3, 2), id="scaled"),
        pytest.param("conj(Z)", (3, 2), id="conj"),
        pytest.param("real(Z) + imag(Z)", (3, 2), id="parts"),
        pytest.param("angle(z)", (3,), id="angle"),
        pytest.param("abs(Z)", (3, 2), id="abs"),
    ],
)
def test_shapes(text: str, shape: tuple[int, ...]) -> None:
    assert bind(parse(text), SCOPE).shape == shape


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("T.H", "in 'T.H': .H conjugate-transposes a matrix, but 'T' has shape "
                     "[2, 3, 3]", id="H-rank-3"),
        pytest.param("Z.H + Z", "shape mismatch in 'Z.H + Z'", id="H-shape-rule"),
        pytest.param("1e999j", "constant 1e999j is not finite", id="infinite-imaginary"),
        pytest.param("Z.Hx", "attribute .Hx is not allowed", id="other-attribute"),
    ],
)
def test_language_errors(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=None) as e:
        bind(parse(text), SCOPE)
    assert message in str(e.value)


def test_T_stays_plain_and_H_conjugates() -> None:
    r = one("""
        id: t
        vars: {Z: {shape: [3, 2], domain: complex}}
        f: "Z.T"
        differential: {Z: "dZ.T"}
    """)
    assert r.status == "passed", r.message
    r = one("""
        id: t
        vars: {Z: {shape: [3, 2], domain: complex}}
        f: "Z.H"
        differential: {Z: "dZ.T"}
    """)
    assert r.status == "failed"
    assert r.claims[0].hint.startswith("conjugated")


# ---- the domains draw complex values in the run's precision ------------------------------------


@pytest.mark.parametrize(("dtype", "complex_dtype"), [("float64", torch.complex128),
                                                      ("float32", torch.complex64)])
def test_the_variable_dtype_follows_its_domain(dtype: str, complex_dtype: torch.dtype) -> None:
    x = torch.zeros(2, 3, dtype=torch.complex128)
    assert tensors.cast(x, getattr(torch, dtype), "cpu").dtype == complex_dtype
    assert tensors.cast(x.real, getattr(torch, dtype), "cpu").dtype == getattr(torch, dtype)


@pytest.mark.parametrize("domain", ["complex", "hermitian", "hpd", "unitary",
                                    "complex-invertible"])
def test_every_complex_domain_checks_in_both_precisions(domain: str) -> None:
    for dtype in ("float64", "float32"):
        r = one(f"""
            id: t
            vars: {{Z: {{shape: [3, 3], domain: {domain}}}}}
            f: "Z @ Z.H"
            differential: {{Z: "dZ @ Z.H + Z @ dZ.H"}}
        """, dtype=dtype)
        assert r.status == "passed", (dtype, r.message)


# ---- conventions: torch's autograd, and finite differences on the real and imaginary parts ------


def _fd_gradient(f, z: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """df/dRe z + i df/dIm z by central differences, entry by entry (an independent truth)."""
    out = torch.zeros_like(z)
    flat = out.reshape(-1)
    for k in range(z.numel()):
        e = torch.zeros_like(z).reshape(-1)
        e[k] = h
        e = e.reshape(z.shape)
        d_re = (f(z + e) - f(z - e)) / (2 * h)
        d_im = (f(z + 1j * e) - f(z - 1j * e)) / (2 * h)
        flat[k] = d_re + 1j * d_im
    return out


def test_torch_grad_is_the_complex_gradient_by_finite_differences() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.complex(torch.randn(3, 2, generator=gen, dtype=torch.float64),
                      torch.randn(3, 2, generator=gen, dtype=torch.float64))
    a = torch.randn(3, 3, generator=gen, dtype=torch.complex128)
    a = a + a.mH

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.trace(x.mH @ a @ x).real

    leaf = z.clone().requires_grad_()
    f(leaf).backward()
    fd = _fd_gradient(f, z)
    assert torch.allclose(leaf.grad, fd, atol=1e-6)  # pytorch = dRe + i dIm
    assert torch.allclose(leaf.grad / 2, a @ z)  # conjugate Wirtinger: A Z


@pytest.mark.parametrize(
    ("convention", "claim"),
    [
        pytest.param(None, "Z", id="default-is-conjugate-wirtinger"),
        pytest.param("conjugate-wirtinger", "Z", id="conjugate-wirtinger"),
        pytest.param("wirtinger", "conj(Z)", id="wirtinger"),
        pytest.param("pytorch", "2 * Z", id="pytorch"),
    ],
)
def test_each_convention_of_the_frobenius_norm(convention: str | None, claim: str) -> None:
    for seed in range(3):
        r = one(grad_identity("norm(Z)**2", claim, convention), seed=seed)
        assert r.status == "passed", r.message
        assert r.claims[0].convention == (convention or "conjugate-wirtinger")


@pytest.mark.parametrize(
    ("convention", "claim", "named"),
    [
        pytest.param(None, "2 * Z", "convention pytorch", id="factor-2-is-pytorch"),
        pytest.param("pytorch", "Z", "convention conjugate-wirtinger", id="half-is-conjugate"),
        pytest.param(None, "conj(A.H @ Z)", "convention wirtinger", id="conjugated-is-wirtinger"),
        pytest.param("pytorch", "2 * conj(A @ Z)", "conjugated", id="conjugated"),
    ],
)
def test_a_claim_in_another_convention_gets_a_hint_naming_it(
    convention: str | None, claim: str, named: str
) -> None:
    extra = "  A: {shape: [3, 3], domain: hermitian}\n"
    f = "real(tr(Z.H @ A @ Z))" if "A" in claim else "norm(Z)**2"
    r = one(grad_identity(f, claim, convention, extra_vars=extra))
    assert r.status == "failed"
    assert r.claims[0].hint.startswith(named), r.claims[0].hint


def test_real_part_only_gets_its_hint() -> None:
    r = one(grad_identity("real(tr(A.H @ Z))", "real(A)", "pytorch",
                          extra_vars="  A: {shape: [3, 2], domain: complex}\n"))
    assert r.status == "failed"
    assert r.claims[0].hint.startswith("real part only")


@pytest.mark.parametrize("seed", range(4))
def test_wrong_complex_claims_fail_on_every_seed(seed: int) -> None:
    for claim in ("2 * Z", "conj(Z)", "Z.T.T * 1j", "real(Z)"):
        r = one(grad_identity("norm(Z)**2", claim), seed=seed)
        assert r.status == "failed", claim


# ---- differentials: holomorphic and not -------------------------------------------------------


@pytest.mark.parametrize(
    ("f", "claim", "ok"),
    [
        pytest.param("inv(Z)", "-inv(Z) @ dZ @ inv(Z)", True, id="holomorphic"),
        pytest.param("Z @ conj(Z)", "dZ @ conj(Z) + Z @ conj(dZ)", True, id="with-conj-dZ"),
        pytest.param("Z @ conj(Z)", "dZ @ conj(Z) + Z @ dZ", False, id="conj-dZ-missing"),
        pytest.param("expm(Z)", "expm(Z) @ dZ", False, id="expm-not-commuting"),
        pytest.param("abs(tr(Z))**2", "2 * real(conj(tr(Z)) * tr(dZ))", True, id="real-f"),
    ],
)
def test_differentials_of_complex_f(f: str, claim: str, ok: bool) -> None:
    r = one(f"""
        id: t
        vars: {{Z: {{shape: [3, 3], domain: complex-invertible}}}}
        f: {json.dumps(f)}
        differential: {{Z: {json.dumps(claim)}}}
    """)
    assert r.status == ("passed" if ok else "failed"), r.message


def test_the_complex_differential_agrees_with_finite_differences() -> None:
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(3, 3, generator=gen, dtype=torch.complex128)
    d = torch.randn(3, 3, generator=gen, dtype=torch.complex128)
    from matgrad.claims.differential import _complex_jvp

    leaf = z.clone().requires_grad_()
    out = leaf @ leaf.conj() + torch.linalg.inv(leaf)
    jv = _complex_jvp(torch, out, leaf, d)
    h = 1e-6

    def f(x: torch.Tensor) -> torch.Tensor:
        return x @ x.conj() + torch.linalg.inv(x)

    fd = (f(z + h * d) - f(z - h * d)) / (2 * h)
    assert torch.allclose(jv, fd, atol=1e-6)


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("f", "claim", "message"),
    [
        pytest.param("tr(Z)", "grad", "f is complex-valued: it has no gradient (a gradient needs "
                     "a real f); claim its differential instead", id="grad-of-complex-f"),
        pytest.param("sum(Z > 0)", "differential", "Z > 0: the comparison > needs real values",
                     id="comparison"),
        pytest.param("sum(relu(Z))", "differential", "relu(Z): relu does not accept complex "
                     "values here", id="piecewise"),
        pytest.param("sum(sort(Z, axis=0))", "differential", "sort needs real values",
                     id="order"),
    ],
)
def test_complex_values_where_a_real_is_needed_are_clean_errors(
    f: str, claim: str, message: str
) -> None:
    expr = "eye(3)" if claim == "grad" else "dZ"
    r = one(f"""
        id: t
        vars: {{Z: {{shape: [3, 3], domain: complex}}}}
        f: {json.dumps(f)}
        {claim}: {{Z: {json.dumps(expr)}}}
    """)
    assert (r.status, r.internal) == ("error", False)
    assert message in r.message


def test_a_complex_convention_needs_a_complex_variable() -> None:
    item = one("""
        id: t
        vars: {X: [3, 3]}
        f: "tr(X)"
        convention: pytorch
        grad: {X: "eye(3)"}
    """)
    assert isinstance(item, Invalid)
    assert "convention pytorch is a gradient convention for complex variables" in str(item.error)


@pytest.mark.parametrize("witness", ["fd", "taylor"])
def test_the_witnesses_judge_a_complex_variable(witness: str) -> None:
    # once refused ("they step along real directions only"); tests/test_complex_witness.py
    # has the conventions, the wrong claims and the noise floor
    r = one(grad_identity("norm(Z)**2", "Z"), witnesses=(witness,))
    assert r.status == "passed", r.message
    assert [w.name for w in r.claims[0].witnesses] == ["autograd", witness]
    r = one(grad_identity("norm(Z)**2", "2 * Z"), witnesses=(witness,))
    assert r.status == "failed", r.message


# ---- reports -----------------------------------------------------------------------------------


def test_complex_numbers_read_a_plus_bi() -> None:
    assert fmt_number(1.5 + 2j) == "1.5 + 2i"
    assert fmt_number(1.5 - 2j) == "1.5 - 2i"
    assert fmt_number(0.25) == "0.25"
    w = Worst(0, [1, 0], 1 + 2j, 0.5)
    assert w.to_dict()["autograd"] == {"re": 1.0, "im": 2.0}
    assert w.to_dict()["claimed"] == 0.5


def test_a_failed_complex_claim_reports_complex_entries() -> None:
    r = one(grad_identity("norm(Z)**2", "1j * Z"))
    assert r.status == "failed"
    assert isinstance(r.claims[0].worst.autograd, complex)
    assert "i," in r.claims[0].message or "i (" in r.claims[0].message
    from matgrad.results import RunReport

    report = RunReport(matgrad="x", torch="x", seed=0, device="cpu", dtype="float64",
                       witnesses=[], settings=Settings(), results=[r])
    rows = csv_report.rows(report)
    assert rows[0]["claim.worst.autograd"].endswith("i")
    json.dumps(report.to_dict())  # JSON-ready


# ---- fuzz: complex literals and variables through the whole check ------------------------------

COMPLEX_VARS = "{Z: {shape: [3, 3], domain: complex}, H: {shape: [3, 3], domain: hermitian}}"
complex_trees = trees(["Z", "H", "1j", "2.5j", "Z.H", "conj(Z)", "1", "0.5"], max_leaves=6)


@settings(max_examples=60, deadline=None)
@given(complex_trees, complex_trees, st.sampled_from(["grad", "differential", "jacobian",
                                                      "hessian"]))
def test_any_complex_identity_checks_to_a_result(f: str, claim: str, kind: str) -> None:
    scalar = kind in ("grad", "hessian")
    text = (
        f"id: fuzz\nvars: {COMPLEX_VARS}\nf: {json.dumps(f'sum({f})' if scalar else f)}\n"
        f"{kind}: {{Z: {json.dumps(claim)}}}\ntrials: 2\n"
    )
    (item,) = load_text(text, "fuzz.yaml")
    if not isinstance(item, Identity):
        return
    result = check_identity(item, Settings(), "cpu")
    assert result.status in IDENTITY_STATUSES
    assert not result.internal, result.message


# ---- a crash the complex differentials exposed --------------------------------------------------


def test_the_noise_estimate_survives_forward_mode_zero_tangents() -> None:
    # Forward-mode autograd stands for a missing tangent (of eye(3) here) by a zero tensor
    # without storage; moving it under Monte Carlo arithmetic crashed the process.
    code = textwrap.dedent("""
        import torch
        from matgrad.engine import tensors
        u = torch.randn(2, 3, 3, dtype=torch.float64)
        with torch.autograd.forward_ad.dual_level():
            x = torch.autograd.forward_ad.make_dual(u, torch.ones_like(u))
            with tensors.EveryOperation(tensors.Perturbation(1)):
                y = x @ x - torch.eye(3, dtype=torch.float64)
        print("ok", tuple(y.shape))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok (2, 3, 3)" in out.stdout


@pytest.mark.parametrize("claim", ["tr(A @ dR.T)", "tr(dR @ A.T)"])
def test_a_real_matrix_times_a_complex_one_is_complex(claim: str) -> None:
    # once an internal error: torch.matmul refuses a float64 operand with a complex128 one
    r = one(f"""
        id: t
        vars:
          R: {{shape: [3, 3]}}
          r: {{shape: [3]}}
          A: {{shape: [3, 3], domain: complex}}
        f: "tr(A @ R.T) + (A @ r) @ r * 0"
        differential: {{R: "{claim}"}}
    """)
    assert r.status == "passed", r.message


@pytest.mark.parametrize("kind", ["hessian", "jacobian"])
def test_a_second_order_claim_about_a_complex_variable_is_refused_where_it_is_written(
    kind: str,
) -> None:
    claim = "2 * eye(2)" if kind == "hessian" else "2 * Z.H"
    r = one(f"""
        id: t
        vars: {{Z: {{shape: [2], domain: complex}}}}
        f: "real(Z.H @ Z)"
        {kind}:
          Z: "{claim}"
    """)
    assert (r.status, r.internal, r.error_line) == ("error", False, 6)
    assert r.message == (
        f"t.yaml:6: identity 't', key {kind}.Z: a {kind} claim about a complex variable (Z, "
        f"domain complex) cannot be checked; claim the differential instead (differential: "
        f"{{Z: ...}}, the change of f along a complex dZ, where conj(dZ) and dZ.H may appear), "
        f"or for a real f its gradient (grad: {{Z: ...}})"
    )


def test_a_jacobian_of_a_complex_f_is_refused_naming_its_line_and_key() -> None:
    r = one("""
        id: t
        vars: {x: {shape: [2]}}
        f: "1j * x"
        jacobian:
          x: "1j * eye(2)"
    """)
    assert (r.status, r.internal) == ("error", False)
    assert r.message.endswith(
        "jacobian x (line 6, key jacobian.x): a jacobian claim about a complex f cannot be "
        "checked; claim the differential instead (differential: {x: ...}, the change of f "
        "along dx), or make f real (real(f), imag(f), abs(f)**2)"
    ), r.message
