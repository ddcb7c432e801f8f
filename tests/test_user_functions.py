"""User functions (docs/python-api.md, "Checking your own backward"): a torch callable, or a
custom autograd.Function with a hand-written backward, called by name in identities for the
checks that are given it, and its backward judged by finite differences and the Taylor test."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from customops import FUNCTIONS, LogAbsDet
from typer.testing import CliRunner

import matgrad
from matgrad.cli import app
from matgrad.errors import SpecError
from matgrad.lang import overlay
from matgrad.lang.functions import REGISTRY

INVERTIBLE = {"X": {"shape": ["n", "n"], "domain": "invertible"}}
SPD = {"X": {"shape": ["n", "n"], "domain": "spd"}}
REAL = {"X": ["n", "n"]}
VEC = {"x": ["n"]}


def check(f: str, vars: dict[str, Any], **kw: Any) -> matgrad.IdentityResult:
    return matgrad.check_identity(f=f, vars=vars, dims={"n": 3}, functions=FUNCTIONS, **kw)


def only(result: matgrad.IdentityResult, kind: str) -> Any:
    (claim,) = [c for c in result.claims if c.kind == kind]
    return claim


# ---- right and wrong backwards ------------------------------------------------------------


@pytest.mark.parametrize(
    ("f", "vars", "extra"),
    [
        pytest.param("logabsdet(X)", INVERTIBLE, {}, id="log-abs-det-by-lu"),
        pytest.param("chol_logdet(X)", SPD, {"convention": "frobenius"}, id="logdet-by-cholesky"),
        pytest.param("symsq(X)", REAL, {}, id="symmetric-square"),
    ],
)
def test_a_right_backward_passes(f: str, vars: dict[str, Any], extra: dict[str, Any]) -> None:
    r = check(f, vars, implementation=["X"], **extra)
    assert r.status == "passed", r.message
    claim = only(r, "implementation")
    assert [w.name for w in claim.witnesses] == ["fd", "taylor"]
    assert all(w.verdict == "agrees" for w in claim.witnesses)


@pytest.mark.parametrize(
    ("f", "vars", "hint"),
    [
        pytest.param("logabsdet_t(X)", INVERTIBLE, "transposed:", id="transposed"),
        pytest.param("logabsdet_neg(X)", INVERTIBLE, "wrong sign:", id="wrong-sign"),
        pytest.param("symsq_nosym(X)", REAL, "not symmetrised:", id="missing-symmetrisation"),
        pytest.param("symsq_offdiag(X)", REAL, "off the diagonal only:", id="off-the-diagonal"),
    ],
)
def test_a_wrong_backward_fails_with_its_hint(f: str, vars: dict[str, Any], hint: str) -> None:
    r = check(f, vars, implementation=["X"])
    assert r.status == "failed"
    claim = only(r, "implementation")
    assert claim.message.startswith("implementation X mismatched finite differences")
    assert claim.hint is not None and claim.hint.startswith(hint), claim.hint
    assert {w.name: w.verdict for w in claim.witnesses} == {"fd": "disagrees", "taylor": "disagrees"}


def test_an_own_backward_adds_the_witnesses_and_the_implementation_check() -> None:
    # the file claims a gradient only: the backward is checked too, and the right formula is
    # held against finite differences and the Taylor test as well as autograd
    r = check("logabsdet(X)", INVERTIBLE, grad={"X": "inv(X).T"})
    assert r.status == "passed", r.message
    assert [(c.kind, c.var) for c in r.claims] == [("grad", "X"), ("implementation", "X")]
    assert [w.name for w in r.claims[0].witnesses] == ["autograd", "fd", "taylor"]


def test_a_right_formula_over_a_wrong_backward_blames_autograd() -> None:
    r = check("logabsdet_t(X)", INVERTIBLE, grad={"X": "inv(X).T"})
    grad, impl = r.claims
    assert grad.status == "error" and grad.agreement == "autograd vs fd"
    assert "autograd itself is wrong here" in grad.message
    assert impl.status == "failed" and impl.hint.startswith("transposed:")


def test_a_wrong_double_backward_is_caught_by_a_hessian_claim() -> None:
    right = check("sum(cube(x))", VEC, hessian={"x": "diag(6 * x)"})
    assert right.status == "passed", right.message
    wrong = check("sum(cube_dd(x))", VEC, hessian={"x": "diag(6 * x)"})
    hessian = only(wrong, "hessian")
    assert hessian.status == "error" and hessian.agreement == "autograd vs fd"
    assert only(wrong, "implementation").status == "passed"  # the first backward is right


def test_a_wrong_jvp_is_caught_by_a_differential_claim() -> None:
    right = check("cube(x)", VEC, differential={"x": "3 * x * x * dx"})
    assert right.status == "passed", right.message
    wrong = check("cube_jvp(x)", VEC, differential={"x": "3 * x * x * dx"})
    differential = only(wrong, "differential")
    assert differential.status == "error" and differential.agreement == "autograd vs fd"


def test_plain_torch_code_is_trusted_like_a_built_in() -> None:
    fs = matgrad.FunctionSet()
    fs.register("mytrace", lambda x: x.diagonal(dim1=-2, dim2=-1).sum(-1), shape=lambda x: ())
    r = matgrad.check_identity(
        f="mytrace(X)", grad={"X": "eye(3)"}, vars={"X": [3, 3]}, functions=fs
    )
    assert r.status == "passed"
    assert [w.name for w in r.claims[0].witnesses] == []  # autograd alone, as for built-ins


# ---- batching ------------------------------------------------------------------------------


def _trace_of_square(x: Any) -> Any:
    return torch.trace(x @ x)  # one matrix at a time: not batch-aware


def test_a_function_that_is_not_batch_aware_is_refused_clearly() -> None:
    fs = matgrad.FunctionSet()
    fs.register("trsq", _trace_of_square)
    with pytest.raises(SpecError) as e:
        matgrad.check_identity(
            f="trsq(X)", grad={"X": "2 * X.T"}, vars={"X": [3, 3]}, functions=fs
        )
    assert "could not be inferred by a call on meta tensors" in str(e.value)
    assert "register it with batched=False" in str(e.value) or "batched=False" in str(e.value)


def test_a_function_that_is_not_batch_aware_is_vmapped_when_asked() -> None:
    fs = matgrad.FunctionSet()
    fs.register("trsq", _trace_of_square, batched=False)
    r = matgrad.check_identity(
        f="trsq(X)", grad={"X": "2 * X.T"}, vars={"X": [3, 3]}, functions=fs
    )
    assert r.status == "passed", r.message


def test_a_wrong_result_shape_names_the_function() -> None:
    fs = matgrad.FunctionSet()
    fs.register("flat", lambda x: x.sum(), shape=lambda x: ())  # sums over the trials too
    r = matgrad.check_identity(
        f="flat(X)", grad={"X": "ones(3, 3)"}, vars={"X": [3, 3]}, functions=fs
    )
    assert r.status == "error"
    assert "user function 'flat'" in r.message and "returned shape []" in r.message


# ---- errors in user code -------------------------------------------------------------------


def test_an_exception_in_a_backward_is_an_error_naming_the_function(tmp_path: Path) -> None:
    path = tmp_path / "ids.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            identities:
              - id: broken
                vars: {X: {shape: [3, 3]}}
                f: "raises(X)"
                implementation: [X]
              - id: fine
                vars: {X: {shape: [3, 3]}}
                f: "symsq(X)"
                implementation: [X]
            """
        )
    )
    report = matgrad.check(path, functions=FUNCTIONS)
    broken, fine = report.results
    assert broken.status == "error" and not broken.internal
    assert "user function 'raises' (customops.Raises.apply) raised ValueError in backward" in (
        broken.message
    )
    assert fine.status == "passed"


