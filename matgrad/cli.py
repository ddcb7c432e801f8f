"""The ``matgrad`` command line: a thin layer over the library.

Each command parses its options, makes one library call, renders the result and picks the
exit code. torch is imported only by commands that compute (``check``), so ``--help``,
``functions`` and ``validate`` start fast.
"""

from __future__ import annotations

import enum
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from matgrad._version import __version__
from matgrad.errors import ExitCode, LimitError, MatgradError
from matgrad.limits import DEFAULT_LIMITS, Limits

app = typer.Typer(
    name="matgrad",
    help="Verify hand-derived matrix-calculus identities against PyTorch autograd.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def _stdout() -> Console:
    # Piped output (CI logs) gets a wide page instead of rich's 80 columns, so ids do not wrap.
    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        width = 120
    return Console(highlight=False, soft_wrap=True, width=width)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str, code: ExitCode) -> typer.Exit:
    _stderr().print(f"error: {escape(message)}")
    return typer.Exit(int(code))


# Click's UsageError (typer re-exports it as BadParameter's base; newer typer vendors click).
_USAGE_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


def _guard(fn: F) -> F:
    """Map exceptions to exit codes: user errors 2/3, Ctrl-C 130, anything else 4."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, _USAGE_ERROR, SystemExit):
            raise
        except KeyboardInterrupt:
            _stderr().print("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except LimitError as e:
            raise _fail(str(e), ExitCode.USAGE) from None
        except MatgradError as e:
            raise _fail(str(e), ExitCode.USAGE) from None
        except Exception as e:  # a bug
            raise _fail(
                f"internal error: {type(e).__name__}: {e}. This is a bug in matgrad: "
                f"please report it with the command and files that caused it",
                ExitCode.INTERNAL,
            ) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"matgrad {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Verify hand-derived matrix-calculus identities against PyTorch autograd.

    Exit codes: 0 every identity met its expect; 1 a claim mismatched or an expect: fail
    identity passed; 2 usage error; 3 an invalid file or an identity that could not be
    evaluated; 4 internal error; 5 no identity found; 130 interrupted.
    """


class DType(str, enum.Enum):
    float64 = "float64"
    float32 = "float32"


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class OutFormat(str, enum.Enum):
    table = "table"
    json = "json"


PathsArg = Annotated[
    list[Path],
    typer.Argument(help="Identity files, or folders searched recursively for *.yaml / *.yml."),
]
FilterOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "-k",
        "--filter",
        help="Only identities whose id contains this text or matches this glob (repeatable).",
    ),
]
LimitOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--limit",
        metavar="NAME=N",
        help="Raise or lower a safety limit, e.g. --limit max_dim=2048 (see README).",
    ),
]


FdOpt = Annotated[
    bool,
    typer.Option(
        "--fd", help="Also judge every claim by central finite differences (float64)."
    ),
]
TaylorOpt = Annotated[
    bool,
    typer.Option(
        "--taylor",
        help="Also judge every claim by the Taylor test (remainder slope; no autograd).",
    ),
]


def _witness_flags(fd: bool, taylor: bool) -> tuple[str, ...]:
    return tuple(name for name, on in (("fd", fd), ("taylor", taylor)) if on)


def parse_limits(pairs: list[str] | None, base: Limits = DEFAULT_LIMITS) -> Limits:
    changes: dict[str, int] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: expected NAME=N", param_hint="--limit")
        try:
            changes[name.strip()] = int(value)
        except ValueError:
            raise typer.BadParameter(
                f"{pair!r}: {value!r} is not an integer", param_hint="--limit"
            ) from None
    try:
        return base.replace(**changes)
    except LimitError as e:
        raise typer.BadParameter(str(e), param_hint="--limit") from None


def _check_paths(paths: list[Path]) -> None:
    for p in paths:
        if not p.exists():
            raise typer.BadParameter(f"{str(p)!r} does not exist", param_hint="PATHS")


def _check_report_targets(reports: list[str]) -> list[tuple[str, Path]]:
    out = []
    for spec in reports:
        fmt, _, target = spec.rpartition(":") if ":" in spec else ("", "", spec)
        path = Path(target)
        if not fmt:
            fmt = path.suffix.lstrip(".").lower()
        if fmt not in ("json",):
            raise typer.BadParameter(
                f"{spec!r}: unknown report format {fmt!r} (use a .json file)",
                param_hint="--report",
            )
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
            raise typer.BadParameter(f"{spec!r}: cannot write {target!r}", param_hint="--report")
        out.append((fmt, path))
    return out


