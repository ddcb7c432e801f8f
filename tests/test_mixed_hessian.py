"""Mixed second derivatives: ``hessian: {"x, y": EXPR}`` is d^2 f / (d vec x d (vec y)^T),
[numel(x), numel(y)], both sides in the vec layout (columns stacked)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from matgrad.claims import KINDS, missing_parts
from matgrad.claims.hessian import MixedHessian
from matgrad.engine.core import check_identity
from matgrad.limits import Limits
from matgrad.report.formula import claim as claim_mathml
from matgrad.report.formula import claim_text
from matgrad.results import IdentityResult
from matgrad.settings import Settings
from matgrad.spec.schema import Identity, load_text, validate

BILINEAR = "dims: {n: 3, m: 2}\nvars: {x: [n, 1], y: [m, 1], A: [n, m]}\nf: x.T @ A @ y\n"
SQUARE = "dims: {n: 3}\nvars: {x: [n, 1], y: [n, 1], A: [n, n]}\nf: x.T @ A @ y\n"
# tr(X^T A Y B): d^2 f = tr(dX^T A dY B) = vec(dX)^T (B^T kron A) vec(dY)
TRACE = (
    "dims: {m: 3, n: 2, p: 2, q: 3}\nvars: {X: [m, n], A: [m, p], Y: [p, q], B: [q, n]}\n"
    "f: tr(X.T @ A @ Y @ B)\n"
)
# d^2 / dw db of sum(cos(X w + b)) is -X^T cos(X w + b)
COSINE = "dims: {N: 5, d: 3}\nvars: {w: [d, 1], b: [], X: [N, d]}\nf: sum(cos(X @ w + b))\n"
# the logistic cross-entropy sum log(1 + e^z) - y z, z = X w + b: d^2 / dw db = X^T (s (1 - s))
LOGISTIC = (
    "dims: {N: 5, d: 3}\nvars: {w: [d, 1], b: [], X: [N, d], u: [N, 1]}\n"
    "let: {y: sigmoid(u), z: X @ w + b, s: sigmoid(z)}\n"
    "f: sum(logsumexp(concat(zeros(N, 1), z, axis=1), axis=1)) - sum(y * z)\n"
)


def result(text: str, seed: int = 0, witnesses: tuple[str, ...] = (), **kw: Any) -> IdentityResult:
    (item,) = load_text("id: t\n" + text, "t.yaml")
    return check_identity(item, Settings(seed=seed, witnesses=witnesses, **kw), "cpu")


def problem(text: str) -> str:
    found = [str(err) for _, err in validate(load_text(text, "t.yaml")) if err is not None]
    assert len(found) == 1, found
    return found[0]


# ---- the truth, against torch.autograd.functional.hessian built here ------------------------


def _vec(t: torch.Tensor) -> torch.Tensor:
    """Column stacking of one matrix (or a vector as it is)."""
    return t.T.reshape(-1) if t.dim() == 2 else t.reshape(-1)


def _reference(f: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The block d^2 f / (d vec x d (vec y)^T) of the full Hessian of f(x, y), entry by entry
    from torch.autograd.functional.hessian."""
    (_, hxy), _ = torch.autograd.functional.hessian(f, (x, y))
    n, m = x.numel(), y.numel()
    out = torch.zeros(n, m, dtype=torch.float64)
    xi = torch.arange(n).reshape(x.shape)
    yi = torch.arange(m).reshape(y.shape)
    rows, cols = _vec(xi), _vec(yi)  # vec position -> torch (row-major) position
    flat = hxy.reshape(n, m)
    for a in range(n):
        for b in range(m):
            out[a, b] = flat[rows[a], cols[b]]
    return out


