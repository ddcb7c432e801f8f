from __future__ import annotations

import textwrap
from pathlib import Path

from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.cli.completion import ids, search_paths

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "identities" / "seed.yaml")
TRACE_IDS = ["seed-trace-inverse", "seed-trace-inverse-sign", "seed-trace-inverse-untransposed"]


def complete_bash(words: str, monkeypatch, cwd: Path = ROOT) -> list[str]:
    monkeypatch.chdir(cwd)
    parts = words.split(" ")
    r = CliRunner().invoke(
        app,
        [],
        prog_name="matgrad",
        env={"_MATGRAD_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)},
    )
    assert r.exit_code == 0, r.output
    return r.stdout.split()


def test_ids_with_titles() -> None:
    assert ids([SEED], "seed-trace") == [
        ("seed-trace-inverse", "Gradient of tr(X^-1 A)"),
        ("seed-trace-inverse-sign", "Wrong: the minus sign dropped"),
        ("seed-trace-inverse-untransposed", "Wrong: X^-1 A X^-1 without the transpose (numerator layout)"),
    ]
    assert ids([SEED], "nothing") == []


def test_search_paths(tmp_path) -> None:
    assert search_paths([SEED, "missing.yaml"]) == [SEED]
    assert search_paths(["missing.yaml"], tmp_path) == []
    assert search_paths(None, tmp_path) == []
    (tmp_path / "identities").mkdir()
    assert search_paths(None, tmp_path) == [str(tmp_path / "identities")]
    (tmp_path / "pyproject.toml").write_text('[tool.matgrad]\nseed = "broken"\n')
    assert search_paths(None, tmp_path) == [str(tmp_path / "identities")]  # no error printed


def test_shell_completes_k_from_typed_paths(monkeypatch, tmp_path) -> None:
    assert complete_bash(f"matgrad check {SEED} -k seed-trace", monkeypatch, tmp_path) == TRACE_IDS


def test_shell_completes_k_from_the_configuration(monkeypatch) -> None:
    # The repository's pyproject.toml says paths = ["identities"].
    assert complete_bash("matgrad list -k seed-trace", monkeypatch) == TRACE_IDS


def test_shell_completes_k_from_the_identities_folder(monkeypatch, tmp_path) -> None:
    (tmp_path / "identities").mkdir()
    (tmp_path / "identities" / "a.yaml").write_text(
        textwrap.dedent(
            """
            id: only-one
            vars: {x: [2]}
            f: sum(x)
            grad: {x: ones(2)}
            """
        )
    )
    assert complete_bash("matgrad validate -k ", monkeypatch, tmp_path) == ["only-one"]


def test_install_completion_is_offered() -> None:
    r = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in r.stdout


def test_shell_completes_the_id_of_show(monkeypatch) -> None:
    assert complete_bash("matgrad show seed-trace", monkeypatch) == TRACE_IDS
