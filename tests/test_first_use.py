"""What a new user meets first: the table at 80 columns, error rows, GitHub annotations of
invalid identities, -q/-qq in GitHub mode, validate -q/-v."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from reportdata import sample_report
from rich.console import Console
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.report import table

ROOT = Path(__file__).resolve().parent.parent

MIXED = """\
identities:
  - id: fine
    dims: {n: 3}
    vars:
      X: {shape: [n, n]}
    f: tr(X)
    grad:
      X: eye(n)

  - id: shapes-disagree
    dims: {n: 3, m: 2}
    vars:
      A: {shape: [n, n]}
      X: {shape: [m, m]}
    f: tr(A @ X)
    grad:
      X: A

  - id: bad-key
    dims: {n: 3}
    vars:
      X: {shape: [n, n]}
    f: tr(X)
    grad:
      X: eye(n)
    colour: blue
"""


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED, encoding="utf-8")
    return path


def _table_lines(argv: list[str], width: int) -> list[str]:
    r = CliRunner().invoke(app, argv, env={"COLUMNS": str(width), "GITHUB_ACTIONS": ""})
    return [line for line in r.stdout.splitlines() if line[:1] in "┏┃┡│└"]


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_check_table_fits_the_terminal(width: int) -> None:
    lines = _table_lines(
        ["check", str(ROOT / "identities" / "mistakes"), str(ROOT / "identities" / "seed.yaml"),
         "--trials", "5"],
        width,
    )
    assert lines and max(len(line) for line in lines) <= width
    assert "verdict" in lines[1] and "max abs err" in lines[1]


def test_the_table_drops_columns_in_order_and_folds_ids() -> None:
    report = sample_report()
    for width, dropped in [(80, {"time", "trials", "max rel err"}), (200, set())]:
        out = io.StringIO()
        console = Console(file=out, width=width, color_system=None, soft_wrap=True)
        console.print(table.table(report, width))
        lines = [line for line in out.getvalue().splitlines() if line[:1] in "┏┃┡│└"]
        assert max(len(line) for line in lines) <= width
        header = {cell.strip() for cell in lines[1].split("┃") if cell.strip()}
        assert header >= {"id", "claim", "verdict", "max abs err"}
        assert dropped.isdisjoint(header)
        if not dropped:
            assert {"time", "trials", "max rel err", "hint"} <= header


def test_without_a_width_every_column_stays() -> None:
    t = table.table(sample_report())
    assert [c.header for c in t.columns] == [
        "id", "claim", "verdict", "max abs err", "max rel err", "trials", "time", "hint"
    ]


def test_error_rows_show_no_trials(mixed: Path) -> None:
    # An identity that errors before any verdict (invalid, or a shape error) rests on no draw:
    # every one shows "—" in the table and null in JSON, not the trials it would have drawn.
    r = CliRunner().invoke(app, ["check", str(mixed), "--format", "json"])
    results = {x["id"]: x for x in json.loads(r.stdout)["results"]}
    assert [results[k]["trials"] for k in ("fine", "shapes-disagree", "bad-key")] == [
        100, None, None
    ]
    rows = _table_lines(["check", str(mixed)], 200)
    errors = [row for row in rows if "ERROR" in row]
    assert len(errors) == 2
    assert all(row.split("│")[6].strip() == "—" for row in errors), errors
    assert "(100 draws)" in CliRunner().invoke(app, ["check", str(mixed), "-qq"]).stdout


def test_github_annotations_of_errors_point_at_the_line_the_message_names(mixed: Path) -> None:
    r = CliRunner().invoke(app, ["check", str(mixed), "--format", "github"])
    errors = [line for line in r.stdout.splitlines() if line.startswith("::error")]
    assert [e.split(",title=")[0] for e in errors] == [
        f"::error file={mixed},line=15",  # the f line of the shape error, not the id's line 10
        f"::error file={mixed},line=26",  # the unknown key, not the id's line 19
    ]
    assert "mixed.yaml:15:" in errors[0] and "mixed.yaml:26:5:" in errors[1]


@pytest.mark.parametrize(
    ("flags", "group", "notices"),
    [([], True, True), (["-q"], False, True), (["-qq"], False, False)],
)
def test_quiet_in_github_mode(
    mixed: Path, tmp_path: Path, flags: list[str], group: bool, notices: bool
) -> None:
    loose = tmp_path / "loose.yaml"
    loose.write_text(
        "id: loose\ndims: {n: 2}\nvars:\n  X: {shape: [n, n]}\nf: tr(X)\ngrad:\n  X: eye(n)\n"
        "tol: {rtol: 1.0e-3}\n",
        encoding="utf-8",
    )
    r = CliRunner().invoke(
        app, ["check", str(mixed), str(loose), *flags], env={"GITHUB_ACTIONS": "true"}
    )
    lines = r.stdout.splitlines()
    assert any(line.startswith("::group::") for line in lines) is group
    assert any(line.startswith("::notice") for line in lines) is notices
    assert sum(line.startswith("::error") for line in lines) == 2  # never dropped
    assert lines[-1].startswith("2 passed, 0 failed")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], ["invalid", "invalid", "2 of 3 identities in 1 files are invalid"]),
        (["-v"], ["valid", "invalid", "invalid", "2 of 3 identities in 1 files are invalid"]),
        (["-q"], ["invalid", "invalid"]),
        (["-qq"], []),
    ],
)
def test_validate_quiet_and_verbose(mixed: Path, flags: list[str], expected: list[str]) -> None:
    r = CliRunner().invoke(app, ["validate", str(mixed), *flags])
    assert r.exit_code == 3
    lines = r.stdout.splitlines()
    assert [line.split(" ")[0] if line.startswith(("valid", "invalid")) else line
            for line in lines] == expected


def test_validate_quiet_is_silent_when_all_is_valid() -> None:
    seed = str(ROOT / "identities" / "seed.yaml")
    assert CliRunner().invoke(app, ["validate", seed, "-q"]).stdout == ""
    r = CliRunner().invoke(app, ["validate", seed, "-v"])
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0].startswith("valid seed-linear-form (")


def test_the_new_template_names_docs_that_exist() -> None:
    text = CliRunner().invoke(app, ["new", "some-id"]).stdout
    named = re.findall(r"docs/[\w./-]+\.md", text)
    assert named, text
    assert all((ROOT / path).is_file() for path in named), named
