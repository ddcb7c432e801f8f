"""Renderers: each turns a :class:`~matgrad.results.RunReport` into text. They never
recompute anything and never import torch."""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from matgrad.results import RunReport


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a report is for sharing
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


FORMATS = ("table", "json", "junit", "github", "markdown", "html", "csv")
# File extensions that pick a report's format; any format can also be named as FORMAT:FILE.
EXTENSIONS = {
    ".json": "json",
    ".xml": "junit",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".csv": "csv",
    ".txt": "table",
}
ALIASES = {"md": "markdown", "xml": "junit", "txt": "table"}


def renderer(fmt: str) -> Callable[[RunReport], str]:
    """The ``render(report) -> str`` of a format (imported on demand)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    module = importlib.import_module(f"matgrad.report.{fmt}")
    return module.render  # type: ignore[no-any-return]


def parse_target(spec: str) -> tuple[str, Path]:
    """``FORMAT:FILE`` or ``FILE`` with a known extension -> (format, path).

    Raises ValueError with the reason.
    """
    head, sep, tail = spec.partition(":")
    name = ALIASES.get(head.lower(), head.lower())
    if sep and name in FORMATS:
        if not tail:
            raise ValueError(f"{spec!r}: no file after {head}:")
        return name, Path(tail)
    path = Path(spec)
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        exts = ", ".join(sorted(set(EXTENSIONS) - {".markdown", ".htm"}))
        raise ValueError(
            f"{spec!r}: unknown report format {path.suffix or '(no extension)'!r}: name the file "
            f"{exts}, or write FORMAT:FILE with FORMAT one of {', '.join(FORMATS)}"
        )
    return fmt, path
