"""``matgrad list``: the catalogue of identities (id, title, source, claims). No torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from matgrad.report.escape import json_text, terminal
from matgrad.spec.schema import Identity


def entry(ident: Identity) -> dict[str, Any]:
    """One identity as a JSON-ready record."""
    return {
        "id": ident.id,
        "title": ident.title,
        "source": ident.source,
        "claims": [{"kind": c.kind, "var": c.subject, "expr": c.text} for c in ident.claims],
        "expect": ident.expect,
        "file": ident.path,
        "line": ident.line,
    }


def render_json(identities: Sequence[Identity]) -> str:
    return json_text([entry(i) for i in identities], indent=2, ensure_ascii=False) + "\n"


def render_table(identities: Sequence[Identity]) -> Table:
    t = Table(header_style="bold")
    t.add_column("id", overflow="fold")
    t.add_column("title", overflow="fold")
    t.add_column("source", overflow="fold")
    t.add_column("claims")
    for ident in identities:
        claims = ", ".join(terminal(c.label) for c in ident.claims)
        if ident.expect == "fail":
            claims += " (expect: fail)"
        t.add_row(
            Text(terminal(ident.id)),
            Text(terminal(ident.title or "")),
            Text(terminal(ident.source or "")),
            Text(claims),
        )
    return t


def summary(identities: Sequence[Identity]) -> str:
    files = len({i.path for i in identities})
    claims = sum(len(i.claims) for i in identities)
    return f"{len(identities)} identities, {claims} claims, in {files} files"
