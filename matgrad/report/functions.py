"""Reference tables generated from the registries (for ``matgrad functions`` and the README)."""

from __future__ import annotations

import json

from matgrad.lang.domains import DOMAINS
from matgrad.lang.functions import REGISTRY
from matgrad.report.escape import markdown_trusted as _md_cell


def functions_rows() -> list[tuple[str, str, str]]:
    return [(f.signature, f.summary, f.result) for f in REGISTRY.values()]


def functions_markdown() -> str:
    lines = ["| function | meaning | result |", "|---|---|---|"]
    for sig, summary, result in functions_rows():
        lines.append(f"| `{_md_cell(sig)}` | {_md_cell(summary)} | `{_md_cell(result)}` |")
    return "\n".join(lines) + "\n"


def functions_json() -> str:
    rows = [
        {"name": f.name, "signature": f.signature, "summary": f.summary, "result": f.result}
        for f in REGISTRY.values()
    ]
    return json.dumps(rows, indent=2) + "\n"


def domains_markdown() -> str:
    lines = ["| domain | how it is drawn | shapes |", "|---|---|---|"]
    for d in DOMAINS.values():
        lines.append(f"| `{d.name}` | {_md_cell(d.summary)} | {d.shapes} |")
    return "\n".join(lines) + "\n"