class _Run:
    """The little of the engine's batch that a truth reads: the variables, f and leaves."""

    def __init__(self, xs: dict[str, torch.Tensor], f: Any) -> None:
        self.x = xs
        self.trials = next(iter(xs.values())).shape[0]
        self._f = f

    def leaves(self, names: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        out = {k: v.detach().requires_grad_(k in names) for k, v in self.x.items()}
        return out, out

    def f(self, env: dict[str, Any]) -> Any:
        return self._f(env)


@pytest.mark.parametrize(
    ("shapes", "f"),
    [
        pytest.param({"x": (3, 1), "y": (2, 1), "A": (3, 2)},
                     lambda e: e["x"].mT @ e["A"] @ e["y"], id="bilinear"),
        pytest.param({"X": (3, 2), "A": (3, 2), "Y": (2, 3), "B": (3, 2)},
                     lambda e: (e["X"].mT @ e["A"] @ e["Y"] @ e["B"]).diagonal(dim1=-2, dim2=-1)
                     .sum(-1), id="trace"),
        pytest.param({"X": (3, 2), "Y": (2, 4)},
                     lambda e: torch.sin(e["X"] @ e["Y"]).sum((-2, -1)), id="nonlinear"),
    ],
)
def test_the_truth_is_the_block_of_the_full_hessian(shapes: dict[str, tuple[int, ...]],
                                                    f: Any) -> None:
    gen = torch.Generator().manual_seed(0)
    xs = {k: torch.randn((4, *s), generator=gen, dtype=torch.float64) for k, s in shapes.items()}
    a, b = list(shapes)[:2] if "X" not in shapes else ("X", "Y")
    kind = MixedHessian(b, shapes[b])
    truth = kind.truth(torch, _Run(xs, f), a, {})
    assert truth.shape == (4, *kind.expected_shape(shapes[a], ()))
    for i in range(4):
        def one(p: torch.Tensor, q: torch.Tensor, i: int = i) -> torch.Tensor:
            env = {k: v[i : i + 1] for k, v in xs.items()} | {a: p[None], b: q[None]}
            return f(env).reshape(())
        ref = _reference(one, xs[a][i], xs[b][i])
        torch.testing.assert_close(truth[i], ref)


def test_the_mixed_kind_has_every_part_and_only_hessian_pairs() -> None:
    assert missing_parts(MixedHessian("y", (2,))) == []
    assert MixedHessian("y", (2,)).paired("z", ()) is None
    assert [k for k, kind in KINDS.items() if kind.paired("y", (2,)) is not None] == ["hessian"]


# ---- right and wrong claims, by every witness -----------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("text", "claim", "status"),
    [
        pytest.param(BILINEAR, '"x, y": A', "passed", id="bilinear"),
        pytest.param(BILINEAR, '"y, x": A.T', "passed", id="bilinear-other-order"),
        pytest.param(SQUARE, '"x, y": A.T', "failed", id="bilinear-transposed"),
        pytest.param(TRACE, '"X, Y": "kron(B.T, A)"', "passed", id="trace-kron"),
        pytest.param(TRACE, '"X, Y": "kron(A, B.T)"', "failed", id="trace-row-major"),
        pytest.param(COSINE, '"w, b": -X.T @ cos(X @ w + b)', "passed", id="cosine"),
        pytest.param(COSINE, '"w, b": X.T @ cos(X @ w + b)', "failed", id="cosine-sign"),
    ],
)
def test_right_and_wrong_claims_by_every_witness(text: str, claim: str, status: str,
                                                 seed: int) -> None:
    r = result(text + "hessian: {" + claim + "}\n", seed, witnesses=("fd", "taylor"))
    assert r.status == status, r.message
    (c,) = r.claims
    verdicts = {w.name: w.verdict for w in c.witnesses}
    want = "agrees" if status == "passed" else "disagrees"
    assert verdicts == {"autograd": want, "fd": want, "taylor": want}


