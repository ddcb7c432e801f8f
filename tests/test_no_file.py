"""Checks without an identity file: YAML on stdin (``-``) and ``matgrad try`` with the
file's keys as options. Both go through the loader and the checks that files go through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matgrad.cli import app

ROOT = Path(__file__).resolve().parent.parent
SEED = (ROOT / "identities" / "seed.yaml").read_text(encoding="utf-8")
RIGHT = "-(inv(X) @ A @ inv(X)).T"
TRY = ["try", "--f", "tr(inv(X) @ A)", "--var", "X:n,n:invertible", "--var", "A:n,n"]


def test_check_reads_one_file_from_stdin() -> None:
    r = CliRunner().invoke(app, ["check", "-", "--format", "json"], input=SEED)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert {x["file"] for x in data["results"]} == {"<stdin>"}
    assert len(data["results"]) == SEED.count("  - id: ")


def test_stdin_errors_are_located_like_a_files() -> None:
    r = CliRunner().invoke(app, ["check", "-"], input="id: x\nvars: {X: {shape: [2, 2]}}\n")
    assert r.exit_code == 3
    assert "<stdin>:1:1: identity 'x': missing required key 'f'" in " ".join(r.stdout.split())


def test_stdin_reproduce_and_show_read_stdin_again() -> None:
    wrong = SEED.split("\n\n")[0] + "\n"  # the first identity, made wrong below
    wrong = wrong.replace("      x: a\n", "      x: 2 * a\n")
    r = CliRunner().invoke(app, ["check", "-"], input=wrong)
    assert r.exit_code == 1, r.output
    assert "reproduce: matgrad check - -k seed-linear-form --seed 0" in r.stdout
    show = next(line for line in r.stdout.splitlines() if "show: " in line)
    argv = show.split("show: matgrad ")[1].split()
    assert argv[:3] == ["show", "seed-linear-form", "-"]
    shown = CliRunner().invoke(app, argv, input=wrong)
    assert shown.exit_code == 0, shown.output
    assert "seed-linear-form" in shown.stdout


@pytest.mark.parametrize("command", [["check"], ["validate"], ["show", "some-id"]])
def test_stdin_cannot_be_mixed_with_files(command: list[str]) -> None:
    r = CliRunner().invoke(app, [*command, "-", str(ROOT / "identities")], input="")
    assert r.exit_code == 2
    assert "- (stdin) cannot be mixed with files" in r.stderr


def test_validate_reads_stdin() -> None:
    r = CliRunner().invoke(app, ["validate", "-"], input=SEED)
    assert r.exit_code == 0
    assert "identities in 1 files are valid" in r.stdout


def test_stdin_is_bounded_like_a_file() -> None:
    r = CliRunner().invoke(
        app, ["validate", "-", "--limit", "max_file_bytes=100"], input="#" * 200
    )
    assert r.exit_code == 3
    assert "<stdin>" in r.stderr and "max_file_bytes" in r.stderr


def test_try_passes_a_right_claim() -> None:
    r = CliRunner().invoke(app, [*TRY, "--grad", f"X={RIGHT}", "--format", "json"])
    assert r.exit_code == 0, r.output
    (result,) = json.loads(r.stdout)["results"]
    assert result["status"] == "passed" and result["f"] == "tr(inv(X) @ A)"
    assert [c["expr"] for c in result["claims"]] == [RIGHT]


def test_try_fails_a_wrong_claim_and_says_how_to_reproduce() -> None:
    r = CliRunner().invoke(app, [*TRY, "--grad", "X=-(inv(X) @ A @ inv(X))"])
    assert r.exit_code == 1
    assert "hint: transposed" in r.stdout
    assert "reproduce: matgrad try (the same options) --seed 0" in r.stdout
    assert "show: " not in r.stdout  # show reads files


def test_try_dims_default_and_given() -> None:
    r = CliRunner().invoke(
        app,
        ["try", "--f", "sum(x)", "--var", "x:n,1", "--dim", "n=5", "--grad", "x=ones(n, 1)",
         "--format", "json"],
    )
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--grad", "X=A"], None, None),
        ([], 2, "give at least one claim: --grad, --differential, --hessian, --jacobian, --implementation"),
        (["--grad", "X"], 2, "'X': expected VAR=EXPR"),
        (["--grad", "X=A", "--var", "B:n:spd:x"], 2, "expected NAME:SHAPE[:DOMAIN]"),
        (["--grad", "X=A", "--dim", "n=big"], 2, "the size must be a whole number"),
        (["--grad", "X=tr(A"], 3, "error: --grad X: syntax error"),
        (["--grad", "Y=A"], 3, "error: --grad Y:"),
        (["--grad", "X=A", "--var", "B:n,n:nosuch"], 3, "error: --var B:"),
    ],
)
def test_try_input_errors_name_the_option(
    argv: list[str], code: int | None, message: str | None
) -> None:
    r = CliRunner().invoke(app, [*TRY, *argv])
    if code is None:
        assert r.exit_code == 1  # A is not the gradient: checked, and failed
        return
    assert r.exit_code == code, r.output
    assert message in " ".join(r.stderr.split())
    assert "Traceback" not in r.output
