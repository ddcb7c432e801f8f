"""The ``matgrad`` command line: a thin layer over the library.

Each command parses its options, makes one library call, renders the result and picks the
exit code. torch is imported only by commands that compute (``check``), so ``--help``,
``functions`` and ``validate`` start fast.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import gc
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from matgrad._version import __version__
from matgrad.config import Config, choose, load_config
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


class _StdoutConsole(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit(1) here; the command decides instead (see _reader_may_leave)
        self.quiet = True
        raise BrokenPipeError


def _stdout() -> Console:
    # Piped output (CI logs) gets a wide page instead of rich's 80 columns, so ids do not wrap.
    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        width = 120
    return _StdoutConsole(highlight=False, soft_wrap=True, width=width)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: ExitCode) -> typer.Exit:
    _stderr().print(f"error: {escape(message)}")
    return typer.Exit(int(code))


# Click's UsageError (typer re-exports it as BadParameter's base; newer typer vendors click).
_USAGE_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


# The cycle collector and start-up. A command's imports (typer, rich, pydantic; torch for
# check: about a million objects) live as long as the process, and the collector would walk
# them again and again as they load: 0.2-0.4 s of each run. So ``main`` starts with the
# collector off; once a command's imports are done, what they left is frozen out of later
# collections and the collector runs as usual. Only ``main`` (the ``matgrad`` command) does
# this: the library, and ``app`` called directly (CliRunner), leave collection alone.
_COLLECTOR_HELD = False
_IN_MAIN = False


def _settle_collector() -> None:
    """Freeze what start-up left and turn the cycle collector on (see above)."""
    global _COLLECTOR_HELD
    if _COLLECTOR_HELD:
        _COLLECTOR_HELD = False
        gc.freeze()
        gc.enable()


def _import_torch() -> None:
    """Import the engine, and so torch, with the collector off while torch loads (see above)."""
    global _COLLECTOR_HELD
    if _IN_MAIN and "torch" not in sys.modules and gc.isenabled():
        _COLLECTOR_HELD = True
        gc.disable()
    try:
        import matgrad.engine  # noqa: F401
    finally:
        _settle_collector()


def _guard(fn: F) -> F:
    """Run a command once its options are parsed (the collector settled, see above), mapping
    exceptions to exit codes: user errors 2/3, Ctrl-C 130, anything else 4."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _settle_collector()
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, _USAGE_ERROR, SystemExit):
            raise
        except BrokenPipeError:  # the reader left (`| head`): as rich would, exit 1 quietly
            _silence_stdout()
            raise typer.Exit(1) from None
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
    junit = "junit"
    github = "github"
    markdown = "markdown"
    html = "html"
    csv = "csv"


