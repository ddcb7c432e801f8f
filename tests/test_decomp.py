"""Decompositions and matrix functions: values and derivatives agree with torch's own ops on
float64 and float32, shapes are decided before any tensor, the degeneracy guard measures what
makes each ill-defined, and vectors come in one sign gauge so claims about them have one
verdict."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from matgrad.engine import degeneracy
from matgrad.engine.core import Settings, check_identity
from matgrad.errors import ExprError
from matgrad.lang.expr import Scope, bind, parse
from matgrad.spec.schema import Identity, compile_identity, load_text

SHAPES = {"A": (5, 3), "W": (3, 5), "S": (4, 4), "L": (4, 4), "B": (4, 2), "b": (4,)}
SCOPE = Scope(SHAPES, {}, symmetric=frozenset({"S"}))
T = 6


def draw(dtype: Any) -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    env = {k: torch.randn((T, *s), generator=g, dtype=torch.float64) for k, s in SHAPES.items()}
    env["S"] = env["S"] @ env["S"].mT + torch.eye(4, dtype=torch.float64)
    env["L"] = torch.tril(env["L"]) + 3 * torch.eye(4, dtype=torch.float64)
    return {k: v.to(dtype) for k, v in env.items()}


def evaluate(text: str, env: dict[str, Any]) -> Any:
    b = bind(parse(text), SCOPE)
    like = torch.zeros(T, dtype=next(iter(env.values())).dtype)
    out = b.evaluate(env, torch, like)
    assert tuple(out.shape) == (T, *b.shape)
    return out


def gauge(vecs: Any) -> Any:
    """Columns signed so the entry of largest size is positive (the documented gauge)."""
    idx = vecs.abs().argmax(dim=-2, keepdim=True)
    return vecs * torch.sign(vecs.gather(-2, idx))


# expression, and the same with torch's own op on the batch (gauge-invariant or gauged)
CASES = [
    ("cholesky(S)", lambda v: torch.linalg.cholesky(v["S"])),
    ("cholesky(S, upper=True)", lambda v: torch.linalg.cholesky(v["S"], upper=True)),
    ("qr(A).Q @ qr(A).R", lambda v: v["A"]),
    ("abs(qr(A).R)", lambda v: torch.linalg.qr(v["A"]).R.abs()),
    ("svd(A).S", lambda v: torch.linalg.svdvals(v["A"])),
    ("svdvals(W)", lambda v: torch.linalg.svdvals(v["W"])),
    ("svd(A).U @ diag(svd(A).S) @ svd(A).Vh", lambda v: v["A"]),
    ("svd(A).U", lambda v: gauge(torch.linalg.svd(v["A"], full_matrices=False).U)),
    ("eigh(S).values", lambda v: torch.linalg.eigvalsh(v["S"])),
    ("eigh(S).vectors", lambda v: gauge(torch.linalg.eigh(v["S"]).eigenvectors)),
    ("eigvecsh(S)", lambda v: gauge(torch.linalg.eigh(v["S"]).eigenvectors)),
    (
        "solve_triangular(L, B, upper=False)",
        lambda v: torch.linalg.solve_triangular(v["L"], v["B"], upper=False),
    ),
    (
        "solve_triangular(L.T, b, upper=True)",
        lambda v: torch.linalg.solve_triangular(
            v["L"].mT, v["b"].unsqueeze(-1), upper=True
        ).squeeze(-1),
    ),
    (
        "solve_triangular(L, B.T, upper=False, left=False, unitriangular=True)",
        lambda v: torch.linalg.solve_triangular(
            v["L"], v["B"].mT, upper=False, left=False, unitriangular=True
        ),
    ),
    ("lstsq(A, A @ B[:3])", lambda v: torch.linalg.pinv(v["A"]) @ v["A"] @ v["B"][:, :3]),
    ("sqrtm(S) @ sqrtm(S)", lambda v: v["S"]),
    ("expm(logm(S))", lambda v: v["S"]),
    ("adj(L)", lambda v: torch.linalg.det(v["L"])[:, None, None] * torch.linalg.inv(v["L"])),
    ("adj(S)", lambda v: torch.linalg.det(v["S"])[:, None, None] * torch.linalg.inv(v["S"])),
]
for o in ("fro", "nuc", 2, -2, 1, -1):
    CASES.append(
        (f"matrix_norm(A, ord={o!r})", lambda v, o=o: torch.linalg.matrix_norm(v["A"], ord=o))
    )
CASES.append(("matrix_norm(A, ord='inf')", lambda v: torch.linalg.matrix_norm(v["A"], ord=1e999)))
CASES.append(("matrix_norm(A, ord='-inf')", lambda v: torch.linalg.matrix_norm(v["A"], -1e999)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("text", "reference"), CASES, ids=[c[0] for c in CASES])
def test_values_agree_with_torch(text: str, reference: Any, dtype: Any) -> None:
    env = draw(dtype)
    tol = 1e-10 if dtype == torch.float64 else 2e-3
    torch.testing.assert_close(evaluate(text, env), reference(env), rtol=tol, atol=tol)


# gauge-invariant scalar functions: matgrad's gradient is torch's autograd through its own op
GRADS = [
    ("dot(B, cholesky(S) @ B)", "S", lambda v: (v["B"] * (torch.linalg.cholesky(v["S"]) @ v["B"]))),
    ("sum(svd(A).S)", "A", lambda v: torch.linalg.svdvals(v["A"])),
    ("sum(svd(A).U[:, 0:1] @ svd(A).Vh[0:1])", "A", None),
    ("dot(S, sqrtm(S))", "S", None),
    ("dot(S, logm(S))", "S", None),
    ("sum(adj(L))", "L", lambda v: v["L"].det()[:, None, None] * torch.linalg.inv(v["L"])),
    ("sum(adj(A[:4, :2] @ B.T))", "A", None),
    ("sum(solve_triangular(L, B, upper=False))", "L", None),
    ("matrix_norm(A, ord='nuc')", "A", lambda v: torch.linalg.matrix_norm(v["A"], "nuc")),
]


def _sym_fn(s: Any, f: Any) -> Any:
    lam, q = torch.linalg.eigh(s)
    return (q * f(lam).unsqueeze(-2)) @ q.mT


def _adj_by_hand(m: Any) -> Any:
    n = m.shape[-1]
    out = torch.zeros_like(m)
    for i in range(n):
        for j in range(n):
            rows = [r for r in range(n) if r != i]
            cols = [c for c in range(n) if c != j]
            minor = m[..., rows, :][..., :, cols]
            out = out + torch.nn.functional.one_hot(
                torch.tensor(j * n + i), n * n
            ).reshape(n, n).to(m.dtype) * ((-1) ** (i + j) * _det3(minor)).reshape(-1, 1, 1)
    return out


def _det3(x: Any) -> Any:
    a, b, c = x[..., 0, 0], x[..., 0, 1], x[..., 0, 2]
    d, e, f = x[..., 1, 0], x[..., 1, 1], x[..., 1, 2]
    g, h, i = x[..., 2, 0], x[..., 2, 1], x[..., 2, 2]
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


REFERENCE = {
    # a rank-2 4 x 4 matrix: adj is zero there but its derivative is not; torch's det
    # backward is wrong at such minors, the explicit polynomial is the truth
    "sum(adj(A[:4, :2] @ B.T))": lambda v: _adj_by_hand(v["A"][:, :4, :2] @ v["B"].mT),
    "sum(svd(A).U[:, 0:1] @ svd(A).Vh[0:1])": lambda v: (
        lambda u, s, vh: u[..., :, :1] @ vh[..., :1, :]
    )(*torch.linalg.svd(v["A"], full_matrices=False)),
    "dot(S, sqrtm(S))": lambda v: v["S"] * _sym_fn(0.5 * (v["S"] + v["S"].mT), torch.sqrt),
    "dot(S, logm(S))": lambda v: v["S"] * _sym_fn(0.5 * (v["S"] + v["S"].mT), torch.log),
    "sum(solve_triangular(L, B, upper=False))": lambda v: torch.linalg.solve_triangular(
        v["L"], v["B"], upper=False
    ),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("text", "var", "reference"), GRADS, ids=[g[0] for g in GRADS])
def test_gradients_agree_with_torch_autograd(text: str, var: str, reference: Any, dtype) -> None:
    ref = reference or REFERENCE[text]
    env = draw(dtype)
    mine = {k: v.clone().requires_grad_(k == var) for k, v in env.items()}
    theirs = {k: v.clone().requires_grad_(k == var) for k, v in env.items()}
    (g1,) = torch.autograd.grad(evaluate(text, mine).sum(), [mine[var]])
    (g2,) = torch.autograd.grad(ref(theirs).sum(), [theirs[var]])
    if var == "S":  # matgrad reads a symmetric argument through its symmetric part
        g2 = 0.5 * (g2 + g2.mT)
    tol = 1e-8 if dtype == torch.float64 else 5e-3
    torch.testing.assert_close(g1, g2, rtol=tol, atol=tol)


def test_second_derivatives_of_sqrtm_match_autograd_through_eigh() -> None:
    env = draw(torch.float64)
    s = env["S"].requires_grad_(True)
    d = torch.randn_like(s)
    d = d + d.mT

    def hvp(f: Any) -> Any:
        (g,) = torch.autograd.grad(f(s).sum(), [s], create_graph=True)
        (h,) = torch.autograd.grad((g * d).sum(), [s])
        return h

    mine = hvp(lambda x: evaluate("sum(sqrtm(S) @ sqrtm(S) @ sqrtm(S))", {**env, "S": x}))
    ref = hvp(lambda x: _sym_fn(0.5 * (x + x.mT), lambda lam: lam**1.5).sum((-1, -2)))
    torch.testing.assert_close(mine, ref, rtol=1e-7, atol=1e-7)


def test_logm_derivative_is_exact_at_repeated_eigenvalues() -> None:
    s = torch.eye(3, dtype=torch.float64).expand(2, 3, 3).clone().requires_grad_(True)
    out = bind(parse("dot(C, logm(S))"), Scope({"S": (3, 3), "C": (3, 3)}, {}, symmetric=frozenset({"S"})))
    c = torch.randn(2, 3, 3, dtype=torch.float64)
    (g,) = torch.autograd.grad(out.evaluate({"S": s, "C": c}, torch, c[:, 0, 0]).sum(), [s])
    torch.testing.assert_close(g, 0.5 * (c + c.mT))  # the derivative of log at I is E


def test_a_function_with_several_results_is_computed_once(monkeypatch) -> None:
    calls = []
    real = torch.linalg.qr

    def counting(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(torch.linalg, "qr", counting)
    env = draw(torch.float64)
    b = bind(parse("qr(A).Q @ qr(A).R - A"), SCOPE)
    b.evaluate(env, torch, torch.zeros(T, dtype=torch.float64), memo={})
    assert len(calls) == 1


SHAPE_ERRORS = [
    ("qr(A)", "'qr(A)' has several results: pick one with qr(A).Q or qr(A).R"),
    ("svd(A).V", "svd has no result .V: its results are .U, .S, .Vh"),
    ("cholesky(A)", "in 'cholesky(A)': cholesky"),
    ("cholesky(L)", "'L' is not symmetric by construction"),
    ("eigh(L).values", "'L' is not symmetric by construction"),
    ("solve_triangular(L, B)", "needs upper=True (A upper triangular) or upper=False"),
    ("solve_triangular(L, A, upper=True)", "needs B with 4 rows to match A [4, 4], got [5, 3]"),
    ("solve_triangular(L, B, upper=1)", "needs upper=True"),
    ("lstsq(W, B)", "needs A [m, n] with m >= n"),
    ("logm(A)", "logm is defined for symmetric matrices, and 'A' is not symmetric"),
    ("adj(eye(7))", "for n <= 6; got n = 7"),
    ("matrix_norm(A, ord=3)", "option ord= must be one of 'fro', 'nuc', 2, -2, 1, -1"),
    ("matrix_norm(b)", "needs a matrix [m, n], got shape [4]"),
    ("adj(A)", "adj needs a square matrix [n, n], got shape [5, 3]"),
    ("svdvals(b)", "needs a matrix [m, n], got shape [4]"),
]


@pytest.mark.parametrize(("text", "needle"), SHAPE_ERRORS)
def test_shape_errors_before_any_tensor(text: str, needle: str) -> None:
    with pytest.raises(ExprError) as e:
        bind(parse(text), SCOPE)
    assert needle in str(e.value)


def test_part_shapes_are_known_statically() -> None:
    shapes = {t: bind(parse(t), SCOPE).shape for t in (
        "qr(A).Q", "qr(A).R", "qr(W).Q", "qr(W).R", "svd(A).U", "svd(A).S", "svd(A).Vh",
        "eigh(S).values", "eigh(S).vectors",
    )}
    assert shapes == {
        "qr(A).Q": (5, 3), "qr(A).R": (3, 3), "qr(W).Q": (3, 3), "qr(W).R": (3, 5),
        "svd(A).U": (5, 3), "svd(A).S": (3,), "svd(A).Vh": (3, 3),
        "eigh(S).values": (4,), "eigh(S).vectors": (4, 4),
    }


# ---- the degeneracy guard ------------------------------------------------------------------


def parsed(text: str) -> Identity:
    (ident,) = load_text(text, "t.yaml")
    assert isinstance(ident, Identity), ident
    return ident


ALWAYS_DEGENERATE = [
    (
        "id: t\nvars: {X: [4, 2], Y: [3, 2]}\nf: sum(svd(X @ Y.T).U)\ngrad: {X: 'zeros(4, 2)'}\n",
        "the argument of svd(X @ Y.T) has repeated or zero singular values",
    ),
    (
        "id: t\nvars: {S: {shape: [3, 3], domain: spd}}\nf: tr(sqrtm(-S))\n"
        "grad: {S: 'zeros(3, 3)'}\n",
        "the argument of sqrtm(-S) has an eigenvalue that is not clearly positive",
    ),
    (
        "id: t\nvars: {L: [3, 3], b: [3]}\nf: sum(solve_triangular(L - tril(L), b, upper=False))\n"
        "grad: {b: 'zeros(3)'}\n",
        "the argument of solve_triangular(L - tril(L), b, upper=False) is (nearly) singular",
    ),
    (
        "id: t\nvars: {X: [3, 1]}\nf: sum(eigh(X @ X.T).vectors)\ngrad: {X: 'zeros(3, 1)'}\n",
        "the argument of eigh(X @ X.T) has repeated eigenvalues",
    ),
]


@pytest.mark.parametrize(("text", "needle"), ALWAYS_DEGENERATE)
def test_an_identity_on_the_degenerate_set_is_refused(text: str, needle: str) -> None:
    r = check_identity(parsed(text), Settings(trials=10), "cpu")
    assert r.status == "error", r.message
    assert needle in r.message, r.message
    assert "still after 5 redraws" in r.message


def test_only_the_read_triangle_is_measured() -> None:
    # the strictly upper part of L is huge and ignored by a lower solve: no redraw
    text = (
        "id: t\nvars: {L: {shape: [3, 3], domain: lower}, b: [3]}\n"
        "f: sum(solve_triangular(L + 1e9 * triu(ones(3, 3), 1), b, upper=False))\n"
        "grad: {b: 'solve_triangular(L.T, ones(3), upper=True)'}\n"
    )
    r = check_identity(parsed(text), Settings(trials=30, seed=2), "cpu")
    assert r.status == "passed", r.message


NEAR_DEGENERATE = [
    # (identity, sensitivity): each right, each with a sensitive site whose measure varies
    (
        "id: t\nvars: {A: [4, 3]}\nf: sum(svd(A).S)\ngrad: {A: 'svd(A).U @ svd(A).Vh'}\n",
        "svd",
    ),
    (
        "id: t\nvars: {S: {shape: [3, 3], domain: symmetric}, c: [3]}\n"
        "f: dot(c, eigh(S).values)\ngrad: {S: 'eigh(S).vectors @ diag(c) @ eigh(S).vectors.T'}\n",
        "gap",
    ),
    (
        "id: t\nvars: {L: {shape: [3, 3], domain: lower}, b: [3]}\n"
        "f: sum(solve_triangular(L, b, upper=False))\n"
        "grad: {b: 'solve_triangular(L.T, ones(3), upper=True)'}\n",
        "triangular",
    ),
    (
        "id: t\nvars: {S: {shape: [3, 3], domain: symmetric}, C: [3, 3]}\n"
        "f: dot(C, sqrtm(S @ S + 0.1 * eye(3)))\ngrad: {C: 'sqrtm(S @ S + 0.1 * eye(3))'}\n",
        "branch",
    ),
]


@pytest.mark.parametrize(("text", "sensitive"), NEAR_DEGENERATE, ids=[s for _, s in NEAR_DEGENERATE])
def test_near_degenerate_draws_are_redrawn_counted_and_the_verdict_stays(
    text: str, sensitive: str, monkeypatch
) -> None:
    ident = parsed(text)
    compiled = compile_identity(ident, 40)
    site = next(s for s in degeneracy.sites(compiled) if s.sensitive == sensitive)
    from matgrad.engine.core import _draw, identity_seed

    xs, _ = _draw(ident, 40, identity_seed(0, "t"))
    env = dict(xs)
    value = degeneracy.measure(site, bind_arg(site, env))
    # declare the worst fifth of the measured values degenerate (a condition number: the top)
    limit = float(value.quantile(0.8 if sensitive == "triangular" else 0.2))
    gap, cond = degeneracy.THRESHOLDS["float64"]
    if sensitive in ("svd", "gap"):
        monkeypatch.setitem(degeneracy.THRESHOLDS, "float64", (limit, cond))
    elif sensitive == "branch":
        monkeypatch.setitem(degeneracy.THRESHOLDS, "float64", (gap, 1 / limit))
    else:
        monkeypatch.setitem(degeneracy.THRESHOLDS, "float64", (gap, limit))
    r = check_identity(ident, Settings(trials=40, seed=0), "cpu")
    assert r.status == "passed", r.message
    assert r.redrawn_degenerate > 0


def bind_arg(site: Any, env: dict[str, Any]) -> Any:
    from matgrad.engine import tensors

    like = torch.zeros(next(iter(env.values())).shape[0], dtype=torch.float64)
    return tensors.evaluate(site.arg, env, like)


def test_a_sign_dependent_claim_has_one_verdict_on_every_seed() -> None:
    # sum(eigh(S).vectors) changes sign with the gauge: in the canonical gauge it is one smooth
    # function, so its right gradient passes and a sign-flipped one fails, on every seed
    right = (
        "id: t\nvars: {S: {shape: [3, 3], domain: symmetric}}\n"
        "let: {V: eigh(S).vectors, lam: eigh(S).values,"
        " F: '(1 - eye(3)) / (outer(ones(3), lam) - outer(lam, ones(3)) + eye(3))'}\n"
        "f: sum(eigh(S).vectors)\ngrad: {S: 'sym(V @ (F * (V.T @ ones(3, 3))) @ V.T)'}\n"
    )
    wrong = right.replace("grad: {S: '", "grad: {S: '-")
    for seed in range(6):
        assert check_identity(parsed(right), Settings(seed=seed), "cpu").status == "passed"
        assert check_identity(parsed(wrong), Settings(seed=seed), "cpu").status == "failed"
