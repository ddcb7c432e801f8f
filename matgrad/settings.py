"""Run settings: their names, their defaults, and the one place they are resolved.

Every entry point (``matgrad check``, ``matgrad show``, :func:`matgrad.check`,
:func:`matgrad.check_identity`, the pytest plugin) builds its :class:`Settings` with
:func:`resolve`, so one precedence holds everywhere::

    built-in default  <-  [tool.matgrad] (a Config)  <-  flags / arguments

The run report records the resolved settings whole, and the commands that a report prints
(``reproduce:``, ``show:``) are rebuilt from that record by :meth:`Settings.flags`. No torch.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from matgrad.errors import MatgradError
from matgrad.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from matgrad.config import Config

# The floating-point types a check may run in, the first the default, each with its default
# tolerances (rtol, atol) for the rule of docs/decision-rule.md:
# |claim - autograd| <= rtol*|autograd| + atol*(largest |autograd| of the trial)
#                       + NOISE_FACTOR*(estimated rounding noise of the entry).
# atol is 0: no absolute floor and no trial-wide scale unless a user asks for one, so a
# verdict does not change when f or a variable is rescaled. float64's rtol sits far above
# rounding (about 1e-13 on the well-conditioned sampled inputs) and far below the error of a
# wrong claim (order 1). float32 is tight (about 170 ulps relative): a float32 failure is
# checked again in float64 before it counts, so its tolerance only decides how close a wrong
# claim may come and still pass. Measured in docs/configuration.md ("float32").
DEFAULT_TOL: dict[str, tuple[float, float]] = {
    "float64": (1e-6, 0.0),
    "float32": (2e-5, 0.0),
}
DTYPES: tuple[str, ...] = tuple(DEFAULT_TOL)
# A claim that fails in another dtype is checked again in this one, on the same draw: a claim
# that holds there failed by rounding alone (see engine/core.py ``_Recheck``).
CONFIRM_DTYPE = "float64"
# Where a check runs; "auto" is CUDA when available. The first is the default.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
# Judges a run may add to every identity's own (--fd, --taylor), in the order they are named.
WITNESSES: tuple[str, ...] = ("fd", "taylor")
DEFAULT_SEED = 0


class SettingsError(MatgradError, ValueError):
    """A setting no run can use; the message names it and what it takes."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs besides the identities, resolved (see :func:`resolve`).

    ``trials`` None: each identity's own ``trials`` (else 100). ``rtol``/``atol`` are the
    tolerances of identities without their own ``tol``; left out (None) they become the
    dtype's defaults, so a constructed ``Settings`` always holds the numbers in force.
    ``device`` is as asked for (``auto`` included); the report records where it ran.

    Raises :class:`SettingsError` (a ``ValueError``) for a value no run can use (an unknown
    dtype, ``trials < 1``, ...).
    """

    seed: int = DEFAULT_SEED
    trials: int | None = None
    dtype: str = DTYPES[0]
    device: str = DEVICES[0]
    rtol: float | None = None
    atol: float | None = None
    limits: Limits = DEFAULT_LIMITS
    witnesses: tuple[str, ...] = ()
    # the --functions MODULE:NAME the command line imported (user code is trusted only through
    # that flag): written into reproduce and show commands so they find the same functions
    functions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SettingsError(f"seed must be an integer, got {self.seed!r}")
        if self.trials is not None and (
            isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1
        ):
            raise SettingsError(f"trials must be a positive integer, got {self.trials!r}")
        if self.dtype not in DTYPES:
            raise SettingsError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.device not in DEVICES:
            raise SettingsError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not isinstance(self.limits, Limits):
            raise SettingsError(f"limits must be a Limits, got {type(self.limits).__name__}")
        if isinstance(self.witnesses, str):
            raise SettingsError(f"witnesses must be a list of names, got {self.witnesses!r}")
        unknown = [w for w in self.witnesses if w not in WITNESSES]
        if unknown:
            raise SettingsError(
                f"unknown witness {unknown[0]!r}; run witnesses are {', '.join(WITNESSES)}"
            )
        set_ = object.__setattr__  # frozen: normalised once, here
        set_(self, "witnesses", tuple(w for w in WITNESSES if w in self.witnesses))
        for name, default in zip(("rtol", "atol"), DEFAULT_TOL[self.dtype], strict=True):
            value = getattr(self, name)
            if value is None:
                set_(self, name, default)
            elif (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or math.isnan(value)
                or value < 0
            ):
                raise SettingsError(f"{name} must be a number >= 0, got {value!r}")
            elif value > self.limits.max_tol:
                raise SettingsError(str(self.limits.refuse("max_tol", f"{value:g}", name)))
            else:
                set_(self, name, float(value))

    def looser(self, rtol: float | None, atol: float | None) -> dict[str, float] | None:
        """Of an identity's own ``tol``, the keys looser than this run's, with their values
        (None: none is)."""
        out = {
            name: value
            for name, value, run in (("rtol", rtol, self.rtol), ("atol", atol, self.atol))
            if value is not None and run is not None and value > run
        }
        return out or None

    @property
    def tolerances(self) -> tuple[float, float]:
        """``(rtol, atol)`` for identities without their own ``tol``."""
        return self.rtol, self.atol  # type: ignore[return-value]  # set in __post_init__

    def tolerances_in(self, dtype: str) -> tuple[float, float]:
        """``(rtol, atol)`` of these settings in ``dtype``: a tolerance at this dtype's
        default becomes ``dtype``'s default; one set by a flag or the config stays as set."""
        out = []
        for value, mine, theirs in zip(
            self.tolerances, DEFAULT_TOL[self.dtype], DEFAULT_TOL[dtype], strict=True
        ):
            out.append(theirs if value == mine else value)
        return out[0], out[1]

    def flags(self, *, trials: bool = True) -> list[str]:
        """The command-line flags that give these settings, beyond ``--seed``: only those
        whose value differs from the built-in default, so a default run prints none.
        ``trials=False`` leaves ``--trials`` out (``show`` names the identity's own count)."""
        out = []
        if trials and self.trials is not None:
            out.append(f"--trials {self.trials}")
        if self.dtype != DTYPES[0]:
            out.append(f"--dtype {self.dtype}")
        if self.device != DEVICES[0]:
            out.append(f"--device {self.device}")
        rtol, atol = DEFAULT_TOL[self.dtype]
        if self.rtol != rtol:
            out.append(f"--rtol {self.rtol!r}")  # repr: the float exactly, read back the same
        if self.atol != atol:
            out.append(f"--atol {self.atol!r}")
        for f in dataclasses.fields(Limits):
            value = getattr(self.limits, f.name)
            if value != getattr(DEFAULT_LIMITS, f.name):
                out.append(f"--limit {f.name}={value}")
        out += [f"--{w}" for w in self.witnesses]
        out += [f"--functions {shlex.quote(spec)}" for spec in self.functions]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "trials": self.trials,
            "dtype": self.dtype,
            "device": self.device,
            "rtol": self.rtol,
            "atol": self.atol,
            "limits": dataclasses.asdict(self.limits),
            "witnesses": list(self.witnesses),
            "functions": list(self.functions),
        }


