"""Diagnosis cost: the mistakes gallery (identities/mistakes/, every claim wrong on purpose)
checked with the diagnosis and without it (the hint search replaced by a no-op), in the same
interleaved rounds; and the work each failed claim's repair search did, against its bounds.
The diagnosis runs only for a failed claim: the rest of the library (right identities, and a
few expect: fail ones) pays only for its few failures (the same comparison)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from _common import LIBRARY, QUICK, table

from matgrad.engine import diagnose, repair
from matgrad.engine.core import Settings, run
from matgrad.spec.schema import load_all


def _timed(items: list[Any], settings: Settings, hints: bool) -> tuple[float, Any]:
    real = diagnose.diagnose
    if not hints:
        diagnose.diagnose = lambda p: None  # type: ignore[assignment]
    try:
        t = time.perf_counter()
        report = run(items, settings)
        return time.perf_counter() - t, report
    finally:
        diagnose.diagnose = real  # type: ignore[assignment]


def _work(items: list[Any], settings: Settings) -> list[repair.Outcome]:
    """Each repair search's outcome (its candidate evaluations and checks)."""
    seen: list[repair.Outcome] = []
    real = repair.search

    def recording(*args: Any, **kwargs: Any) -> repair.Outcome:
        out = real(*args, **kwargs)
        seen.append(out)
        return out

    repair.search = recording  # type: ignore[assignment]
    try:
        run(items, settings)
    finally:
        repair.search = real  # type: ignore[assignment]
    return seen


def main() -> str:
    settings = Settings()
    rounds = 3 if QUICK else 7
    rows = []
    gallery = load_all([str(LIBRARY / "mistakes")])
    rest = [
        i for i in load_all([str(LIBRARY)]) if "mistakes" not in str(getattr(i, "path", ""))
    ]
    for name, items in (("mistakes gallery", gallery), ("rest of the library", rest)):
        with_hints: list[float] = []
        without: list[float] = []
        report = None
        for _ in range(rounds):
            t, report = _timed(items, settings, hints=True)
            with_hints.append(t)
            t, _ = _timed(items, settings, hints=False)
            without.append(t)
        assert report is not None
        claims = [c for r in report.results for c in r.claims]
        failed = [c for c in claims if c.status == "failed"]
        hinted = sum(c.hint is not None for c in failed)
        a, b = statistics.median(with_hints), statistics.median(without)
        per_claim = (a - b) / len(failed) * 1e3 if failed else 0.0
        rows.append([
            name, len(claims), len(failed), hinted, a, b, a / b, per_claim,
        ])
    work = _work(gallery, settings)
    evals = max((o.evals for o in work), default=0)
    checks = max((o.checks for o in work), default=0)
    out = table(
        f"Diagnosis cost (default trials, median of {rounds} interleaved rounds)",
        ["identities", "claims", "failed", "with a hint", "check s", "without hints s",
         "ratio", "diagnosis ms per failed claim"],
        rows,
    )
    out += (
        f"\n\nRepair searches on the gallery: {len(work)}; at most {evals} edited terms "
        f"evaluated (bound {repair.MAX_EVALS}) and {checks} candidate claims compared (bound "
        f"{repair.MAX_CHECKS}) for one claim."
    )
    return out


if __name__ == "__main__":
    print(main())