def complete_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of identity ids, from the paths typed so far or the configured ones."""
    from matgrad import completion

    # While completing, Click leaves the PATHS typed so far in ctx.args.
    typed = [str(p) for p in [*(ctx.params.get("paths") or ()), *ctx.args]]
    return completion.ids(completion.search_paths(typed), incomplete)


PathsArg = Annotated[
    Optional[list[Path]],
    typer.Argument(
        metavar="PATHS",
        help="Identity files, or folders searched recursively for *.yaml / *.yml "
        "[default: paths under [tool.matgrad] in pyproject.toml].",
        show_default=False,
    ),
]
FilterOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "-k",
        "--filter",
        help="Only identities whose id contains this text or matches this glob (repeatable).",
        autocompletion=complete_ids,
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


def _config() -> Config:
    """``[tool.matgrad]`` of the nearest pyproject.toml (flags take precedence over it)."""
    return load_config()


def _paths(given: list[Path] | None, config: Config) -> list[str]:
    """The PATHS typed, else the configured ones; each must exist."""
    if given:
        _check_paths(given)
        return [str(p) for p in given]
    if not config.paths:
        raise typer.BadParameter(
            "give identity files or folders, or set paths = [...] under [tool.matgrad] in "
            "pyproject.toml",
            param_hint="PATHS",
        )
    for p in config.paths:
        if not Path(p).exists():
            raise typer.BadParameter(
                f"{p!r} (from {config.file}) does not exist", param_hint="PATHS"
            )
    return list(config.paths)


def _selected(
    paths: list[Path] | None, patterns: list[str] | None, limit: list[str] | None
) -> tuple[list[Any], Limits]:
    """The identities a command works on, and the limits in force; exit 5 if there are none."""
    config = _config()
    limits = parse_limits(limit, config.limits)
    from matgrad.api import collect

    items = collect(_paths(paths, config), select=patterns or [], limits=limits)
    if not items:
        raise _nothing_found()
    return items, limits


def _nothing_found() -> typer.Exit:
    _stderr().print("no identity found (no *.yaml files, or -k matched nothing)")
    return typer.Exit(int(ExitCode.NO_IDENTITIES))


def _check_report_targets(reports: list[str]) -> list[tuple[str, Path]]:
    from matgrad.report import parse_target

    out = []
    for spec in reports:
        try:
            fmt, path = parse_target(spec)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--report") from None
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
            raise typer.BadParameter(f"{spec!r}: cannot write {str(path)!r}", param_hint="--report")
        out.append((fmt, path))
    return out


@contextlib.contextmanager
def _reader_may_leave() -> Iterator[None]:
    """A reader that stops early (``| head``) ends the output, not the command: the exit code
    stays the verdict, and nothing is reported as a bug."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    try:  # so that the flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _parse_shard(text: str | None) -> Any:
    from matgrad.runner import Shard

    if text is None:
        return None
    try:
        return Shard.parse(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--shard") from None


def _collect_only(items: list[Any], quiet: int, as_json: bool) -> None:
    from matgrad.spec import Invalid

    invalid = [it for it in items if isinstance(it, Invalid)]
    if as_json:
        rows = [
            {"id": it.id, "file": it.path, "line": it.line, "valid": not isinstance(it, Invalid)}
            for it in items
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        from matgrad.report.text import visible

        for it in items:
            name = visible(it.id or "-", newlines=False)
            where = visible(it.path if it.line is None else f"{it.path}:{it.line}", newlines=False)
            bad = f" (invalid: {visible(str(it.error), newlines=False)})" if it in invalid else ""
            typer.echo(name if quiet else f"{where}: {name}{bad}")
        if not quiet:
            files = len({it.path for it in items})
            typer.echo(f"{len(items)} identities in {files} files would run")
    if invalid:
        raise typer.Exit(int(ExitCode.INVALID))


@app.command()
@_guard
def check(
    paths: PathsArg = None,
    filter: FilterOpt = None,
    seed: Annotated[
        Optional[int],
        typer.Option(help="Run seed; each identity derives its own. [default: 0]"),
    ] = None,
    trials: Annotated[
        Optional[int], typer.Option(min=1, help="Random draws per identity (overrides files).")
    ] = None,
    dtype: Annotated[
        Optional[DType], typer.Option(help="Floating-point type of the check. [default: float64]")
    ] = None,
    device: Annotated[
        Optional[Device], typer.Option(help="auto: CUDA when available. [default: auto]")
    ] = None,
    rtol: Annotated[
        Optional[float],
        typer.Option(min=0.0, help="Default rtol of identities without tol. [default: per dtype]"),
    ] = None,
    atol: Annotated[
        Optional[float],
        typer.Option(min=0.0, help="Default atol of identities without tol. [default: per dtype]"),
    ] = None,
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
            "-q", "--quiet", count=True, show_default=False, help="Less output (-qq: summary only)."
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
) -> None:
    """Check identities against autograd over random draws.

    Flags take precedence over [tool.matgrad] in pyproject.toml.

    Example: matgrad check identities/ -k trace --report junit:matgrad.xml
    """
    config = _config()
    where = _paths(paths, config)
    limits = parse_limits(limit, config.limits)
    targets = _check_report_targets(report or [])
    chosen_shard = _parse_shard(shard)
    from matgrad import api
    from matgrad.progress import run_progress
    from matgrad.report import github, renderer, write_atomic
    from matgrad.report import table as table_report
    from matgrad.runner import exit_code, take_shard

    selected = api.collect(where, select=filter or [], limits=limits)
    if not selected:
        raise _nothing_found()
    items = take_shard(selected, chosen_shard)
    if chosen_shard is not None and not items:
        _stderr().print(f"shard {chosen_shard} holds none of the {len(selected)} identities")
    if collect_only:
        with _reader_may_leave():
            _collect_only(items, quiet, format is OutFormat.json)
        return
    dtype_name = choose(dtype.value if dtype else None, config.dtype, DType.float64.value)
    if dtype_name == DType.float32.value:
        _stderr().print(
            "warning: float32 checks use looser tolerances (rtol 2e-3); prefer float64 for verdicts"
        )
    _import_torch()
    out = _stdout()
    with run_progress(out, len(items)) as bar:
        result = api.check(
            items,
            seed=choose(seed, config.seed, 0),
            trials=choose(trials, config.trials, None),
            dtype=dtype_name,
            device=choose(device.value if device else None, config.device, Device.auto.value),
            rtol=choose(rtol, config.rtol, None),
            atol=choose(atol, config.atol, None),
            limits=limits,
            maxfail=1 if fail_fast else maxfail,
            witnesses=_witness_flags(fd, taylor),
            on_start=bar.on_start if bar else None,
            on_result=bar.on_result if bar else None,
        )
    result.shard = None if chosen_shard is None else str(chosen_shard)
    for fmt, path in targets:
        write_atomic(path, renderer(fmt)(result))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            github.append_step_summary(summary_file, result)
        except OSError as e:
            _stderr().print(f"warning: cannot append to GITHUB_STEP_SUMMARY: {escape(str(e))}")
    if format is None:
        format = OutFormat.github if github.enabled() else OutFormat.table
    with _reader_may_leave():
        if format is OutFormat.table:
            for block in table_report.renderables(result, verbose - quiet):
                out.print(block)
        else:
            sys.stdout.write(renderer(format.value)(result))
            sys.stdout.flush()
    code = exit_code(result)
    if code is ExitCode.INTERRUPTED:
        _stderr().print("interrupted: the results above are incomplete")
    raise typer.Exit(int(code))


@app.command()
@_guard
def validate(paths: PathsArg = None, filter: FilterOpt = None, limit: LimitOpt = None) -> None:
    """Check files, expressions and shapes without any tensor maths (no torch needed).

    Example: matgrad validate identities/
    """
    from matgrad.spec import validate as validate_items

    items, limits = _selected(paths, filter, limit)
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
    ident: Annotated[
        str,
        typer.Argument(metavar="ID", help="The identity's id (exact).", autocompletion=complete_ids),
    ],
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Files or folders to search (default: the current folder)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Run seed, as given to check.")] = 0,
    trial: Annotated[
        Optional[int],
        typer.Option(
            min=0, help="Which draw to show (0-based). [default: the draw of the worst entry]"
        ),
    ] = None,
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
    _import_torch()
    from matgrad import engine
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
    from rich.table import Table

    t = Table(header_style="bold")
    for col in ("function", "meaning", "result"):
        t.add_column(col)
    for sig, summary, result in functions_rows():
        t.add_row(sig, summary, result)
    _stdout().print(t)


class ListFormat(str, enum.Enum):
    table = "table"
    json = "json"


@app.command("list")
@_guard
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
    from matgrad import catalogue
    from matgrad.spec import Identity

    items, _ = _selected(paths, filter, limit)
    good = [item for item in items if isinstance(item, Identity)]
    if format is ListFormat.json:
        sys.stdout.write(catalogue.render_json(good))
    else:
        out = _stdout()
        out.print(catalogue.render_table(good))
        out.print(catalogue.summary(good))
    bad = [item for item in items if not isinstance(item, Identity)]
    for item in bad:
        _stderr().print(f"invalid {escape(str(item.error))}", soft_wrap=True)
    if bad:
        raise typer.Exit(int(ExitCode.INVALID))


@app.command()
@_guard
def new(
    id: Annotated[
        str, typer.Argument(metavar="ID", help="The new identity's id (lowercase, digits, . _ -).")
    ],
    grad: Annotated[
        Optional[str], typer.Option("--grad", metavar="VAR", help="A gradient claim (default: X).")
    ] = None,
    differential: Annotated[
        Optional[str], typer.Option("--differential", metavar="VAR", help="A differential claim.")
    ] = None,
    hessian: Annotated[
        Optional[str], typer.Option("--hessian", metavar="VAR", help="A Hessian claim (a vector).")
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("-o", "--output", metavar="FILE", help="Write FILE instead of stdout."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Write a commented identity file to start from; it validates and passes as written.

    Example: matgrad new trace-of-product --grad X -o identities/trace-of-product.yaml
    """
    chosen = [(k, v) for k, v in (("grad", grad), ("differential", differential),
                                  ("hessian", hessian)) if v is not None]
    if len(chosen) > 1:
        raise typer.BadParameter(
            "use only one of --grad, --differential, --hessian", param_hint="--grad"
        )
    kind, var = chosen[0] if chosen else ("grad", None)
    if output is not None:
        if output.exists() and not force:
            raise typer.BadParameter(
                f"{str(output)!r} already exists (use --force to overwrite it)", param_hint="-o"
            )
        parent = output.parent if str(output.parent) else Path(".")
        if output.is_dir() or not parent.is_dir():
            raise typer.BadParameter(f"cannot write {str(output)!r}", param_hint="-o")
    from matgrad.scaffold import template

    text = template(id, kind, var, str(output) if output is not None else None)
    if output is None:
        sys.stdout.write(text)
        return
    from matgrad.report import write_atomic

    write_atomic(output, text)
    _stderr().print(
        f"wrote {escape(str(output))}; check it with: matgrad check {escape(str(output))}",
        soft_wrap=True,
    )


def main() -> None:
    global _COLLECTOR_HELD, _IN_MAIN
    _IN_MAIN = True
    if gc.isenabled():
        _COLLECTOR_HELD = True
        gc.disable()
    try:
        app()
    finally:  # e.g. a usage error, before any command ran
        _IN_MAIN = False
        if _COLLECTOR_HELD:
            _COLLECTOR_HELD = False
            gc.enable()