def resolve(
    config: Config | None = None,
    *,
    seed: int | None = None,
    trials: int | None = None,
    dtype: str | None = None,
    device: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    limits: Limits | None = None,
    witnesses: Sequence[str] = (),
    functions: Sequence[str] = (),
) -> Settings:
    """The settings of a run: each argument given (not None) wins over ``config`` (the
    ``[tool.matgrad]`` table, see :func:`matgrad.config.load_config`), which wins over the
    built-in default. ``limits`` replaces the configured table whole: to change one limit of
    it, pass ``config.limits.replace(...)``.

    >>> from matgrad.config import Config
    >>> s = resolve(Config(seed=3, rtol=1e-3), seed=5, dtype="float32")
    >>> s.seed, s.dtype, s.rtol, s.atol
    (5, 'float32', 0.001, 1e-06)
    >>> s.flags()
    ['--dtype float32', '--rtol 0.001']
    """

    def pick(flag: Any, name: str) -> Any:
        return flag if flag is not None else getattr(config, name, None)

    return Settings(
        seed=DEFAULT_SEED if pick(seed, "seed") is None else pick(seed, "seed"),
        trials=pick(trials, "trials"),
        dtype=pick(dtype, "dtype") or DTYPES[0],
        device=pick(device, "device") or DEVICES[0],
        rtol=pick(rtol, "rtol"),
        atol=pick(atol, "atol"),
        limits=pick(limits, "limits") or DEFAULT_LIMITS,
        witnesses=tuple(witnesses),
        functions=tuple(functions),
    )


__all__ = [
    "CONFIRM_DTYPE",
    "DEFAULT_TOL",
    "DEVICES",
    "DTYPES",
    "WITNESSES",
    "Settings",
    "SettingsError",
    "resolve",
]
