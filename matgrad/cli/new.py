"""``matgrad new``: a commented identity file to start from."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from matgrad.cli import common
from matgrad.cli.common import app


@app.command()
@common.guard
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
