"""``matgrad show``: one draw of one identity, side by side."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from matgrad.cli import common
from matgrad.cli.common import (
    AtolOpt,
    DeviceOpt,
    DTypeOpt,
    FdOpt,
    FunctionsOpt,
    LimitOpt,
    RtolOpt,
    SeedOpt,
    TaylorOpt,
    TrialsOpt,
    app,
    complete_ids,
)
from matgrad.errors import ExitCode, did_you_mean


@app.command()
@common.guard
def show(
    ident: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="The identity's id (exact).", autocompletion=complete_ids
        ),
    ],
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Files or folders to search (default: the current folder)."),
    ] = None,
    seed: SeedOpt = None,
    trial: Annotated[
        Optional[int],
        typer.Option(
            min=0, help="Which draw to show (0-based). [default: the draw of the worst entry]"
        ),
    ] = None,
    trials: TrialsOpt = None,
    dtype: DTypeOpt = None,
    device: DeviceOpt = None,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    limit: LimitOpt = None,
    fd: FdOpt = False,
    taylor: TaylorOpt = False,
    functions: FunctionsOpt = None,
) -> None:
    """Show one draw of one identity: its variables, and autograd, the claim and their
    difference side by side for every claim. A failed check prints the show command that
    reproduces it. Settings come from the flags, then [tool.matgrad] in pyproject.toml, as
    for check. Exit codes: 0 shown (whatever the verdict); 2 usage error; 3 the identity
    is invalid or cannot be evaluated; 5 no identity with that id.

    Example: matgrad show seed-trace-inverse-untransposed identities/seed.yaml --trial 3
    """
    search = paths or [Path(".")]
    stdin = common.reads_stdin(search)
    if not stdin:
        common.check_paths(search)
    config = common.project_config()
    settings = common.run_settings(
        config, seed, trials, dtype, device, rtol, atol, limit, fd=fd, taylor=taylor
    )
    if functions:  # the reproduce and show commands import them again
        settings = dataclasses.replace(settings, functions=tuple(functions))
    from matgrad.api import using_functions
    from matgrad.report.escape import markup
    from matgrad.spec.schema import Invalid, load_all

    user_functions = common.load_functions(functions)
    with using_functions(user_functions):
        if stdin:
            items = common.read_stdin(settings.limits)
        else:
            items = load_all([str(p) for p in search], settings.limits)
    found = [it for it in items if it.id == ident]
    if not found:
        ids = [it.id for it in items if it.id]
        hint = did_you_mean(ident, ids)
        where = ", ".join(str(p) for p in search)
        common.err_console().print(
            f"error: no identity with id {markup(repr(ident))} in {markup(where)}{markup(hint)}"
        )
        raise typer.Exit(int(ExitCode.NO_IDENTITIES))
    item = found[0]
    if isinstance(item, Invalid):
        common.err_console().print(f"error: {markup(item.error, newlines=True)}")
        raise typer.Exit(int(ExitCode.INVALID))
    common.import_torch()
    from matgrad.engine.show import view
    from matgrad.report import show as show_report

    out = common.out_console()
    with using_functions(user_functions):
        shown = view(item, settings, trial)
    for block in show_report.render(shown, width=out.width):
        out.print(block)
    if shown.status == "error" and not shown.claims:
        raise typer.Exit(int(ExitCode.INVALID))
