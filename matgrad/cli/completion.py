"""Shell completion of identity ids (``-k`` and any command taking an id). No torch.

Where the ids come from: the paths already typed on the command line, else ``paths`` under
``[tool.matgrad]`` in the nearest ``pyproject.toml``, else ``./identities``. Unreadable files
and a broken configuration are skipped silently: completion must never print errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matgrad.config import load_config
from matgrad.errors import MatgradError
from matgrad.report.escape import terminal
from matgrad.spec.schema import Identity, load_all

DEFAULT_FOLDER = "identities"


def search_paths(typed: Sequence[str] | None, cwd: Path | None = None) -> list[str]:
    """Where to look for ids: the typed paths, the configured ones, or ./identities."""
    existing = [p for p in typed or () if Path(p).exists()]
    if existing:
        return existing
    here = cwd or Path.cwd()
    try:
        configured = load_config(here).paths
    except MatgradError:
        configured = ()
    if configured:
        return list(configured)
    folder = here / DEFAULT_FOLDER
    return [str(folder)] if folder.is_dir() else []


def ids(paths: Sequence[str], incomplete: str = "") -> list[tuple[str, str]]:
    """``(id, title)`` of each readable identity under ``paths`` whose id starts with
    ``incomplete``, in file order. The title is shown by the shell (zsh, fish) beside the id:
    one line, control characters written out."""
    out: list[tuple[str, str]] = []
    for item in load_all(list(paths)):
        if isinstance(item, Identity) and item.id.startswith(incomplete):
            out.append((item.id, terminal(item.title or "")))
    return out
