"""``matgrad check``: check identities against autograd over random draws."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

from matgrad.cli import common
from matgrad.cli.common import (
    AtolOpt,
    DeviceOpt,
    DTypeOpt,
    FdOpt,
    FilterOpt,
    FunctionsOpt,
    LimitOpt,
    OutFormat,
    PathsArg,
    RtolOpt,
    SeedOpt,
    TaylorOpt,
    TrialsOpt,
    app,
)
from matgrad.errors import ExitCode
from matgrad.settings import CONFIRM_DTYPE, Settings


def dtype_warning(settings: Settings) -> str:
    """What a check in a narrower dtype than float64 means, from the settings in force."""
    rtol, atol = settings.tolerances
    rtol64, atol64 = settings.tolerances_in(CONFIRM_DTYPE)
    return (
        f"warning: {settings.dtype} checks pass claims within rtol={rtol:g} atol={atol:g} "
        f"({CONFIRM_DTYPE}: rtol={rtol64:g} atol={atol64:g}), so a claim wrong by less passes; "
        f"a claim that fails in {settings.dtype} is checked again in {CONFIRM_DTYPE} on the "
        f"same draw, and passes with a note if it holds there"
    )


@app.command()
@common.guard
def check(
    paths: PathsArg = None,
    filter: FilterOpt = None,
    seed: SeedOpt = None,
    trials: TrialsOpt = None,
    dtype: DTypeOpt = None,
    device: DeviceOpt = None,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    report: Annotated[
        Optional[list[str]],
        typer.Option(
            "--report",
            metavar="FILE",
            help="Also write a report (repeatable). The format follows the extension "
            "(.json .xml .md .html .csv .txt) or is named: junit:FILE, markdown:FILE, ...",
        ),
    ] = None,
    format: Annotated[
        Optional[OutFormat],
        typer.Option(
            "--format",
            help="What to print on stdout [default: table; github when GITHUB_ACTIONS=true].",
            show_default=False,
        ),
    ] = None,
    limit: LimitOpt = None,
    shard: Annotated[
        Optional[str],
        typer.Option(
            metavar="K/N", help="Run only shard K of N (1-based; by id hash, for parallel CI jobs)."
        ),
    ] = None,
    fail_fast: Annotated[
        bool,
        typer.Option(
            "-x", "--fail-fast", help="Stop at the first identity that fails (--maxfail 1)."
        ),
    ] = False,
    maxfail: Annotated[
        Optional[int],
        typer.Option(
            min=1, metavar="N", help="Stop after N identities did not meet their expect."
        ),
    ] = None,
    quiet: Annotated[
        int,
        typer.Option(
            "-q",
            "--quiet",
            count=True,
            show_default=False,
            help="Less output (-qq: summary only; in GitHub mode the ::error annotations too).",
        ),
    ] = 0,
    verbose: Annotated[
        int,
        typer.Option(
            "-v",
            "--verbose",
            count=True,
            show_default=False,
            help="Also detail passing identities.",
        ),
    ] = 0,
    collect_only: Annotated[
        bool, typer.Option("--collect-only", help="List what would run; check nothing.")
    ] = False,
    fd: FdOpt = False,
    taylor: TaylorOpt = False,
    functions: FunctionsOpt = None,
) -> None:
    """Check identities against autograd over random draws.

    Flags take precedence over [tool.matgrad] in pyproject.toml. PATHS "-" reads one file's
    YAML from stdin.

    Example: matgrad check identities/ -k trace --report junit:matgrad.xml
    """
    config = common.project_config()
    settings = common.run_settings(
        config, seed, trials, dtype, device, rtol, atol, limit, fd=fd, taylor=taylor
    )
    if functions:  # the reproduce and show commands import them again
        settings = dataclasses.replace(settings, functions=tuple(functions))
    targets = common.report_targets(report or [])
    chosen_shard = common.parse_shard(shard)
    user_functions = common.load_functions(functions)
    from matgrad import api
    from matgrad.runner import select, take_shard

    if common.reads_stdin(paths):
        with api.using_functions(user_functions):
            selected = select(common.read_stdin(settings.limits), filter or [])
    else:
        where = common.resolve_paths(paths, config)
        selected = api.collect(
            where, select=filter or [], limits=settings.limits, functions=user_functions
        )
    if not selected:
        raise common.nothing_found()
    items = take_shard(selected, chosen_shard)
    if chosen_shard is not None and not items:
        common.err_console().print(
            f"shard {chosen_shard} holds none of the {len(selected)} identities"
        )
    if collect_only:
        with common.reader_may_leave():
            common.list_collected(items, quiet, format is not None and format.value == "json")
        return
    run_and_report(
        items,
        settings,
        targets,
        format,
        verbose - quiet,
        maxfail=1 if fail_fast else maxfail,
        shard=None if chosen_shard is None else str(chosen_shard),
        functions=user_functions,
    )


def run_and_report(
    items: list[Any],
    settings: Settings,
    targets: list[tuple[str, Path]],
    format: OutFormat | None,
    verbosity: int,
    *,
    maxfail: int | None = None,
    shard: str | None = None,
    functions: Any = None,
) -> NoReturn:
    """Check ``items``, write the reports, print the chosen format and exit with the gate's
    code: what every command that checks identities shares."""
    from matgrad import api
    from matgrad.cli.progress import run_progress
    from matgrad.report import ReportWriteError, github, renderer, write_atomic
    from matgrad.report import table as table_report
    from matgrad.report.escape import markup
    from matgrad.runner import exit_code

    if settings.dtype != CONFIRM_DTYPE:
        common.err_console().print(dtype_warning(settings))
    common.import_torch()
    if common.owns_process():
        from matgrad.engine.core import lower_threads_for_small_work

        lower_threads_for_small_work(items, settings)
    out = common.out_console()
    with run_progress(out, len(items)) as bar:
        result = api.check(
            items,
            settings=settings,
            maxfail=maxfail,
            on_start=bar.on_start if bar else None,
            on_result=bar.on_result if bar else None,
            functions=functions,
        )
    result.shard = shard
    unwritten = []
    for fmt, path in targets:  # a report that cannot be written loses neither the others nor stdout
        try:
            write_atomic(path, renderer(fmt)(result))
        except ReportWriteError as e:
            unwritten.append(str(e))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            github.append_step_summary(summary_file, result)
        except OSError as e:
            common.err_console().print(
                f"warning: cannot append to GITHUB_STEP_SUMMARY: {markup(e)}"
            )
    chosen = format.value if format is not None else None
    if chosen is None:
        chosen = "github" if github.enabled() else "table"
    with common.reader_may_leave():
        if chosen == "table":
            # a terminal (or a COLUMNS the user set) gets a table that fits its width;
            # piped output keeps every column
            fit = out.width if out.is_terminal or "COLUMNS" in os.environ else None
            for block in table_report.renderables(result, verbosity, fit):
                out.print(block)
        elif chosen == "github":
            sys.stdout.write(github.render(result, verbosity))
            sys.stdout.flush()
        else:
            sys.stdout.write(renderer(chosen)(result))
            sys.stdout.flush()
    code = exit_code(result)
    for problem in unwritten:
        common.err_console().print(f"error: {markup(problem)}")
    if unwritten:
        code = ExitCode.USAGE
    if code is ExitCode.INTERRUPTED:
        common.err_console().print("interrupted: the results above are incomplete")
    raise typer.Exit(int(code))
