"""The least a typer command costs: parse a path argument and two options, then do nothing.

Typer 0.29 and later convert option values with pydantic, so any typer CLI that takes an
option imports it; ``import typer`` alone does not. The start-up benchmark reports matgrad's
commands over this floor as well as over the bare imports.
"""

from pathlib import Path
from typing import Annotated, Optional

import rich  # noqa: F401
import typer
import yaml  # noqa: F401

app = typer.Typer()


@app.command()
def run(
    paths: Annotated[Optional[list[Path]], typer.Argument()] = None,
    filter: Annotated[Optional[list[str]], typer.Option("-k")] = None,
    trials: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Do nothing."""


@app.command()
def other() -> None:
    """A second command, so that typer builds a group as matgrad's CLI does."""


if __name__ == "__main__":
    app()
