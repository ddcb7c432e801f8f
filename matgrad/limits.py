"""Bounds on the size of input, on the work it may ask for, and on how loose a tolerance
may be.

Every limit has a default here, a command-line flag (``--limit NAME=VALUE``) and an entry
under ``[tool.matgrad.limits]``; an input that exceeds one is refused before any tensor is
allocated, with a message naming the limit and the value that hit it.

``max_tol`` is the one limit that is a real number, not a count: the largest ``rtol`` or
``atol`` that a run (``--rtol``/``--atol``, ``[tool.matgrad]``, the API) or an identity's
``tol`` may ask for. A tolerance of 1e308 would let anything pass; raising the bound is
allowed, and every report then says so (:func:`warnings`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from matgrad.errors import LimitError


@dataclasses.dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 1_000_000
    max_identities_per_file: int = 1_000
    max_yaml_depth: int = 32
    max_expr_chars: int = 2_000
    max_expr_depth: int = 64
    max_expr_nodes: int = 1_000
    max_lets: int = 64
    max_dim: int = 1_024
    max_rank: int = 6  # axes of a variable or of any sub-expression
    max_trials: int = 10_000
    max_power: int = 1_000
    max_elements: int = 50_000_000
    max_fd_evals: int = 5_000  # evaluations of f per trial for one finite-difference witness
    max_work: int = 100_000_000_000
    max_tol: float = 0.1  # the largest rtol or atol a run or an identity's tol may ask for

    def replace(self, **changes: float) -> Limits:
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in names:
                raise LimitError(f"unknown limit {key!r} (known: {', '.join(sorted(names))})")
            if key in REAL:
                if (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not math.isfinite(value)
                    or value <= 0
                ):
                    raise LimitError(f"limit {key} must be a positive number, got {value!r}")
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LimitError(f"limit {key} must be a positive integer, got {value!r}")
        typed: dict[str, Any] = {k: float(v) if k in REAL else v for k, v in changes.items()}
        return dataclasses.replace(self, **typed)

    def refuse(self, name: str, value: object, what: str) -> LimitError:
        """The error for ``what`` having ``value`` over the limit ``name``."""
        n = "X" if name in REAL else "N"
        flag = f"--limit {name}={n}"
        return LimitError(
            f"{what} is {value}, over the limit {name}={getattr(self, name)} "
            f"(raise it with {flag} or [tool.matgrad.limits] {name} = {n})"
        )

    def check_tol(self, name: str, value: float, what: str) -> None:
        """Refuse a tolerance ``name`` (rtol or atol) over ``max_tol``."""
        if value > self.max_tol:
            raise self.refuse("max_tol", f"{value:g}", what)


REAL = frozenset({"max_tol"})  # limits that are real numbers; the others count things


def warnings(limits: Limits) -> list[str]:
    """What a report must say about these limits: a raised tolerance bound."""
    if limits.max_tol > DEFAULT_LIMITS.max_tol:
        return [
            f"the tolerance bound is raised: max_tol={limits.max_tol:g} (default "
            f"{DEFAULT_LIMITS.max_tol:g}); tolerances that loose can let a wrong identity pass"
        ]
    return []


DEFAULT_LIMITS = Limits()
