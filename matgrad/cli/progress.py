"""A progress bar for long runs, shown only to a person at a terminal.

Never in CI logs (the ``CI`` environment variable), never when the output is piped or
redirected, never on a dumb terminal. The bar is transient: it disappears when the run ends,
leaving the result table alone on the screen. No torch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from matgrad.report.escape import markup
from matgrad.results import IdentityResult
from matgrad.spec.schema import Identity, Invalid

MIN_IDENTITIES = 2  # a single identity finishes before a bar would be worth drawing


def in_ci(env: Mapping[str, str]) -> bool:
    """True when a CI service runs us (they set ``CI``, e.g. ``CI=true``)."""
    return env.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def wanted(console: Console, total: int, env: Mapping[str, str] | None = None) -> bool:
    """Should a run of ``total`` identities printing to ``console`` show a bar?"""
    env = os.environ if env is None else env
    return (
        total >= MIN_IDENTITIES
        and console.is_terminal
        and not console.is_dumb_terminal
        and not in_ci(env)
    )


class RunProgress:
    """Callbacks for :func:`matgrad.api.check` that move one rich progress bar."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def on_start(self, item: Identity | Invalid) -> None:
        name = item.id if item.id is not None else os.path.basename(item.path)
        self._progress.update(self._task, description=f"checking {markup(name)}")

    def on_result(self, result: IdentityResult) -> None:
        self._progress.advance(self._task)


@contextlib.contextmanager
def run_progress(
    console: Console, total: int, env: Mapping[str, str] | None = None
) -> Iterator[RunProgress | None]:
    """A :class:`RunProgress` drawing on ``console`` while the block runs, or ``None`` when
    :func:`wanted` says no bar."""
    if not wanted(console, total, env):
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}", style="bold"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("checking", total=total)
        yield RunProgress(progress, task)
