"""Renderers: each turns a :class:`~matgrad.results.RunReport` into text. They never
recompute anything and never import torch."""

from __future__ import annotations

import importlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from matgrad.errors import MatgradError
from matgrad.results import RunReport


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class ReportWriteError(MatgradError):
    """A report file could not be written (not a regular file, disk full, no permission)."""


def writable_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a report cannot be written to ``path``, or None when it can (checked before a run).

    A report replaces a regular file or creates a new one; anything else that exists at the
    path (a device such as ``/dev/stdout``, a FIFO, a socket, a folder) is refused, since the
    rename would replace that node with a plain file.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        st = target.stat()  # follows links: /dev/stdout is a link to a device or a pipe
    except FileNotFoundError:
        st = None
    except OSError as e:
        return e.strerror or str(e)
    if st is not None and not stat.S_ISREG(st.st_mode):
        return "it exists and is not a regular file"
    if not parent.exists():
        return f"its folder {str(parent)!r} does not exist (create it first)"
    if not parent.is_dir():
        return f"{str(parent)!r} is not a folder"
    if not os.access(parent, os.W_OK):
        return f"its folder {str(parent)!r} is not writable"
    return None


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file.

    Raises :class:`ReportWriteError` (an I/O problem, never a bug) when the path is not a
    regular file or the write fails (disk full, permissions).
    """
    target = Path(path)
    problem = writable_problem(target)
    if problem is not None:
        raise ReportWriteError(f"cannot write {str(target)!r}: {problem}")
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or "."
        )
    except OSError as e:
        raise ReportWriteError(f"cannot write {str(target)!r}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a report is for sharing
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise ReportWriteError(f"cannot write {str(target)!r}: {e.strerror or e}") from None
        raise


# The report formats. Adding one: a module matgrad/report/<name>.py with
# ``render(report: RunReport) -> str`` that escapes user text through matgrad.report.escape, its
# name here (``--format`` and ``--report NAME:FILE`` follow), an extension below if it has one,
# a section in docs/reports.md, and its hostile-text checks in tests/test_escape_boundary.py.
# tests/test_report_formats.py fails when a format lacks any of them.
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