def test_an_exception_in_a_forward_is_an_error_naming_the_function() -> None:
    fs = matgrad.FunctionSet()

    def boom(x: Any) -> Any:
        raise RuntimeError("no")

    fs.register("boom", boom, shape=lambda x: ())
    r = matgrad.check_identity(f="boom(X)", grad={"X": "X"}, vars={"X": [2, 2]}, functions=fs)
    assert r.status == "error" and not r.internal
    assert "user function 'boom'" in r.message and "raised RuntimeError: no" in r.message


# ---- scope: only the checks that ask for them ----------------------------------------------


def test_functions_do_not_leak_into_other_checks() -> None:
    assert check("logabsdet(X)", INVERTIBLE, implementation=["X"]).status == "passed"
    with pytest.raises(SpecError, match=r"unknown function 'logabsdet' \(did you mean 'logdet'"):
        matgrad.check_identity(
            f="logabsdet(X)", implementation=["X"], vars=INVERTIBLE, dims={"n": 3}
        )
    assert "logabsdet" not in REGISTRY
    assert overlay.current() == overlay.EMPTY


def test_a_parse_made_with_functions_is_not_reused_without_them() -> None:
    from matgrad.lang.expr import parse

    with matgrad.api.using_functions(FUNCTIONS):
        assert parse("symsq(X)").names == {"X"}
    with pytest.raises(matgrad.ExprError, match="unknown function 'symsq'"):
        parse("symsq(X)")


def test_register_refuses_a_built_in_or_bad_name() -> None:
    fs = matgrad.FunctionSet()
    with pytest.raises(ValueError, match="'tr' is a built-in function"):
        fs.register("tr", LogAbsDet.apply)
    with pytest.raises(ValueError, match="not a valid name"):
        fs.register("a-b", LogAbsDet.apply)
    with pytest.raises(ValueError, match="reserved"):
        fs.register("lambda", LogAbsDet.apply)


def test_a_variable_may_not_shadow_a_user_function() -> None:
    with pytest.raises(SpecError, match="shadows the function symsq"):
        matgrad.check_identity(
            f="tr(symsq)", grad={"symsq": "eye(2)"}, vars={"symsq": [2, 2]}, functions=FUNCTIONS
        )


