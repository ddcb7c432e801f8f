"""``matgrad list``: the identities, with title, source and claims."""

from __future__ import annotations

import enum
import sys
from typing import Annotated

import typer

from matgrad.cli import common
from matgrad.cli.common import FilterOpt, LimitOpt, PathsArg, app
from matgrad.errors import ExitCode


class ListFormat(str, enum.Enum):
    table = "table"
    json = "json"


@app.command("list")
@common.guard
def list_(
    paths: PathsArg = None,
    filter: FilterOpt = None,
    format: Annotated[
        ListFormat, typer.Option("--format", help="table or json.")
    ] = ListFormat.table,
    limit: LimitOpt = None,
) -> None:
    """List identities: id, title, source and claims (no torch needed).

    Example: matgrad list identities/ -k trace --format json
    """
    from matgrad.report import catalogue
    from matgrad.report.escape import markup
    from matgrad.spec.schema import Identity

    items, _ = common.select_items(paths, filter, limit)
    good = [item for item in items if isinstance(item, Identity)]
    if format is ListFormat.json:
        sys.stdout.write(catalogue.render_json(good))
    else:
        out = common.out_console()
        out.print(catalogue.render_table(good))
        out.print(catalogue.summary(good))
    bad = [item for item in items if not isinstance(item, Identity)]
    for item in bad:
        common.err_console().print(f"invalid {markup(item.error, newlines=True)}", soft_wrap=True)
    if bad:
        raise typer.Exit(int(ExitCode.INVALID))
