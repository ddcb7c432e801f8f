"""``matgrad new``: a commented identity file to start from."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from matgrad.claims import DEFAULT, KINDS
from matgrad.claims import differential as differential_kind
from matgrad.claims import grad as grad_kind
from matgrad.claims import hessian as hessian_kind
from matgrad.claims import implementation as implementation_kind
from matgrad.claims import jacobian as jacobian_kind
from matgrad.cli import common
from matgrad.cli.common import app


@app.command()
@common.guard
def new(
    id: Annotated[
        str, typer.Argument(metavar="ID", help="The new identity's id (lowercase, digits, . _ -).")
    ],
    grad: Annotated[
        Optional[str], typer.Option("--grad", metavar="VAR", help=grad_kind.KIND.new_help)
    ] = None,
    differential: Annotated[
        Optional[str],
        typer.Option("--differential", metavar="VAR", help=differential_kind.KIND.new_help),
    ] = None,
    hessian: Annotated[
        Optional[str], typer.Option("--hessian", metavar="VAR", help=hessian_kind.KIND.new_help)
    ] = None,
    jacobian: Annotated[
        Optional[str],
        typer.Option("--jacobian", metavar="VAR", help=jacobian_kind.KIND.new_help),
    ] = None,
    implementation: Annotated[
        Optional[str],
        typer.Option(
            "--implementation", metavar="VAR", help=implementation_kind.KIND.new_help
        ),
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
    # One option per registered claim kind, named after it (tests/test_claims.py checks).
    given = locals()
    chosen = [(k, given[k]) for k in KINDS if given[k] is not None]
    flags = [f"--{k}" for k in KINDS]
    if len(chosen) > 1:
        raise typer.BadParameter(f"use only one of {', '.join(flags)}", param_hint=flags[0])
    kind, var = chosen[0] if chosen else (DEFAULT.name, None)
    if output is not None:
        if output.exists() and not force:
            raise typer.BadParameter(
                f"{str(output)!r} already exists (use --force to overwrite it)", param_hint="-o"
            )
        parent = output.parent if str(output.parent) else Path(".")
        if output.is_dir() or not parent.is_dir():
            raise typer.BadParameter(f"cannot write {str(output)!r}", param_hint="-o")
    from matgrad.spec.scaffold import template

    text = template(id, kind, var, str(output) if output is not None else None)
    if output is None:
        sys.stdout.write(text)
        return
    from matgrad.report import write_atomic
    from matgrad.report.escape import markup

    write_atomic(output, text)
    common.err_console().print(
        f"wrote {markup(output)}; check it with: matgrad check {markup(output)}",
        soft_wrap=True,
    )
