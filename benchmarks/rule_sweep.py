"""The decision rule's case table (tests/test_decision_rule.py ISSUE_CASES) over more seeds
than the test suite runs: for each case, how many seeds reject the wrong claim and pass the
right one (docs/decision-rule.md records the result).

    python benchmarks/rule_sweep.py 200
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(seeds: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_decision_rule import ISSUE_CASES, ident, verdicts

    for name, f, right, wrong, vars_, dims, var in ISSUE_CASES:
        w = verdicts(ident(f, wrong, vars_, dims, var=var), range(seeds))
        r = verdicts(ident(f, right, vars_, dims, var=var), range(seeds))
        print(
            f"{name}: wrong claim failed on {w.count('failed')}/{seeds} seeds, "
            f"right claim passed on {r.count('passed')}/{seeds}",
            flush=True,
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
