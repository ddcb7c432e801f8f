"""The documentation is part of the product: its examples run and its tables match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.engine.core import Settings, check_identity
from matgrad.report.functions import domains_markdown, functions_markdown
from matgrad.spec.schema import Identity, load_text

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "format.md"]


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def identity_blocks() -> list[pytest.ParameterSet]:
    out = []
    for doc in DOCS:
        for i, block in enumerate(yaml_blocks(doc)):
            if re.search(r"^(id:|identities:)", block, re.M):
                out.append(pytest.param(block, id=f"{doc.name}-{i}"))
    return out


@pytest.mark.parametrize("block", identity_blocks())
def test_documented_identities_check_as_expected(block: str) -> None:
    items = load_text(block, "doc.yaml")
    assert items
    for item in items:
        assert isinstance(item, Identity), item
        result = check_identity(item, Settings(), "cpu")
        assert result.ok, result.message


def test_readme_function_table_matches_registry() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert functions_markdown() in readme, "regenerate with: matgrad functions --format markdown"


def test_readme_domain_table_matches_registry() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert domains_markdown() in readme


def test_every_command_is_documented_and_has_help() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    import typer.main

    group = typer.main.get_command(app)
    for name in group.commands:  # type: ignore[attr-defined]
        assert f"matgrad {name}" in readme, f"README does not mention `matgrad {name}`"
        r = CliRunner().invoke(app, [name, "--help"])
        assert r.exit_code == 0 and "Example:" in r.stdout, name


def test_exit_codes_are_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code in (0, 1, 2, 3, 4, 5, 130):
        assert re.search(rf"^\| `{code}` \|", readme, re.M), code


def test_readme_python_examples_run(monkeypatch) -> None:
    import doctest

    monkeypatch.chdir(ROOT)
    result = doctest.testfile(
        str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0
    assert result.failed == 0
