"""The ``matgrad`` command line: a thin layer over the library, one module per command.

``common`` holds the Typer app, the consoles, the shared options and the mapping of exceptions
to exit codes; each command module registers one command on the app.
"""

from matgrad.cli import (  # noqa: F401  (register)
    check,
    functions,
    inline,
    listing,
    new,
    show,
    validate,
)
from matgrad.cli.common import app, complete_ids, main

__all__ = ["app", "complete_ids", "main"]
