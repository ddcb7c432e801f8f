"""``matgrad functions``: the function reference of the expression language."""

from __future__ import annotations

import enum
import sys
from typing import Annotated

import typer

from matgrad.cli import common
from matgrad.cli.common import app


class FunctionsFormat(str, enum.Enum):
    table = "table"
    markdown = "markdown"
    json = "json"


@app.command()
@common.guard
def functions(
    format: Annotated[
        FunctionsFormat, typer.Option("--format", help="table, markdown or json.")
    ] = FunctionsFormat.table,
) -> None:
    """List the functions of the expression language.

    Example: matgrad functions --format markdown
    """
    from matgrad.report.functions import (
        functions_json,
        functions_markdown,
        functions_rows,
    )

    if format is FunctionsFormat.markdown:
        sys.stdout.write(functions_markdown())
        return
    if format is FunctionsFormat.json:
        sys.stdout.write(functions_json())
        return
    from rich.table import Table

    from matgrad.report.escape import text

    t = Table(header_style="bold")
    for col in ("function", "meaning", "result"):
        t.add_column(col)
    for sig, summary, result in functions_rows():
        t.add_row(text(sig), text(summary), text(result))
    common.out_console().print(t)
