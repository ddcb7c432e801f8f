from __future__ import annotations

import datetime
import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

# Hypothesis profiles. "ci" (the default) keeps the property tests quick and reproducible: a
# fixed set of examples. `make fuzz` selects "fuzz" (MATGRAD_HYPOTHESIS_PROFILE=fuzz): many
# more random examples. The deadline is a hang detector, generous enough never to trip on a
# slow machine, not a timing assertion.
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=datetime.timedelta(seconds=20),
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=3000,
    deadline=datetime.timedelta(seconds=60),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("MATGRAD_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def write(tmp_path: Path):
    """Write a dedented YAML file into tmp_path and return its path as text."""

    def _write(text: str, name: str = "ids.yaml") -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return str(path)

    return _write


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite the files under tests/golden/ from the current output.",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """Compare text with tests/golden/NAME (or rewrite it with --update-golden)."""
    update = request.config.getoption("--update-golden")

    def _check(name: str, text: str) -> None:
        path = ROOT / "tests" / "golden" / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="")
            return
        assert path.exists(), f"{path} is missing: run pytest --update-golden"
        assert text == path.read_bytes().decode("utf-8"), (
            f"output differs from {path.relative_to(ROOT)} (pytest --update-golden rewrites it)"
        )

    return _check


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch):
    """Output width and colour do not depend on the terminal the suite runs in (or on a
    parallel worker's environment)."""
    for name in ("COLUMNS", "LINES", "FORCE_COLOR", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