@app.command()
@_guard
def check(
    paths: PathsArg,
    filter: FilterOpt = None,
    seed: Annotated[int, typer.Option(help="Run seed; each identity derives its own.")] = 0,
    trials: Annotated[
        Optional[int], typer.Option(min=1, help="Random draws per identity (overrides files).")
    ] = None,
    dtype: Annotated[DType, typer.Option(help="Floating-point type of the check.")] = DType.float64,
    device: Annotated[Device, typer.Option(help="auto: CUDA when available.")] = Device.auto,
    report: Annotated[
        Optional[list[str]],
        typer.Option("--report", metavar="FILE", help="Also write a report (FILE.json)."),
    ] = None,
    format: Annotated[
        OutFormat, typer.Option("--format", help="What to print on stdout.")
    ] = OutFormat.table,
    limit: LimitOpt = None,
    fd: FdOpt = False,
    taylor: TaylorOpt = False,
) -> None:
    """Check identities against autograd over random draws.

    Example: matgrad check identities/ -k trace
    """
    _check_paths(paths)
    limits = parse_limits(limit)
    targets = _check_report_targets(report or [])
    from matgrad import check as engine
    from matgrad.report import json as json_report
    from matgrad.report import table as table_report
    from matgrad.report import write_atomic
    from matgrad.runner import exit_code, select
    from matgrad.spec import load_all

    items = select(load_all([str(p) for p in paths], limits), filter or [])
    if not items:
        _stderr().print("no identity found (no *.yaml files, or -k matched nothing)")
        raise typer.Exit(int(ExitCode.NO_IDENTITIES))
    if dtype is DType.float32:
        _stderr().print(
            "warning: float32 checks use looser tolerances (rtol 2e-3); prefer float64 for verdicts"
        )
    settings = engine.Settings(
        seed=seed, trials=trials, dtype=dtype.value, device=device.value, limits=limits,
        witnesses=_witness_flags(fd, taylor),
    )
    result = engine.run(items, settings)
    for fmt, path in targets:
        write_atomic(path, json_report.render(result))
    out = _stdout()
    if format is OutFormat.json:
        sys.stdout.write(json_report.render(result))
    else:
        out.print(table_report.table(result))
        for block in table_report.details(result):
            out.print(block)
        out.print(table_report.summary_line(result))
    code = exit_code(result)
    if code is ExitCode.INTERRUPTED:
        _stderr().print("interrupted: the results above are incomplete")
    raise typer.Exit(int(code))


@app.command()
@_guard
def validate(paths: PathsArg, filter: FilterOpt = None, limit: LimitOpt = None) -> None:
    """Check files, expressions and shapes without any tensor maths (no torch needed).

    Example: matgrad validate identities/
    """
    _check_paths(paths)
    limits = parse_limits(limit)
    from matgrad.runner import select
    from matgrad.spec import load_all
    from matgrad.spec import validate as validate_items

    items = select(load_all([str(p) for p in paths], limits), filter or [])
    if not items:
        _stderr().print("no identity found (no *.yaml files, or -k matched nothing)")
        raise typer.Exit(int(ExitCode.NO_IDENTITIES))
    problems = [(item, err) for item, err in validate_items(items, limits) if err is not None]
    out = _stdout()
    for _, err in problems:
        out.print(f"[bold magenta]invalid[/] {escape(str(err))}")
    files = len({item.path for item in items})
    n = len(items)
    if problems:
        out.print(f"{len(problems)} of {n} identities in {files} files are invalid")
        raise typer.Exit(int(ExitCode.INVALID))
    out.print(f"[green]{n} identities in {files} files are valid[/]")


@app.command()
@_guard
def show(
    ident: Annotated[str, typer.Argument(metavar="ID", help="The identity's id (exact).")],
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Files or folders to search (default: the current folder)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Run seed, as given to check.")] = 0,
    trial: Annotated[int, typer.Option(min=0, help="Which draw to show (0-based).")] = 0,
    trials: Annotated[
        Optional[int], typer.Option(min=1, help="Draws per identity, as given to check.")
    ] = None,
    dtype: Annotated[DType, typer.Option(help="Floating-point type of the check.")] = DType.float64,
    device: Annotated[Device, typer.Option(help="auto: CUDA when available.")] = Device.auto,
    limit: LimitOpt = None,
    fd: FdOpt = False,
    taylor: TaylorOpt = False,
) -> None:
    """Show one draw of one identity: its variables, and autograd, the claim and their
    difference side by side for every claim. A failed check prints the show command that
    reproduces it. Exit codes: 0 shown (whatever the verdict); 2 usage error; 3 the identity
    is invalid or cannot be evaluated; 5 no identity with that id.

    Example: matgrad show seed-trace-inverse-untransposed identities/seed.yaml --trial 3
    """
    search = paths or [Path(".")]
    _check_paths(search)
    limits = parse_limits(limit)
    import difflib

    from matgrad.spec import Invalid, load_all

    items = load_all([str(p) for p in search], limits)
    found = [it for it in items if it.id == ident]
    if not found:
        ids = [it.id for it in items if it.id]
        close = difflib.get_close_matches(ident, ids, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = ", ".join(str(p) for p in search)
        _stderr().print(f"error: no identity with id {escape(ident)!r} in {escape(where)}{escape(hint)}")
        raise typer.Exit(int(ExitCode.NO_IDENTITIES))
    item = found[0]
    if isinstance(item, Invalid):
        _stderr().print(f"error: {escape(str(item.error))}")
        raise typer.Exit(int(ExitCode.INVALID))
    from matgrad import check as engine
    from matgrad.report import show as show_report
    from matgrad.show import view

    settings = engine.Settings(
        seed=seed, trials=trials, dtype=dtype.value, device=device.value, limits=limits,
        witnesses=_witness_flags(fd, taylor),
    )
    out = _stdout()
    shown = view(item, settings, trial)
    for block in show_report.render(shown, width=out.width):
        out.print(block)
    if shown.status == "error" and not shown.claims:
        raise typer.Exit(int(ExitCode.INVALID))


class FunctionsFormat(str, enum.Enum):
    table = "table"
    markdown = "markdown"
    json = "json"


@app.command()
@_guard
def functions(
    format: Annotated[
        FunctionsFormat, typer.Option("--format", help="table, markdown or json.")
    ] = FunctionsFormat.table,
) -> None:
    """List the functions of the expression language.

    Example: matgrad functions --format markdown
    """
    from matgrad.docs import functions_json, functions_markdown, functions_rows

    if format is FunctionsFormat.markdown:
        sys.stdout.write(functions_markdown())
        return
    if format is FunctionsFormat.json:
        sys.stdout.write(functions_json())
        return
    t = Table(header_style="bold")
    for col in ("function", "meaning", "result"):
        t.add_column(col)
    for sig, summary, result in functions_rows():
        t.add_row(sig, summary, result)
    _stdout().print(t)


def main() -> None:
    app()
