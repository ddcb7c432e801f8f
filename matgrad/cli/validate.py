"""``matgrad validate``: files, expressions and shapes, without tensor maths."""

from __future__ import annotations

from typing import Annotated

import typer

from matgrad.cli import common
from matgrad.cli.common import FilterOpt, FunctionsOpt, LimitOpt, PathsArg, app
from matgrad.errors import ExitCode


@app.command()
@common.guard
def validate(
    paths: PathsArg = None,
    filter: FilterOpt = None,
    limit: LimitOpt = None,
    functions: FunctionsOpt = None,
    quiet: Annotated[
        int,
        typer.Option(
            "-q", "--quiet", count=True, show_default=False,
            help="Only the invalid identities (-qq: nothing; the exit code tells).",
        ),
    ] = 0,
    verbose: Annotated[
        int,
        typer.Option(
            "-v", "--verbose", count=True, show_default=False,
            help="Also list each valid identity.",
        ),
    ] = 0,
) -> None:
    """Check files, expressions and shapes without any tensor maths (no torch needed; with
    --functions, the user functions' shapes may need it).

    Example: matgrad validate identities/
    """
    from matgrad.api import using_functions
    from matgrad.report.escape import markup
    from matgrad.spec.schema import validate as validate_items

    user_functions = common.load_functions(functions)
    with using_functions(user_functions):
        items, limits = common.select_items(paths, filter, limit)
        problems = [(item, err) for item, err in validate_items(items, limits) if err is not None]
    out = common.out_console()
    level = verbose - quiet
    if level >= 1:
        invalid = {id(item) for item, _ in problems}
        for item in items:
            if id(item) not in invalid:
                place = item.path if item.line is None else f"{item.path}:{item.line}"
                out.print(f"[green]valid[/] {markup(item.id or '')} ({markup(place)})")
    if level >= -1:
        for _, err in problems:
            out.print(f"[bold magenta]invalid[/] {markup(err, newlines=True)}")
    files = len({item.path for item in items})
    n = len(items)
    if problems:
        if level >= 0:
            out.print(f"{len(problems)} of {n} identities in {files} files are invalid")
        raise typer.Exit(int(ExitCode.INVALID))
    if level >= 0:
        out.print(f"[green]{n} identities in {files} files are valid[/]")
