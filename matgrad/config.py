"""Project settings from ``[tool.matgrad]`` in the nearest ``pyproject.toml``.

The command line and the pytest plugin read it; :func:`matgrad.settings.resolve` applies it
(command-line flags take precedence). The Python API never reads it implicitly (pass
``config=load_config()`` to :func:`matgrad.check`). No torch.

    [tool.matgrad]
    paths = ["identities"]      # what `matgrad check` / `list` / `validate` read without PATHS
    seed = 0
    trials = 10
    dtype = "float64"           # or "float32"
    device = "auto"             # or "cpu", "cuda"
    rtol = 1.0e-6               # default tolerances of identities without their own `tol`
    atol = 0.0

    [tool.matgrad.limits]
    max_dim = 2048
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matgrad.errors import LimitError, MatgradError, did_you_mean
from matgrad.limits import DEFAULT_LIMITS, Limits
from matgrad.settings import DEVICES, DTYPES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

KEYS = ("paths", "seed", "trials", "dtype", "device", "rtol", "atol", "limits")


class ConfigError(MatgradError):
    """A ``[tool.matgrad]`` table that cannot be used; the message names the file and key."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings read from one ``pyproject.toml`` (``None``: not set there)."""

    file: Path | None = None
    paths: tuple[str, ...] = ()
    seed: int | None = None
    trials: int | None = None
    dtype: str | None = None
    device: str | None = None
    rtol: float | None = None
    atol: float | None = None
    limits: Limits = DEFAULT_LIMITS


EMPTY = Config()


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` that has a ``[tool.matgrad]`` table.

    As ruff does, a ``pyproject.toml`` without the table is passed over, so a sub-package's
    own file does not hide the project's settings.
    """
    here = start.resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and _has_table(candidate):
            return candidate
    return None


def _has_table(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "[tool.matgrad" in text  # broken, but meant for us: load_config reports it
    tool = data.get("tool")
    return isinstance(tool, dict) and "matgrad" in tool


def load_config(start: Path | None = None) -> Config:
    """Read ``[tool.matgrad]`` from the nearest ``pyproject.toml`` above ``start`` (the cwd).

    Returns :data:`EMPTY` when there is none. Raises :class:`ConfigError` for a table that is
    malformed: an unknown key, a wrong type, a value out of range.
    """
    path = find_pyproject(start if start is not None else Path.cwd())
    if path is None:
        return EMPTY
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the file: {e}") from None
    return parse_table(data["tool"]["matgrad"], path)


def parse_table(table: Any, path: Path) -> Config:
    """Check and convert one ``[tool.matgrad]`` table read from ``path``."""

    def err(key: str | None, problem: str) -> ConfigError:
        where = "[tool.matgrad]" if key is None else f"[tool.matgrad] {key}"
        return ConfigError(f"{path}: {where}: {problem}")

    if not isinstance(table, dict):
        raise err(None, "must be a table")
    for key in table:
        if key not in KEYS:
            hint = did_you_mean(key, KEYS)
            raise err(key, f"unknown key{hint}; known keys: {', '.join(KEYS)}")

    def integer(key: str, minimum: int) -> int | None:
        v = table.get(key)
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise err(key, f"must be an integer >= {minimum}, got {v!r}")
        return v

    def choice(key: str, allowed: Sequence[str]) -> str | None:
        v = table.get(key)
        if v is None:
            return None
        if v not in allowed:
            raise err(key, f"must be one of {', '.join(map(repr, allowed))}, got {v!r}")
        return str(v)

    def tolerance(key: str) -> float | None:
        v = table.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise err(key, f"must be a finite number >= 0, got {v!r}")
        return float(v)

    raw_paths = table.get("paths", [])
    if isinstance(raw_paths, str):
        raw_paths = [raw_paths]
    if not isinstance(raw_paths, list) or not all(isinstance(p, str) and p for p in raw_paths):
        raise err("paths", f"must be a list of file or folder names, got {raw_paths!r}")
    base = path.parent
    return Config(
        file=path,
        paths=tuple(_display_path(base / p) for p in raw_paths),
        seed=integer("seed", 0),
        trials=integer("trials", 1),
        dtype=choice("dtype", DTYPES),
        device=choice("device", DEVICES),
        rtol=tolerance("rtol"),
        atol=tolerance("atol"),
        limits=_limits(table.get("limits"), err),
    )


def _limits(table: Any, err: Any) -> Limits:
    if table is None:
        return DEFAULT_LIMITS
    if not isinstance(table, Mapping):
        raise err("limits", "must be a table, e.g. [tool.matgrad.limits] max_dim = 2048")
    try:
        return DEFAULT_LIMITS.replace(**dict(table))
    except LimitError as e:
        raise err("limits", str(e)) from None


def _display_path(p: Path) -> str:
    """``p`` relative to the cwd when it lies below it (reports stay short), else absolute."""
    cwd = Path.cwd()
    try:
        return str(p.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(p.resolve())