@pytest.mark.parametrize(
    ("text", "claim", "status"),
    [
        pytest.param(TRACE, '"X, Y": "kron(B.T, A)"', "passed", id="right"),
        pytest.param(TRACE, '"X, Y": "-kron(B.T, A)"', "failed", id="wrong"),
        pytest.param(COSINE, '"w, b": -X.T @ cos(X @ w + b)', "passed", id="nonlinear-right"),
        pytest.param(COSINE, '"w, b": -X.T @ sin(X @ w + b)', "failed", id="nonlinear-wrong"),
    ],
)
@pytest.mark.parametrize("witness", ["fd", "taylor"])
def test_each_witness_alone_judges_a_mixed_claim(text: str, claim: str, status: str,
                                                 witness: str) -> None:
    r = result(text + f"witness: [{witness}]\nhessian: {{{claim}}}\n")
    assert r.status == status, r.message


@pytest.mark.parametrize("seed", range(20))
def test_a_wrong_factor_fails_on_every_seed(seed: int) -> None:
    r = result(TRACE + 'hessian: {"X, Y": "0.5 * kron(B.T, A)"}\n', seed)
    assert r.status == "failed", r.message


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("claim", "status"),
    [
        pytest.param("X.T @ (s * (1 - s))", "passed", id="right"),
        pytest.param("X.T @ (s - y)", "failed", id="the-gradient"),
    ],
)
def test_a_logistic_cross_term(claim: str, status: str, seed: int) -> None:
    # the cross-entropy sum log(1 + e^z) - y z: d^2 E / dw db = X^T (s (1 - s)), every witness
    text = LOGISTIC + f'hessian: {{"w, b": "{claim}"}}\n'
    r = result(text, seed, witnesses=("fd", "taylor"))
    assert r.status == status, r.message


def test_x_x_is_the_hessian_of_x() -> None:
    quad = "dims: {n: 3}\nvars: {x: [n, 1], A: [n, n]}\nf: x.T @ A @ x\n"
    same = result(quad + 'hessian: {"x, x": A + A.T}\n')
    plain = result(quad + "hessian: {x: A + A.T}\n")
    assert same.status == plain.status == "passed"
    assert [c.label for c in same.claims] == [c.label for c in plain.claims] == ["hessian x"]


# ---- layouts: the transposed orientation and row-major vec ----------------------------------


def test_a_claim_in_the_transposed_orientation_names_it_by_shape() -> None:
    r = result(BILINEAR + 'hessian: {"x, y": A.T}\n')
    (c,) = r.claims
    assert c.status == "failed"
    assert c.label == "hessian x, y"
    assert c.message == (
        "hessian x, y: the claim has shape [2, 3], but it must have shape [3, 2]"
    )
    assert c.hint == (
        "transposed orientation: the claim is d^2 f / (d vec y d (vec x)^T), a row per entry "
        "of y; a hessian claim keyed \"x, y\" is d^2 f / (d vec x d (vec y)^T), a row per "
        "entry of x: transpose the claim (.T) or key it \"y, x\""
    )


def test_a_square_claim_in_the_transposed_orientation_gets_the_hint() -> None:
    r = result(SQUARE + 'hessian: {"x, y": A.T}\n')
    (c,) = r.claims
    assert c.status == "failed"
    assert c.hint is not None and c.hint.startswith("transposed orientation: the claim is ")
    assert c.message.endswith(
        "(a hessian of x, y is d^2 f / (d vec x d (vec y)^T), [3, 3]: a row per entry of x, a "
        "column per entry of y, vec stacking the columns)"
    )


def test_a_row_major_claim_gets_the_layout_hint() -> None:
    r = result(TRACE + 'hessian: {"X, Y": "kron(A, B.T)"}\n')
    (c,) = r.claims
    assert c.status == "failed"
    assert c.hint is not None and c.hint.startswith("row-major vec layout")


