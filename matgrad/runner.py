"""Choosing what to run and what the outcome means: selection by id, sharding, exit codes.
Shared by the command line and the Python API; no torch."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
from collections.abc import Iterable, Sequence

from matgrad.errors import ExitCode
from matgrad.results import IdentityResult, RunReport
from matgrad.spec.schema import Identity, Invalid


def matches(ident_id: str | None, patterns: Sequence[str]) -> bool:
    """True if ``ident_id`` matches any pattern: a glob (with * ? [) or else a substring."""
    if not patterns:
        return True
    if ident_id is None:
        return True  # an unreadable file is always reported: nothing is lost silently
    for p in patterns:
        if any(ch in p for ch in "*?["):
            if fnmatch.fnmatchcase(ident_id, p):
                return True
        elif p in ident_id:
            return True
    return False


def select(
    items: Iterable[Identity | Invalid], patterns: Sequence[str]
) -> list[Identity | Invalid]:
    return [it for it in items if matches(it.id, patterns)]


_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``total`` (1-based, as CI systems number parallel jobs)."""

    index: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 1 or not 1 <= self.index <= self.total:
            raise ValueError(
                f"shard {self.index}/{self.total}: K/N needs 1 <= K <= N, e.g. 1/4 to 4/4"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> ``Shard(2, 4)``; raises ValueError with the reason."""
        m = _SHARD_RE.match(text)
        if not m:
            raise ValueError(f"{text!r}: expected K/N, e.g. 2/4 for the second of four shards")
        return cls(int(m.group(1)), int(m.group(2)))

    def holds(self, key: str) -> bool:
        return shard_of(key, self.total) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def shard_key(item: Identity | Invalid) -> str:
    """What an item is sharded by: its id, or its file when the file could not be read."""
    return item.id if item.id is not None else item.path


def shard_of(key: str, total: int) -> int:
    """The shard (1..total) that ``key`` belongs to: a hash of the text, stable everywhere
    (not Python's ``hash()``, which is salted per process)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % total + 1


def take_shard(
    items: Iterable[Identity | Invalid], shard: Shard | None
) -> list[Identity | Invalid]:
    """The items of one shard, in their original order. Each item lands in exactly one of the
    ``total`` shards, so the shards of a run partition it."""
    if shard is None:
        return list(items)
    return [it for it in items if shard.holds(shard_key(it))]


def exit_code(report: RunReport) -> ExitCode:
    """Precedence: interrupted > internal error > invalid > mismatch > ok; 5 if nothing ran
    (but an empty shard of a split run is fine: the other shards hold the identities)."""
    if not report.complete:
        return ExitCode.INTERRUPTED
    if not report.results and report.shard is not None:
        return ExitCode.OK
    return results_exit_code(report.results)


def results_exit_code(results: Sequence[IdentityResult]) -> ExitCode:
    if not results:
        return ExitCode.NO_IDENTITIES
    if any(r.internal for r in results):
        return ExitCode.INTERNAL
    if any(r.status == "error" for r in results):
        return ExitCode.INVALID
    if any(r.status in ("failed", "xpassed") for r in results):
        return ExitCode.MISMATCH
    return ExitCode.OK
