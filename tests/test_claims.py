"""Claim kinds: one registry of objects (matgrad/claims/), the only place that knows each kind.

A kind left incomplete, a kind without its `matgrad new` option or API keyword, or code outside
matgrad/claims/ that branches on a kind's name fails here.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

import matgrad.api
from matgrad.claims import DEFAULT, KINDS, ClaimKind, missing_parts, register
from matgrad.claims.grad import Grad
from matgrad.cli import app
from matgrad.spec import budget, schema
from matgrad.spec.schema import load_text, validate

PACKAGE = Path(__file__).resolve().parent.parent / "matgrad"
KIND_NAMES = sorted(KINDS)


def test_the_registry_holds_the_kinds_in_order() -> None:
    # the order is the order identity files are read in, and `new`'s default comes first
    assert list(KINDS) == ["grad", "differential", "hessian", "jacobian", "implementation"]
    assert DEFAULT is KINDS["grad"]
    assert schema.CLAIM_KINDS == tuple(KINDS)


@pytest.mark.parametrize("name", KIND_NAMES)
def test_every_registered_kind_has_every_part(name: str) -> None:
    kind = KINDS[name]
    assert kind.name == name
    assert missing_parts(kind) == []
    assert kind.taylor_order in ("first", "second")
    assert kind.taylor_pass < kind.taylor_expected
    assert kind.fd_points(3) > 0


class _NoWitness(ClaimKind):
    """A kind with a shape rule and a truth, but no witness maths and no template."""

    name = "incomplete"
    noun = "Jacobian"
    layout = "f's shape times the variable's"
    needs_scalar_f = False

    def expected_shape(self, var_shape, f_shape):
        return (*f_shape, *var_shape)

    def truth(self, torch, run, var, first_pass):
        return None

    def passes(self, var_shape, f_shape):
        return 1


def test_register_refuses_a_kind_that_lacks_a_part() -> None:
    with pytest.raises(TypeError) as e:
        register(_NoWitness())
    text = str(e.value)
    assert text.startswith("claim kind _NoWitness lacks ")
    for part in ("fd_tol", "taylor_expected", "template_body", "new_help", "fd_estimate",
                 "taylor_remainder"):
        assert part in text
    assert "incomplete" not in KINDS


def test_register_refuses_a_name_twice() -> None:
    with pytest.raises(ValueError, match="'grad' is registered twice"):
        register(Grad())


def _kind_names_outside_claims(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.parent.name == "claims":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in KINDS:
                found.append(f"{path.relative_to(package.parent)}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_outside_claims_names_a_kind() -> None:
    # `if kind == "hessian"`, a dict keyed by kind names, a tuple of them: each is a second
    # owner of the concept. Ask matgrad.claims.KINDS instead.
    found = _kind_names_outside_claims()
    assert not found, "kind names outside matgrad/claims/:\n" + "\n".join(found)


def test_the_name_scan_finds_a_branch_but_not_the_claims_package(tmp_path: Path) -> None:
    pkg = tmp_path / "matgrad"
    (pkg / "engine").mkdir(parents=True)
    (pkg / "claims").mkdir()
    (pkg / "engine" / "m.py").write_text('def f(claim):\n    return claim.kind == "hessian"\n')
    (pkg / "claims" / "k.py").write_text('NAME = "hessian"\n')
    assert _kind_names_outside_claims(pkg) == ["matgrad/engine/m.py:2: 'hessian'"]


@pytest.mark.parametrize("name", KIND_NAMES)
def test_every_kind_is_an_identity_key(name: str) -> None:
    assert name in schema.IDENTITY_KEYS


@pytest.mark.parametrize("name", KIND_NAMES)
def test_every_kind_has_a_new_option_that_writes_its_claim(name: str) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["new", "--help"])
    assert f"--{name}" in r.stdout
    r = runner.invoke(app, ["new", "some-id", f"--{name}", "V"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    (ident,) = load_text(r.stdout, "<new>")
    assert [(c.kind, c.var) for c in ident.claims] == [(name, "V")]
    assert validate([ident]) == [(ident, None)]


def test_new_refuses_two_kinds_naming_every_option() -> None:
    r = CliRunner().invoke(app, ["new", "x", "--grad", "X", "--hessian", "x"])
    assert r.exit_code == 2
    flags = "--grad, --differential, --hessian, --jacobian, --implementation"
    assert f"use only one of {flags}" in " ".join(r.stderr.split())


@pytest.mark.parametrize("name", KIND_NAMES)
def test_every_kind_is_a_keyword_of_check_identity(name: str) -> None:
    params = inspect.signature(matgrad.api.check_identity).parameters
    assert params[name].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    ("name", "var_shape", "f_shape", "shape", "elements", "fd_evals"),
    [
        pytest.param("grad", (3, 2), (), (3, 2), 6, 24, id="grad"),
        pytest.param("differential", (3, 2), (4,), (4,), 4, 4, id="differential"),
        pytest.param("hessian", (3,), (1, 1), (3, 3), 9, 38, id="hessian"),
        pytest.param("hessian", (), (), (), 1, 6, id="hessian-of-a-scalar"),
        pytest.param("hessian", (2, 3), (), (6, 6), 36, 146, id="hessian-of-a-matrix"),
        pytest.param("jacobian", (3, 2), (4, 5), (20, 6), 120, 24, id="jacobian"),
        pytest.param("jacobian", (3,), (), (1, 3), 3, 12, id="jacobian-of-a-scalar-f"),
    ],
)
def test_shapes_and_budgets_per_kind(name, var_shape, f_shape, shape, elements, fd_evals) -> None:
    from matgrad.engine.witness import fd_evals as count

    kind = KINDS[name]
    assert kind.expected_shape(var_shape, f_shape) == shape
    assert budget.truth_elements(name, var_shape, f_shape) == elements
    assert count(name, var_shape) == fd_evals


def test_passes_over_f_count_shared_gradient_passes_once() -> None:
    # 1 (f finite) + 5 (every gradient from one backward pass) + 9 (a differential)
    # + 5 + 4 * 3 (a hessian of a 3-vector) + 2 + 2 * 6 (a jacobian of an f with 6 entries)
    claims = [("grad", (2, 2), ()), ("grad", (3, 3), ()), ("differential", (4,), ()),
              ("hessian", (3,), ()), ("jacobian", (5,), (2, 3))]
    assert budget.passes_over_f(claims) == 1 + 5 + 9 + 5 + 12 + 2 + 12
    assert budget.passes_over_f([]) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            'f: "X"\ngrad: {X: "1"}',
            "a grad claim needs a scalar f, but f has shape [2, 2]; use a differential claim "
            "for a non-scalar f",
            id="grad-needs-a-scalar-f",
        ),
        pytest.param(
            'f: "X"\nhessian: {X: "1"}',
            "a hessian claim needs a scalar f, but f has shape [2, 2]; use a differential claim "
            "for a non-scalar f",
            id="hessian-needs-a-scalar-f",
        ),
    ],
)
def test_shape_rules_keep_their_messages(text: str, message: str) -> None:
    (ident,) = load_text("id: x\nvars: {X: {shape: [2, 2]}}\n" + text, "x.yaml")
    ((_, err),) = validate([ident])
    assert err is not None and err.problem == message


@pytest.mark.parametrize("name", KIND_NAMES)
def test_every_kind_is_documented_in_the_format(name: str) -> None:
    text = (PACKAGE.parent / "docs" / "format.md").read_text()
    assert f"\n### `{name}` — " in text, f"docs/format.md has no section for the {name} claim"
    keys_row = next(line for line in text.splitlines() if line.startswith("| `grad`"))
    assert f"`{name}`" in keys_row