# ---- the schema --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        pytest.param(
            '"x, z": A',
            "t.yaml:5:11: identity 'a', key hessian.x, z: hessian claim for 'z', which is not "
            "declared in vars",
            id="unknown-second",
        ),
        pytest.param(
            '"xx, y": A',
            "t.yaml:5:11: identity 'a', key hessian.xx, y: hessian claim for 'xx', which is not "
            "declared in vars (did you mean 'x'?)",
            id="unknown-first",
        ),
        pytest.param(
            '"x, y": A, "x,y": A',
            "t.yaml:5:22: identity 'a', key hessian.x,y: hessian claims 'x, y' twice (keys 'x, y' "
            "and 'x,y'); keep one",
            id="same-pair-spaced-twice",
        ),
        pytest.param(
            'x: A, "x, x": A',
            "t.yaml:5:17: identity 'a', key hessian.x, x: hessian claims 'x' twice (keys 'x' and "
            "'x, x'); keep one",
            id="x-and-x-x",
        ),
        pytest.param(
            '"x, y, A": A',
            "t.yaml:5:11: identity 'a', key hessian.x, y, A: hessian claim key 'x, y, A' names 3 "
            "variables; a key names one variable, or two for mixed second derivatives, e.g. "
            "\"x, y\"",
            id="three-names",
        ),
        pytest.param(
            '"x,": A',
            "t.yaml:5:11: identity 'a', key hessian.x,: hessian claim key 'x,' has an empty name "
            "beside its comma; a key names one variable, or two for mixed second derivatives, "
            "e.g. \"x, y\"",
            id="empty-name",
        ),
        pytest.param(
            '"x, M": A',
            "t.yaml:5:11: identity 'a', key hessian.x, M: M cannot move (domain mask: its tangent "
            "direction is zero), so f has no second derivatives with respect to it; claim them "
            "for variables with a continuous domain",
            id="mask",
        ),
        pytest.param(
            '"x, z": A',
            "t.yaml:5:11: identity 'a', key hessian.x, z: a hessian claim about a complex "
            "variable (z, domain complex) cannot be checked; claim the differential instead "
            "(differential: {z: ...}, the change of f along a complex dz, where conj(dz) and "
            "dz.H may appear), or for a real f its gradient (grad: {z: ...})",
            id="complex",
        ),
        pytest.param(
            "x, y: A",
            "t.yaml:5:12: identity 'a', key hessian.x: hessian claim for 'x' has no expression; "
            "inside {...} a comma starts a new entry: quote a key that names two variables, "
            "e.g. {\"x, y\": ...}",
            id="unquoted-in-flow",
        ),
    ],
)
def test_schema_errors_name_file_line_key_and_what_to_do(claim: str, expected: str) -> None:
    extra = ", z: {shape: [2, 1], domain: complex}" if "complex" in expected else ""
    text = (
        "id: a\ndims: {n: 3, m: 2}\n"
        f"vars: {{x: [n, 1], y: [m, 1], A: [n, m], M: {{shape: [n], domain: mask}}{extra}}}\n"
        f"f: x.T @ A @ y\nhessian: {{{claim}}}\n"
    )
    assert problem(text) == expected


def test_a_kind_about_one_variable_refuses_two() -> None:
    text = "id: a\nvars: {x: [2], y: [2]}\nf: sum(x * y)\ngrad: {\"x, y\": y}\n"
    assert problem(text) == (
        "t.yaml:4:8: identity 'a', key grad.x, y: a grad claim is about one variable, and "
        "'x, y' names two; only hessian claims take two (mixed second derivatives)"
    )


def test_a_block_mapping_key_needs_no_quotes() -> None:
    r = result(BILINEAR + "hessian:\n  x, y: A\n")
    assert r.status == "passed", r.message


# ---- budget and display ------------------------------------------------------------------


def test_the_truth_is_counted_as_numel_x_by_numel_y() -> None:
    r = result(
        "vars: {x: [300], y: [400]}\nf: sum(x) * sum(y)\nhessian: {\"x, y\": 0}\ntrials: 500\n"
    )
    assert r.status == "error"
    # 300 * 400 entries of the truth per trial, 2 * 700 of the variables and their directions,
    # 3 of f and the claim: over the element budget in 500 trials
    assert "take 121403 elements per trial, 60701500 over 500 trials" in r.message, r.message


