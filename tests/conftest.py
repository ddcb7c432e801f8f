from __future__ import annotations

import datetime
import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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
