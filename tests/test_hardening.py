"""Holes found by trying to break matgrad with files inside every documented limit."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import matgrad
from matgrad.cli import app
from matgrad.errors import SpecError
from matgrad.report import ReportWriteError, write_atomic
from matgrad.spec.schema import load_text

RIGHT = """
identities:
  - id: right
    vars: {X: [3, 3]}
    f: tr(X)
    grad: {X: eye(3)}
"""


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


# ---- ids ---------------------------------------------------------------------------------------


def test_an_id_with_a_trailing_newline_is_refused() -> None:
    # a YAML block scalar ends with a newline; `$` in a pattern matches before it
    text = "identities:\n  - id: |\n      twin\n    vars: {x: [2]}\n    f: sum(x)\n    grad: {x: ones(2)}\n"
    (item,) = load_text(text, "t.yaml")
    assert isinstance(item, matgrad.Invalid)
    assert "id" in str(item.error)


def test_a_newline_cannot_smuggle_a_duplicate_id() -> None:
    text = (
        "identities:\n"
        "  - id: twin\n    vars: {x: [2]}\n    f: sum(x)\n    grad: {x: ones(2)}\n"
        "  - id: |\n      twin\n    vars: {x: [2]}\n    f: sum(x)\n    grad: {x: ones(2)}\n"
    )
    items = load_text(text, "t.yaml")
    assert sum(isinstance(it, matgrad.Identity) for it in items) == 1


# ---- report files ------------------------------------------------------------------------------


def test_a_device_node_is_never_replaced_by_a_report(tmp_path: Path) -> None:
    link = tmp_path / "stdout"
    link.symlink_to("/dev/null")  # a character device, as /dev/stdout is when it is a terminal
    with pytest.raises(ReportWriteError, match="not a regular file"):
        write_atomic(link, "{}")
    assert link.is_symlink() and stat.S_ISCHR(os.stat(link).st_mode)


def test_a_fifo_is_refused_as_a_report_before_the_run(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    path = tmp_path / "one.yaml"
    path.write_text(RIGHT)
    r = invoke("check", str(path), "--report", f"json:{fifo}")
    assert r.exit_code == 2
    assert "not a regular file" in r.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_full_disk_is_an_io_error_and_the_results_still_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matgrad.report as report_pkg

    def full(*a: Any, **k: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report_pkg.os, "replace", full)
    path = tmp_path / "one.yaml"
    path.write_text(RIGHT)
    r = invoke("check", str(path), "--report", str(tmp_path / "out.json"))
    assert r.exit_code == 2, r.output
    assert "No space left on device" in r.output
    assert "internal error" not in r.output and "bug" not in r.output
    assert "right" in r.output  # the table still came out


def test_a_step_summary_fifo_does_not_hang_the_run(tmp_path: Path) -> None:
    fifo = tmp_path / "summary"
    os.mkfifo(fifo)
    path = tmp_path / "one.yaml"
    path.write_text(RIGHT)
    out: list[Any] = []
    worker = threading.Thread(
        target=lambda: out.append(
            invoke("check", str(path), env={"GITHUB_STEP_SUMMARY": str(fifo)})
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # unblock the writer so the test process can end, then fail
        with open(fifo, "rb") as fh:
            fh.read()
        pytest.fail("the run hung on a FIFO as GITHUB_STEP_SUMMARY")
    (r,) = out
    assert r.exit_code == 0
    assert "GITHUB_STEP_SUMMARY" in r.output  # a warning, and the results are kept


# ---- the API -----------------------------------------------------------------------------------


def test_deeply_nested_inline_vars_are_a_spec_error() -> None:
    deep: Any = [2]
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(SpecError, match="nested too deeply"):
        matgrad.check_identity(f="sum(x)", grad={"x": "ones(2)"}, vars={"x": deep})


def test_self_referencing_inline_vars_are_a_spec_error() -> None:
    loop: dict[str, Any] = {"shape": [2]}
    loop["domain"] = loop
    with pytest.raises(SpecError, match="contains itself"):
        matgrad.check_identity(f="sum(x)", grad={"x": "ones(2)"}, vars={"x": loop})


# ---- every path is bounded: witnesses, diagnosis, matrix functions -----------------------------


def _ident(text: str) -> matgrad.Identity:
    (item,) = load_text(text, "t.yaml")
    assert isinstance(item, matgrad.Identity), item
    return item


# Within every documented limit: the autograd check fits max_work, and finite differences need
# 4,001 evaluations of f per trial (under max_fd_evals), each with a 300 x 300 exponential.
COSTLY_FD = """
identities:
  - id: costly-fd
    vars: {x: [1000], A: [300, 300]}
    f: sum(x) * tr(expm(0.01 * A))
    grad: {x: tr(expm(0.01 * A)) * ones(1000)}
    witness: [autograd, fd]
    trials: 10
