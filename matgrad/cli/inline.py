"""``matgrad try``: check one identity given by options, without writing a file.

The options become the keys of an identity file, which the identity reader then reads and
validates exactly as it reads a file (:func:`matgrad.api.inline_identity`); the check, the
reports and the exit code are those of ``matgrad check``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Optional

import typer

from matgrad.claims import KINDS
from matgrad.cli import common
from matgrad.cli.check import run_and_report
from matgrad.cli.common import (
    AtolOpt,
    DeviceOpt,
    DTypeOpt,
    FdOpt,
    LimitOpt,
    OutFormat,
    RtolOpt,
    SeedOpt,
    TaylorOpt,
    TrialsOpt,
    app,
)
from matgrad.errors import ExitCode, SpecError

ID = "command-line"
DEFAULT_DIM = 3  # a size named in a --var shape and not given by --dim
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _pair(text: str, flag: str, what: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name.strip() or not value.strip():
        raise typer.BadParameter(f"{text!r}: expected {what}", param_hint=flag)
    return name.strip(), value.strip()


def _var(text: str) -> tuple[str, dict[str, Any]]:
    """``X:n,n:spd`` -> ("X", {"shape": ["n", "n"], "domain": "spd"}); ``a`` is a scalar."""
    parts = text.split(":")
    if len(parts) > 3 or not _NAME.fullmatch(parts[0].strip()):
        raise typer.BadParameter(
            f"{text!r}: expected NAME:SHAPE[:DOMAIN], e.g. X:n,n or X:n,n:spd or a (a scalar)",
            param_hint="--var",
        )
    shape: list[int | str] = []
    if len(parts) > 1 and parts[1].strip():
        for size in parts[1].split(","):
            size = size.strip()
            shape.append(int(size) if size.isdigit() else size)
    spec: dict[str, Any] = {"shape": shape}
    if len(parts) > 2 and parts[2].strip():
        spec["domain"] = parts[2].strip()
    return parts[0].strip(), spec


_OPTIONS = {"vars": "--var", "dims": "--dim", "let": "--let", "f": "--f", "expect": "--expect"}


def _option(key: str | None) -> str:
    """The option behind an identity key in an error: ``grad.X`` -> ``--grad X``."""
    if not key:
        return "the options"
    head, _, rest = key.partition(".")
    flag = _OPTIONS.get(head, f"--{head}")
    name = rest.split(".")[0]
    return f"{flag} {name}" if name else flag


@app.command(name="try")
@common.guard
def try_(
    f: Annotated[
        str, typer.Option("--f", metavar="EXPR", help="The scalar function, e.g. 'tr(A @ X)'.")
    ],
    var: Annotated[
        list[str],
        typer.Option(
            "--var",
            metavar="NAME:SHAPE[:DOMAIN]",
            help="A variable (repeatable): X:n,n, x:n,1:positive, a (a scalar). Sizes named "
            f"here and not given by --dim are {DEFAULT_DIM}.",
        ),
    ],
    dim: Annotated[
        Optional[list[str]],
        typer.Option("--dim", metavar="NAME=SIZE", help="A named size (repeatable): n=5."),
    ] = None,
    let: Annotated[
        Optional[list[str]],
        typer.Option("--let", metavar="NAME=EXPR", help="A named sub-expression (repeatable)."),
    ] = None,
    grad: Annotated[
        Optional[list[str]],
        typer.Option("--grad", metavar="VAR=EXPR", help="A gradient claim (repeatable)."),
    ] = None,
    differential: Annotated[
        Optional[list[str]],
        typer.Option(
            "--differential", metavar="VAR=EXPR", help="A differential claim, with dVAR."
        ),
    ] = None,
    hessian: Annotated[
        Optional[list[str]],
        typer.Option("--hessian", metavar="VAR=EXPR", help="A Hessian claim."),
    ] = None,
    implementation: Annotated[
        Optional[list[str]],
        typer.Option(
            "--implementation", metavar="VAR",
            help="Check autograd's own gradient w.r.t. VAR by the witnesses (repeatable).",
        ),
    ] = None,
    jacobian: Annotated[
        Optional[list[str]],
        typer.Option(
            "--jacobian", metavar="VAR=EXPR", help="A Jacobian claim, d vec f / d (vec VAR)^T."
        ),
    ] = None,
    expect: Annotated[
        Optional[str],
        typer.Option(metavar="pass|fail", help="fail: the claims are meant to be wrong."),
    ] = None,
    seed: SeedOpt = None,
    trials: TrialsOpt = None,
    dtype: DTypeOpt = None,
    device: DeviceOpt = None,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    limit: LimitOpt = None,
    fd: FdOpt = False,
    taylor: TaylorOpt = False,
    report: Annotated[
        Optional[list[str]],
        typer.Option("--report", metavar="FILE", help="Also write a report, as for check."),
    ] = None,
    format: Annotated[
        Optional[OutFormat],
        typer.Option("--format", help="What to print on stdout, as for check.",
                     show_default=False),
    ] = None,
    quiet: Annotated[
        int, typer.Option("-q", "--quiet", count=True, show_default=False, help="Less output.")
    ] = 0,
    verbose: Annotated[
        int,
        typer.Option("-v", "--verbose", count=True, show_default=False,
                     help="Also detail the claims that pass."),
    ] = 0,
) -> None:
    """Check one identity given by options, without a file: the file's keys as options.

    Example: matgrad try --f 'tr(inv(X) @ A)' --var X:n,n:invertible --var A:n,n --grad X='-(inv(X) @ A @ inv(X)).T'
    """  # noqa: E501 - the example is one command line
    given = locals()
    claims: dict[str, Any] = {}
    for kind, k in KINDS.items():  # one option per registered claim kind, named after it
        if k.claimed_by_autograd:  # a list of variables, no expression
            if given[kind]:
                claims[kind] = [name.strip() for name in given[kind]]
            continue
        for text in given[kind] or []:
            name, expr = _pair(text, f"--{kind}", "VAR=EXPR")
            claims.setdefault(kind, {})[name] = expr
    if not claims:
        flags = ", ".join(f"--{k}" for k in KINDS)
        raise typer.BadParameter(f"give at least one claim: {flags}", param_hint="claims")
    variables = dict(_var(text) for text in var)
    dims = {}
    for text in dim or []:
        name, size = _pair(text, "--dim", "NAME=SIZE")
        if not size.isdigit():
            raise typer.BadParameter(
                f"{text!r}: the size must be a whole number", param_hint="--dim"
            )
        dims[name] = int(size)
    for spec in variables.values():
        for size in spec["shape"]:
            if isinstance(size, str):
                dims.setdefault(size, DEFAULT_DIM)
    fields: dict[str, Any] = {"id": ID, "dims": dims, "vars": variables}
    if let:
        fields["let"] = dict(_pair(text, "--let", "NAME=EXPR") for text in let)
    fields["f"] = f
    fields.update(claims)
    if expect is not None:
        fields["expect"] = expect
    config = common.project_config()
    settings = common.run_settings(
        config, seed, trials, dtype, device, rtol, atol, limit, fd=fd, taylor=taylor
    )
    targets = common.report_targets(report or [])
    from matgrad.api import inline_identity

    try:
        ident = inline_identity(fields, settings.limits)
    except SpecError as e:
        raise common.fail(f"{_option(e.key)}: {e.problem}", ExitCode.INVALID) from None
    run_and_report([ident], settings, targets, format, verbose - quiet)
