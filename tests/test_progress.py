from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import matgrad.cli as cli
from matgrad.cli import common
from matgrad.cli.progress import in_ci, run_progress, wanted

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "identities" / "seed.yaml")


def console(terminal: bool, **kw) -> Console:
    return Console(file=io.StringIO(), force_terminal=terminal, width=100, **kw)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("yes", True), ("", False), ("0", False), ("false", False)],
)
def test_in_ci(value: str, expected: bool) -> None:
    assert in_ci({"CI": value}) is expected
    assert in_ci({}) is False


@pytest.mark.parametrize(
    ("terminal", "total", "env", "expected"),
    [
        pytest.param(True, 7, {}, True, id="terminal"),
        pytest.param(False, 7, {}, False, id="piped"),
        pytest.param(True, 7, {"CI": "true"}, False, id="ci"),
        pytest.param(True, 1, {}, False, id="one-identity"),
    ],
)
def test_wanted(terminal, total, env, expected) -> None:
    assert wanted(console(terminal), total, env) is expected


def test_no_bar_on_a_dumb_terminal(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert wanted(console(True), 7, {}) is False


def test_bar_draws_the_current_identity_and_count() -> None:
    out = console(True)
    with run_progress(out, 2, env={}) as bar:
        assert bar is not None
        from matgrad.results import IdentityResult
        from matgrad.spec.schema import load_all

        first = load_all([SEED])[0]
        bar.on_start(first)
        bar.on_result(IdentityResult(first.id, first.path, 1, "pass", "passed"))
    text = out.file.getvalue()
    assert "checking seed-linear-form" in text
    assert "1/2" in text and "eta" in text


def test_no_bar_gives_none() -> None:
    with run_progress(console(False), 7, env={}) as bar:
        assert bar is None


def _check_with(monkeypatch, out: Console, *args: str):
    monkeypatch.setattr(common, "out_console", lambda: out)
    return CliRunner().invoke(cli.app, ["check", SEED, "--trials", "2", *args])


def test_check_shows_a_bar_on_a_terminal(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    out = console(True, color_system=None)
    r = _check_with(monkeypatch, out)
    assert r.exit_code == 0, r.output
    text = out.file.getvalue()
    assert "checking seed-trace-inverse-untransposed" in text  # the last one, when it finished
    assert "7/7" in text and "eta" in text
    assert "3 passed, 0 failed, 4 xfailed" in text  # the table follows the (erased) bar


def test_check_shows_no_bar_in_ci(monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    out = console(True, color_system=None)
    r = _check_with(monkeypatch, out)
    assert r.exit_code == 0
    text = out.file.getvalue()
    assert "checking" not in text and "7/7" not in text
    assert "3 passed, 0 failed, 4 xfailed" in text


def test_check_shows_no_bar_when_piped(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    r = CliRunner().invoke(cli.app, ["check", SEED, "--trials", "2"])  # stdout is not a TTY
    assert r.exit_code == 0
    assert "checking" not in r.output and "7/7" not in r.output and "\x1b" not in r.output
    assert "3 passed, 0 failed, 4 xfailed" in r.stdout