"""


def test_witness_work_is_refused_before_anything_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    from matgrad.engine import core
    from matgrad.spec.schema import compile_identity

    ident = _ident(COSTLY_FD)
    compile_identity(ident, 10)  # the check alone is within the limits

    def no_draw(*a: Any, **k: Any) -> Any:
        raise AssertionError("the identity was drawn")

    monkeypatch.setattr(core, "_Run", no_draw)
    result = core.check_identity(ident, core.Settings(), "cpu")
    assert result.status == "error"
    assert "max_work" in result.message and "finite differences" in result.message


def test_the_taylor_witness_is_counted_too() -> None:
    from matgrad.engine import witness
    from matgrad.spec.schema import compile_identity

    compiled = compile_identity(_ident(COSTLY_FD), 10)
    fd = witness.witness_work(compiled, ("fd",), 10)
    taylor = witness.witness_work(compiled, ("taylor",), 10)
    assert 0 < taylor < fd  # a handful of evaluations against thousands
    assert witness.witness_work(compiled, ("autograd",), 10) == 0


EXPM = """
identities:
  - id: huge-expm
    dims: {n: 40}
    vars: {X: [n, n]}
    f: tr(expm(1e300 * X))
    grad: {X: expm(1e300 * X).T}
"""


def test_an_exponential_of_an_enormous_norm_is_refused_and_named() -> None:
    from matgrad.engine import core

    result = core.check_identity(_ident(EXPM), core.Settings(), "cpu")
    assert result.status == "error"
    assert "expm(1e300 * X)" in result.message and "squarings" in result.message
    assert "internal" not in result.message


@pytest.mark.parametrize("fn", ["expm", "sinm", "cosm"])
def test_ordinary_matrix_functions_are_not_refused(fn: str) -> None:
    from matgrad.engine import core

    text = EXPM.replace("1e300 * X", "X").replace("expm", fn).replace("huge-expm", "ordinary")
    result = core.check_identity(_ident(text), core.Settings(trials=2), "cpu")
    assert "squarings" not in result.message


def _swapped(count: int) -> str:
    names = [f"a{i}" for i in range(count)]
    return (
        "identities:\n  - id: swapped\n"
        f"    vars: {{{', '.join(f'{n}: [2]' for n in names)}}}\n"
        f"    f: dot(a0, a1) + {' + '.join(f'sum({n})' for n in names[2:])}\n"
        "    grad: {a0: a0}\n"
    )


def test_the_swapped_variable_search_still_runs_within_its_budget() -> None:
    from matgrad.engine import core

    result = core.check_identity(_ident(_swapped(6)), core.Settings(), "cpu")
    (claim,) = result.claims
    assert claim.status == "failed"
    assert claim.hint is not None and claim.hint.startswith("swapped variables"), claim.hint


def test_the_swapped_variable_search_over_many_variables_is_skipped_with_a_note() -> None:
    from matgrad.engine import core, diagnose

    many = diagnose.MAX_CANDIDATES + 20
    result = core.check_identity(_ident(_swapped(many)), core.Settings(), "cpu")
    (claim,) = result.claims
    assert claim.status == "failed"
    assert claim.hint is not None
    assert claim.hint.startswith("diagnosis incomplete: swapped variables not tried")
    assert f"{many - 1} candidates" in claim.hint