def test_a_dict_of_callables_is_a_function_set() -> None:
    r = matgrad.check_identity(
        f="mine(X)", implementation=["X"], vars=INVERTIBLE, dims={"n": 3},
        functions={"mine": LogAbsDet.apply},
    )
    assert r.status == "passed", r.message


# ---- the implementation claim in a file -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("implementation: [Y]", "implementation must list declared variables, "
                     "e.g. [X]; got 'Y', which is not declared in vars", id="undeclared"),
        pytest.param("implementation: [X, X]", "implementation lists 'X' twice", id="twice"),
        pytest.param("implementation: []", "implementation must list declared variables, "
                     "e.g. [X]", id="empty"),
    ],
)
def test_the_implementation_list_is_checked(text: str, message: str) -> None:
    from matgrad.spec.schema import Invalid, load_text

    (item,) = load_text(f'id: x\nvars: {{X: {{shape: [2, 2]}}}}\nf: "tr(X)"\n{text}\n', "x.yaml")
    assert isinstance(item, Invalid)
    assert item.error.problem == message


def test_an_implementation_claim_needs_a_scalar_f() -> None:
    with pytest.raises(SpecError, match="an implementation claim needs a scalar f"):
        matgrad.check_identity(f="X", implementation=["X"], vars={"X": [2, 2]})


# ---- command line and pytest plugin -----------------------------------------------------------


IDENTITY = """\
id: custom-logabsdet
vars: {X: {shape: [3, 3], domain: invertible}}
f: "logabsdet_t(X)"
implementation: [X]
"""


def test_the_cli_takes_functions_only_from_the_flag(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "ids.yaml"
    path.write_text(IDENTITY)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    runner = CliRunner()
    without = runner.invoke(app, ["check", str(path), "--format", "json"])
    assert without.exit_code == 3
    assert "unknown function 'logabsdet_t'" in without.stdout
    with_flag = runner.invoke(
        app, ["check", str(path), "--format", "json", "--functions", "customops:FUNCTIONS"]
    )
    assert with_flag.exit_code == 1, with_flag.output
    assert '"hint": "transposed:' in with_flag.stdout
    valid = runner.invoke(app, ["validate", str(path), "--functions", "customops:FUNCTIONS"])
    assert valid.exit_code == 0, valid.output


def test_reproduce_and_show_commands_import_the_same_functions(
    tmp_path: Path, monkeypatch: Any
) -> None:
    path = tmp_path / "ids.yaml"
    path.write_text(IDENTITY)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    r = CliRunner().invoke(app, ["check", str(path), "--functions", "customops:FUNCTIONS"])
    assert r.exit_code == 1, r.output
    lines = [ln.strip() for ln in r.stdout.splitlines()]
    reproduce = next(ln for ln in lines if ln.startswith("reproduce:"))
    show = next(ln for ln in lines if ln.startswith("show:"))
    assert reproduce.endswith("--functions customops:FUNCTIONS")
    assert show.endswith("--functions customops:FUNCTIONS")
    # and the printed show command runs as printed; it sets the implementation's autograd
    # value beside finite differences (not beside itself)
    args = show.removeprefix("show: matgrad ").split()
    shown = CliRunner().invoke(app, args, env={"COLUMNS": "240"})
    assert shown.exit_code == 0, shown.output
    assert "autograd - finite differences" in shown.stdout
    worst = next(ln for ln in shown.stdout.splitlines() if "worst entry" in ln)
    assert "finite differences" in worst and "autograd" in worst
    assert float(worst.rsplit("difference ", 1)[1]) != 0.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("customops", "expected MODULE:NAME", id="no-name"),
        pytest.param("no_such_module_xyz:F", "cannot import 'no_such_module_xyz'", id="no-module"),
        pytest.param("customops:NOPE", "module 'customops' has no 'NOPE'", id="no-attribute"),
        pytest.param("customops:LogAbsDet", "functions must be a matgrad.FunctionSet",
                     id="not-a-set"),
    ],
)
def test_a_bad_functions_flag_is_a_usage_error(spec: str, message: str, monkeypatch: Any) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    r = CliRunner().invoke(app, ["validate", "identities/seed.yaml", "--functions", spec])
    assert r.exit_code == 2
    assert message in " ".join(r.stderr.split())


def test_the_pytest_plugin_takes_functions_from_a_conftest_hook(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest(
        "import customops\n\n"
        "def pytest_matgrad_functions(config):\n"
        "    return customops.FUNCTIONS\n"
    )
    (pytester.path / "ids").mkdir()
    (pytester.path / "ids" / "custom.yaml").write_text(IDENTITY)
    (pytester.path / "ids" / "right.yaml").write_text(
        "id: right\nvars: {X: {shape: [3, 3], domain: invertible}}\n"
        'f: "logabsdet(X)"\ngrad: {X: "inv(X).T"}\n'
    )
    result = pytester.runpytest_subprocess("-p", "matgrad.pytest_plugin", "--matgrad", "ids")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*hint: transposed:*"])


def test_the_customops_module_is_importable_by_the_cli_tests() -> None:
    assert "customops" in sys.modules
