"""What the commands share: the Typer app, the consoles, the common options and arguments,
and the mapping of exceptions to exit codes.

Each command parses its options, makes one library call, renders the result and picks the
exit code. torch is imported only by commands that compute (``check``, ``show``), so
``--help``, ``functions`` and ``validate`` start fast.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import gc
import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from matgrad._version import __version__
from matgrad.config import Config, load_config
from matgrad.errors import ExitCode, LimitError, MatgradError
from matgrad.limits import DEFAULT_LIMITS, REAL, Limits
from matgrad.report import FORMATS
from matgrad.settings import DEVICES, DTYPES, Settings, resolve

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
        # rich would exit(1) here; the command decides instead (see reader_may_leave)
        self.quiet = True
        raise BrokenPipeError


def out_console() -> Console:
    # Piped output (CI logs) gets a wide page instead of rich's 80 columns, so ids do not wrap.
    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        width = 120
    return _StdoutConsole(highlight=False, soft_wrap=True, width=width)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: ExitCode) -> typer.Exit:
    from matgrad.report.escape import markup

    err_console().print(f"error: {markup(message, newlines=True)}")
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


def owns_process() -> bool:
    """Is this the ``matgrad`` command (``main``), whose process-wide settings (the collector,
    torch's threads) are its own to change? Not when ``app`` is called directly."""
    return _IN_MAIN


def import_torch() -> None:
    """Import the engine, and so torch, with the collector off while torch loads (see above)."""
    global _COLLECTOR_HELD
    if _IN_MAIN and "torch" not in sys.modules and gc.isenabled():
        _COLLECTOR_HELD = True
        gc.disable()
    try:
        import matgrad.engine.core  # noqa: F401  (loads torch)
    finally:
        _settle_collector()


def guard(fn: F) -> F:
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
            err_console().print("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except LimitError as e:
            raise fail(str(e), ExitCode.USAGE) from None
        except MatgradError as e:
            raise fail(str(e), ExitCode.USAGE) from None
        except Exception as e:  # a bug
            raise fail(
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


# The choices of --dtype and --device, from the one list of each (matgrad.settings).
DType = enum.Enum("DType", [(name, name) for name in DTYPES], type=str)  # type: ignore[misc]
Device = enum.Enum("Device", [(name, name) for name in DEVICES], type=str)  # type: ignore[misc]


# What --format accepts: every report format, in the order the registry lists them.
OutFormat = enum.Enum("OutFormat", [(name, name) for name in FORMATS], type=str)  # type: ignore[misc]


def complete_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of identity ids, from the paths typed so far or the configured ones."""
    from matgrad.cli import completion

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


# The run settings' options, shared by check and show (matgrad.settings resolves them).
SeedOpt = Annotated[
    Optional[int], typer.Option(help="Run seed; each identity derives its own. [default: 0]")
]
TrialsOpt = Annotated[
    Optional[int], typer.Option(min=1, help="Random draws per identity (overrides files).")
]
DTypeOpt = Annotated[
    Optional[DType], typer.Option(help="Floating-point type of the check. [default: float64]")
]
DeviceOpt = Annotated[
    Optional[Device], typer.Option(help="auto: CUDA when available. [default: auto]")
]
RtolOpt = Annotated[
    Optional[float],
    typer.Option(min=0.0, help="Default rtol of identities without tol. [default: per dtype]"),
]
AtolOpt = Annotated[
    Optional[float],
    typer.Option(min=0.0, help="Default atol of identities without tol. [default: per dtype]"),
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


FunctionsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--functions",
        metavar="MODULE:NAME",
        help="Let identities call the user functions of the matgrad.FunctionSet NAME in the "
        "Python module MODULE, imported from the installed packages or PYTHONPATH "
        "(repeatable). Runs that code: name only modules you trust.",
    ),
]


def load_functions(specs: list[str] | None) -> Any:
    """The user functions named by ``--functions MODULE:NAME`` (a FunctionSet, or None when
    none is named). The modules are imported here, as pytest's ``-p`` does: the flag is the
    person running matgrad asking for that code, never an identity file."""
    if not specs:
        return None
    import importlib

    from matgrad.lang.user import Entry, as_function_set

    merged: dict[str, Entry] = {}
    for spec in specs:
        module, sep, name = spec.partition(":")
        if not sep or not module or not name.isidentifier():
            raise typer.BadParameter(
                f"{spec!r}: expected MODULE:NAME, e.g. myproject.ops:functions",
                param_hint="--functions",
            )
        try:
            found = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as e:
            raise typer.BadParameter(
                f"{spec!r}: cannot import {module!r} ({e}); install it or put its folder on "
                f"PYTHONPATH",
                param_hint="--functions",
            ) from None
        except AttributeError:
            raise typer.BadParameter(
                f"{spec!r}: module {module!r} has no {name!r}", param_hint="--functions"
            ) from None
        try:
            functions = as_function_set(found)
        except (TypeError, ValueError) as e:
            raise typer.BadParameter(f"{spec!r}: {e}", param_hint="--functions") from None
        merged.update(functions)
    return as_function_set(merged)


def witness_flags(fd: bool, taylor: bool) -> tuple[str, ...]:
    return tuple(name for name, on in (("fd", fd), ("taylor", taylor)) if on)


def parse_limits(pairs: list[str] | None, base: Limits = DEFAULT_LIMITS) -> Limits:
    changes: dict[str, float] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: expected NAME=N", param_hint="--limit")
        real = name.strip() in REAL
        try:
            changes[name.strip()] = float(value) if real else int(value)
        except ValueError:
            raise typer.BadParameter(
                f"{pair!r}: {value!r} is not {'a number' if real else 'an integer'}",
                param_hint="--limit",
            ) from None
    try:
        return base.replace(**changes)
    except LimitError as e:
        raise typer.BadParameter(str(e), param_hint="--limit") from None


def run_settings(
    config: Config,
    seed: int | None,
    trials: int | None,
    dtype: Any,
    device: Any,
    rtol: float | None,
    atol: float | None,
    limit: list[str] | None,
    *,
    fd: bool,
    taylor: bool,
) -> Settings:
    """The run settings of check and show: their flags over [tool.matgrad] over the defaults."""
    return resolve(
        config,
        seed=seed,
        trials=trials,
        dtype=dtype.value if dtype else None,
        device=device.value if device else None,
        rtol=rtol,
        atol=atol,
        limits=parse_limits(limit, config.limits),
        witnesses=witness_flags(fd, taylor),
    )


def check_paths(paths: list[Path]) -> None:
    for p in paths:
        if not p.exists():
            raise typer.BadParameter(f"{str(p)!r} does not exist", param_hint="PATHS")


def project_config() -> Config:
    """``[tool.matgrad]`` of the nearest pyproject.toml (flags take precedence over it)."""
    return load_config()


def resolve_paths(given: list[Path] | None, config: Config) -> list[str]:
    """The PATHS typed, else the configured ones; each must exist."""
    if given:
        check_paths(given)
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


STDIN = "-"


def reads_stdin(paths: list[Path] | None) -> bool:
    """Is PATHS ``-`` (one file's YAML on stdin)? ``-`` beside files is a usage error."""
    if not paths or not any(str(p) == STDIN for p in paths):
        return False
    if len(paths) > 1:
        raise typer.BadParameter("- (stdin) cannot be mixed with files", param_hint="PATHS")
    return True


def read_stdin(limits: Limits) -> list[Any]:
    """The identities of the YAML text on stdin, read by the loader that reads files (and
    bounded by the same max_file_bytes)."""
    from matgrad.results import STDIN_FILE
    from matgrad.spec.schema import load_text

    data = sys.stdin.buffer.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        refused = limits.refuse(
            "max_file_bytes", f"more than {limits.max_file_bytes}", "the text on stdin"
        )
        raise fail(f"{STDIN_FILE}: {refused}", ExitCode.INVALID)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail(f"{STDIN_FILE}: not UTF-8 text ({e.reason})", ExitCode.INVALID) from None
    return load_text(text, STDIN_FILE, limits)


def select_items(
    paths: list[Path] | None, patterns: list[str] | None, limit: list[str] | None
) -> tuple[list[Any], Limits]:
    """The identities a command works on, and the limits in force; exit 5 if there are none."""
    config = project_config()
    limits = parse_limits(limit, config.limits)
    from matgrad.api import collect
    from matgrad.runner import select

    if reads_stdin(paths):
        items = select(read_stdin(limits), patterns or [])
    else:
        items = collect(resolve_paths(paths, config), select=patterns or [], limits=limits)
    if not items:
        raise nothing_found()
    return items, limits


def nothing_found() -> typer.Exit:
    err_console().print("no identity found (no *.yaml files, or -k matched nothing)")
    return typer.Exit(int(ExitCode.NO_IDENTITIES))


def report_targets(reports: list[str]) -> list[tuple[str, Path]]:
    from matgrad.report import parse_target, writable_problem

    out = []
    for spec in reports:
        try:
            fmt, path = parse_target(spec)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--report") from None
        problem = writable_problem(path)
        if problem is not None:
            raise typer.BadParameter(
                f"{spec!r}: cannot write {str(path)!r}: {problem}", param_hint="--report"
            )
        out.append((fmt, path))
    return out


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
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


def parse_shard(text: str | None) -> Any:
    from matgrad.runner import Shard

    if text is None:
        return None
    try:
        return Shard.parse(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--shard") from None


def list_collected(items: list[Any], quiet: int, as_json: bool) -> None:
    from matgrad.report.escape import json_text, terminal
    from matgrad.spec.schema import Invalid

    invalid = [it for it in items if isinstance(it, Invalid)]
    if as_json:
        rows = [
            {"id": it.id, "file": it.path, "line": it.line, "valid": not isinstance(it, Invalid)}
            for it in items
        ]
        sys.stdout.write(json_text(rows, indent=2) + "\n")
    else:
        for it in items:
            name = terminal(it.id or "-")
            where = terminal(it.path if it.line is None else f"{it.path}:{it.line}")
            bad = f" (invalid: {terminal(it.error)})" if it in invalid else ""
            typer.echo(name if quiet else f"{where}: {name}{bad}")
        if not quiet:
            files = len({it.path for it in items})
            typer.echo(f"{len(items)} identities in {files} files would run")
    if invalid:
        raise typer.Exit(int(ExitCode.INVALID))



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
