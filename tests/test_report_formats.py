"""The report formats are one registry (matgrad.report.FORMATS): each has a renderer, reaches
the command line, renders every status, and is documented. A format added without one of its
parts fails here (its hostile-text checks are enforced in tests/test_escape_boundary.py)."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from reportdata import sample_report
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.report import ALIASES, EXTENSIONS, FORMATS, parse_target, renderer

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "identities" / "seed.yaml")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_a_renderer_module(fmt: str) -> None:
    module = importlib.import_module(f"matgrad.report.{fmt}")
    render = module.render
    assert next(iter(inspect.signature(render).parameters)) == "report"
    assert renderer(fmt) is render
    text = render(sample_report())
    assert isinstance(text, str) and text


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reaches_the_command_line(fmt: str, tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["check", SEED, "--trials", "2", "--format", fmt])
    assert out.exit_code == 0, out.output
    target = tmp_path / "report.out"
    r = CliRunner().invoke(
        app, ["check", SEED, "--trials", "2", "-qq", "--report", f"{fmt}:{target}"]
    )
    assert r.exit_code == 0, r.output
    assert target.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_documented(fmt: str) -> None:
    doc = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| [^|]+ \| `{fmt}`", doc, re.M), f"docs/reports.md lists no `{fmt}`"


def test_extensions_and_aliases_name_known_formats() -> None:
    assert set(EXTENSIONS.values()) <= set(FORMATS)
    assert set(ALIASES.values()) <= set(FORMATS)
    for ext, fmt in EXTENSIONS.items():
        assert parse_target(f"out{ext}")[0] == fmt


def test_a_format_without_a_module_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # what the checks above do with a format registered but not written
    import matgrad.report as report

    monkeypatch.setattr(report, "FORMATS", (*FORMATS, "pdf"))
    with pytest.raises(ModuleNotFoundError):
        report.renderer("pdf")
