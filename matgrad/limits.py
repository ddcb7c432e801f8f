"""Bounds on the size of input and of the work it may ask for.

Every limit has a default here, a command-line flag (``--limit NAME=VALUE``) and an entry
under ``[tool.matgrad.limits]``; an input that exceeds one is refused before any tensor is
allocated, with a message naming the limit and the value that hit it.
"""

from __future__ import annotations

import dataclasses

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
    max_trials: int = 10_000
    max_power: int = 1_000
    max_elements: int = 50_000_000
    max_fd_evals: int = 5_000  # evaluations of f per trial for one finite-difference witness
    max_work: int = 100_000_000_000

    def replace(self, **changes: int) -> Limits:
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in names:
                raise LimitError(f"unknown limit {key!r} (known: {', '.join(sorted(names))})")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LimitError(f"limit {key} must be a positive integer, got {value!r}")
        return dataclasses.replace(self, **changes)

    def refuse(self, name: str, value: object, what: str) -> LimitError:
        """The error for ``what`` having ``value`` over the limit ``name``."""
        flag = f"--limit {name}=N"
        return LimitError(
            f"{what} is {value}, over the limit {name}={getattr(self, name)} "
            f"(raise it with {flag} or [tool.matgrad.limits] {name} = N)"
        )


DEFAULT_LIMITS = Limits()
