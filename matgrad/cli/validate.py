"""``matgrad validate``: files, expressions and shapes, without tensor maths."""

from __future__ import annotations

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
    for _, err in problems:
        out.print(f"[bold magenta]invalid[/] {markup(err, newlines=True)}")
    files = len({item.path for item in items})
    n = len(items)
    if problems:
        out.print(f"{len(problems)} of {n} identities in {files} files are invalid")
        raise typer.Exit(int(ExitCode.INVALID))
    out.print(f"[green]{n} identities in {files} files are valid[/]")
