"""A run never loses a result: Ctrl-C, failed writes, bugs, NaN and reruns."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.engine.core import Settings, check_identity
from matgrad.errors import ExprError
from matgrad.lang.expr import parse
from matgrad.report import ReportWriteError, write_atomic
from matgrad.spec.schema import load_text, validate

THREE = """
identities:
  - id: first
    vars: {X: [3, 3]}
    f: tr(X)
    grad: {X: eye(3)}
  - id: second
    vars: {X: [3, 3]}
    f: tr(X @ X)
    grad: {X: "2 * X.T"}
  - id: third
    vars: {x: [3]}
    f: sum(x)
    grad: {x: ones(3)}
"""


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


# ---- Ctrl-C -----------------------------------------------------------------------------------


def test_ctrl_c_keeps_what_finished(write, tmp_path: Path, monkeypatch) -> None:
    import matgrad.engine.core as engine

    real = engine.check_identity

    def interrupt_at_second(item: Any, settings: Any, device: Any = None) -> Any:
        if item.id == "second":
            raise KeyboardInterrupt
        return real(item, settings, device)

    monkeypatch.setattr(engine, "check_identity", interrupt_at_second)
    report = tmp_path / "out.json"
    r = invoke("check", write(THREE), "--report", str(report))
    assert r.exit_code == 130
    # The table of what finished, and a summary that says it is incomplete.
    assert "first" in r.stdout and "PASS" in r.stdout
    assert "second" not in r.stdout and "third" not in r.stdout
    assert "1 passed, 0 failed, 0 xfailed, 0 xpassed, 0 errors in" in r.stdout
    assert "(interrupted: incomplete)" in r.stdout
    assert r.stderr == "interrupted: the results above are incomplete\n"
    # The report is written, marked incomplete, with the finished result.
    data = json.loads(report.read_text())
    assert data["complete"] is False
    assert [x["id"] for x in data["results"]] == ["first"]
    assert data["summary"]["passed"] == 1


def test_ctrl_c_with_json_on_stdout(write, monkeypatch) -> None:
    import matgrad.engine.core as engine

    def interrupt(*a: Any, **k: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "check_identity", interrupt)
    r = invoke("check", write(THREE), "--format", "json")
    assert r.exit_code == 130
    data = json.loads(r.stdout)
    assert data["complete"] is False and data["results"] == []


def test_complete_run_is_marked_complete(write, tmp_path: Path) -> None:
    report = tmp_path / "out.json"
    assert invoke("check", write(THREE), "--report", str(report)).exit_code == 0
    assert json.loads(report.read_text())["complete"] is True


# ---- reports are written atomically, and only where asked ------------------------------------


def test_report_replaces_the_old_one_in_one_step(tmp_path: Path, monkeypatch) -> None:
    import matgrad.report as report_pkg

    target = tmp_path / "out.json"
    target.write_text("old")
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: Any) -> None:
        renames.append((str(src), str(dst)))
        assert Path(src).read_text() == "new"  # complete before it takes the name
        real_replace(src, dst)

    monkeypatch.setattr(report_pkg.os, "replace", spy)
    write_atomic(target, "new")
    assert target.read_text() == "new"
    ((src, dst),) = renames
    assert Path(src).parent == tmp_path and dst == str(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@pytest.mark.parametrize(
    ("failure", "raised"),
    [(OSError(28, "No space left on device"), ReportWriteError), (KeyboardInterrupt(), KeyboardInterrupt)],
)
def test_failed_report_write_leaves_the_old_file_and_no_debris(
    tmp_path: Path, monkeypatch, failure: BaseException, raised: type[BaseException]
) -> None:
    import matgrad.report as report_pkg

    target = tmp_path / "out.json"
    target.write_text("old")

    def fail(*a: Any, **k: Any) -> None:
        raise failure

    monkeypatch.setattr(report_pkg.os, "replace", fail)
    with pytest.raises(raised):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        pytest.param("missing/out.json", "cannot write", id="missing-folder"),
        pytest.param("folder.json", "cannot write", id="a-folder"),
        pytest.param("out.docx", "unknown report format", id="format"),
    ],
)
def test_bad_report_path_is_refused_before_any_work(
    write, tmp_path: Path, monkeypatch, target: str, problem: str
) -> None:
    import matgrad.engine.core as engine

    def no_work(*a: Any, **k: Any) -> Any:
        raise AssertionError("the run started")

    monkeypatch.setattr(engine, "run", no_work)
    (tmp_path / "folder.json").mkdir()
    path = write(THREE)
    r = invoke("check", path, "--report", str(tmp_path / target))
    assert r.exit_code == 2
    assert problem in r.output


# ---- the same seed gives the same report -------------------------------------------------------

MIXED = THREE + """
  - id: wrong
    vars: {X: {shape: [3, 3], domain: invertible}}
    f: tr(inv(X))
    grad: {X: "-inv(X) @ inv(X)"}
  - id: known-wrong
    vars: {X: [3, 3]}
    f: tr(X @ X)
    grad: {X: "2 * X"}
    expect: fail
  - id: broken
    vars: {x: [3]}
    f: sum(y)
    grad: {x: x}