def test_finite_differences_over_the_limit_are_refused_before_they_run() -> None:
    r = result(
        "vars: {x: [30], y: [30]}\nf: sum(x) * sum(y)\nhessian: {\"x, y\": \"ones(30, 30)\"}\n",
        witnesses=("fd",), limits=Limits(max_fd_evals=1000),
    )
    assert r.status == "error"
    assert "finite differences need 7202 evaluations of f per trial" in r.message


def test_the_label_and_the_formula_name_both_variables() -> None:
    assert claim_text("hessian", "x, y", "A") == "∂²f/∂x∂yᵀ = A"
    mathml = claim_mathml("hessian", "x, y", "A")
    assert "<mi>x</mi>" in mathml and "<mi>y</mi>" in mathml and "x, y" not in mathml


def test_the_api_and_try_take_the_two_variable_key() -> None:
    from typer.testing import CliRunner

    import matgrad
    from matgrad.cli import app

    r = matgrad.check_identity(
        f="x.T @ A @ y", vars={"x": [3, 1], "y": [2, 1], "A": [3, 2]}, hessian={"x, y": "A"}
    )
    assert (r.status, [c.label for c in r.claims]) == ("passed", ["hessian x, y"])
    out = CliRunner().invoke(app, [
        "try", "--f", "x.T @ A @ y", "--var", "x:3,1", "--var", "y:2,1", "--var", "A:3,2",
        "--hessian", "x, y=A.T",
    ])
    assert out.exit_code == 1
    assert "hint: transposed orientation: the claim is d^2 f / (d vec y d (vec x)^T)" in out.stdout


def test_json_reports_and_the_catalogue_give_the_key_as_var() -> None:
    import json

    from matgrad.report.catalogue import render_json

    (item,) = load_text("id: t\n" + BILINEAR + 'hessian: {"x, y": A}\n', "t.yaml")
    assert isinstance(item, Identity)
    assert json.loads(render_json([item]))[0]["claims"] == [
        {"kind": "hessian", "var": "x, y", "expr": "A"}
    ]
    r = result(BILINEAR + 'hessian: {"x, y": A}\n')
    assert r.claims[0].to_dict()["var"] == "x, y"


def test_show_sets_autograd_claim_and_finite_differences_side_by_side() -> None:
    from typer.testing import CliRunner

    from matgrad.cli import app

    r = CliRunner().invoke(app, [
        "show", "mixed-trace-transposed", "docs/examples/mixed-hessian.yaml", "--fd",
    ])
    assert r.exit_code == 0, r.stdout
    assert "hessian X, Y  FAIL" in r.stdout
    assert "hint: transposed orientation" in r.stdout
    assert "finite differences" in r.stdout


RELU = (
    "dims: {m: 3, k: 2, n: 2}\nvars: {X: [m, k], Y: [k, n]}\nlet:\n  M: X @ Y > 0\n"
    "  K: kron(kron(col(eye(n), 0).T, eye(k)), col(eye(n), 0)) + kron(kron(col(eye(n), 1).T, "
    "eye(k)), col(eye(n), 1))\nf: sum(relu(X @ Y))\n"
)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("claim", "status"),
    [
        # d^2 sum(relu(XY)) = tr(M^T dX dY) = (d vec X)^T (I kron M) K (d vec Y), K vec Y = vec Y^T
        pytest.param("kron(eye(k), M) @ K", "passed", id="right"),
        pytest.param("kron(eye(k), M)", "failed", id="commutation-lost"),
    ],
)
def test_a_kinked_f_moved_along_both_variables(claim: str, status: str, seed: int) -> None:
    # the Taylor witness leaves out the steps that move a kink site of f onto another piece,
    # judged at points that move x and y together (finite differences do not: a step across
    # a kink of relu is their limit, as for any claim)
    r = result(RELU + f'hessian: {{"X, Y": "{claim}"}}\n', seed, witnesses=("taylor",))
    assert r.status == status, r.message
    want = "agrees" if status == "passed" else "disagrees"
    assert {w.name: w.verdict for w in r.claims[0].witnesses} == {
        "autograd": want, "taylor": want
    }
