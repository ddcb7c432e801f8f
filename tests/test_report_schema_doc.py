"""docs/report-schema.md names every field the JSON report writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from matgrad.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_schema_doc_covers_every_field() -> None:
    doc = (ROOT / "docs" / "report-schema.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(?:results\[\]\.|claims\[\]\.)?([a-z_]+)(?:\[\])?`", doc))
    r = CliRunner().invoke(app, ["check", str(ROOT / "identities" / "seed.yaml"), "--format", "json"])
    data = json.loads(r.stdout)
    fields = set(data) | set(data["results"][0]) | set(data["results"][0]["claims"][0])
    assert fields - documented == set()