"""


def _without_timings(report: Path) -> dict[str, Any]:
    data = json.loads(report.read_text())
    assert data.pop("seconds") >= 0
    for r in data["results"]:
        assert r.pop("seconds") >= 0
    return data


def test_same_seed_same_report_except_timings(write, tmp_path: Path) -> None:
    path = write(MIXED)
    runs = []
    for i, seed in enumerate(["7", "7", "8"]):
        out = tmp_path / f"run{i}.json"
        r = invoke("check", path, "--seed", seed, "--report", str(out))
        assert r.exit_code == 3
        runs.append(_without_timings(out))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # the seed matters, so the comparison above can fail


# ---- NaN and Inf never pass -------------------------------------------------------------------

def _undefined(what: str, first: int, near: int) -> str:
    return (
        f"t.yaml:1: identity 't': {what} gives NaN/Inf on {first} of 100 draws ({first}%), "
        f"{near} of the 33 at scale 0.1 (near the origin): undefined on much of the domain; "
        f"choose domains where it is defined (e.g. positive for log/sqrt, spd or invertible "
        f"for logdet/inv)"
    )


def _result(text: str) -> Any:
    (item,) = load_text(text, "t.yaml")
    return check_identity(item, Settings(), "cpu")


# NaN/Inf on every draw, at every scale: undefined on most draws near the origin, the identity
# is refused on every seed (engine/core.py UNDEFINED_NEAR).
@pytest.mark.parametrize(
    ("f", "claim", "message"),
    [
        # sqrt(x - x) is 0 everywhere, but its derivative is inf * 0 = NaN.
        pytest.param("sum(sqrt(x - x))", "grad: {x: zeros(3)}",
                     _undefined("autograd (grad x)", 100, 33), id="grad-truth"),
        pytest.param("sqrt(x - x)", "differential: {x: zeros(3)}",
                     _undefined("autograd (differential x)", 100, 33), id="differential-truth"),
        pytest.param("sum(sqrt(x - x))", "hessian: {x: 'zeros(3, 3)'}",
                     _undefined("autograd (hessian x)", 100, 33), id="hessian-truth"),
        pytest.param("sum(x)", "grad: {x: 'ones(3) / (x - x)'}",
                     _undefined("the claim grad x", 100, 33), id="grad-claim"),
        pytest.param("x", "differential: {x: 'dx / (x - x)'}",
                     _undefined("the claim differential x", 100, 33), id="differential-claim"),
        pytest.param("sum(x)", "hessian: {x: 'eye(3) / (sum(x) - sum(x))'}",
                     _undefined("the claim hessian x", 100, 33), id="hessian-claim"),
        pytest.param("sum(x)", "grad: {x: 'ones(3) * 1e308 * 10'}",
                     _undefined("the claim grad x", 100, 33), id="claim-overflows"),
        # Overflows on most draws even at scale 0.1: Inf on both sides never agrees.
        pytest.param("sum(exp(x * 1e6))", "grad: {x: '1e6 * exp(x * 1e6)'}",
                     _undefined("f", 85, 29), id="f-overflows-where-both-sides-agree"),
    ],
)
@pytest.mark.parametrize("expect", ["pass", "fail"])
def test_nan_and_inf_never_pass(f: str, claim: str, message: str, expect: str) -> None:
    r = _result(f"id: t\nvars: {{x: [3]}}\nf: {f!r}\n{claim}\nexpect: {expect}\n")
    assert r.status == "error"  # neither a pass, nor the expected failure of expect: fail
    assert not r.ok
    assert r.message == message


# ---- a bug in one identity does not stop the others ---------------------------------------------


def test_exception_in_one_identity_is_an_error_and_the_others_run(
    write, tmp_path: Path, monkeypatch
) -> None:
    import matgrad.engine.core as engine

    real = engine.check_compiled

    def bug_in_second(compiled: Any, *a: Any, **k: Any) -> Any:
        if compiled.identity.id == "second":
            raise IndexError("tuple index out of range")
        return real(compiled, *a, **k)

    monkeypatch.setattr(engine, "check_compiled", bug_in_second)
    report = tmp_path / "out.json"
    r = invoke("check", write(THREE), "--report", str(report))
    assert r.exit_code == 4
    assert "2 passed, 0 failed, 0 xfailed, 0 xpassed, 1 errors" in r.stdout
    data = {x["id"]: x for x in json.loads(report.read_text())["results"]}
    assert data["first"]["status"] == data["third"]["status"] == "passed"
    assert data["second"]["status"] == "error" and data["second"]["internal"] is True
    assert data["second"]["message"] == (
        "internal error while checking 'second': IndexError: tuple index out of range. This "
        "is a bug in matgrad: please report it with the identity file"
    )
    assert "Traceback" not in r.output


def test_out_of_memory_is_an_error_not_a_bug(write, monkeypatch) -> None:
    import matgrad.engine.core as engine

    def oom(*a: Any, **k: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(engine, "check_compiled", oom)
    path = write(THREE)
    r = invoke("check", path, "--format", "json")
    assert r.exit_code == 3
    first = json.loads(r.stdout)["results"][0]
    assert first["internal"] is False
    assert first["message"] == (
        f"{path}:2: identity 'first': out of memory (MemoryError); use fewer trials or smaller "
        f"dims, or lower --limit max_elements so such an identity is refused before it starts"
    )


# ---- clean answers to odd but harmless input ------------------------------------------------


def test_python_syntax_warnings_do_not_leak(capfd) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ExprError) as e:
            parse("1if X else 2")
    assert str(e.value) == "a conditional expression is not allowed in an expression"
    assert caught == []
    assert capfd.readouterr().err == ""


def test_kron_with_a_scalar_is_a_shape_error() -> None:
    text = "id: t\nvars: {x: [3]}\nf: sum(kron(x, 2))\ngrad: {x: x}\n"
    (_, err), = validate(load_text(text, "t.yaml"))
    assert str(err) == (
        "t.yaml:3: identity 't', key f: in 'kron(x, 2)': kron needs matrices or vectors, got "
        "[3] and [] (x: [3], 2: [])"
    )
