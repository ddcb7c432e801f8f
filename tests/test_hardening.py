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
