"""Plain, JSON-ready result records. No tensors, no torch.

The JSON report schema (``SCHEMA_VERSION``) is documented in docs/report-schema.md and kept
stable: fields are only ever added.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from matgrad.limits import warnings as limit_warnings
from matgrad.settings import Settings

SCHEMA_VERSION = 1

# The ``file`` of identities read from stdin (``matgrad check -``) and of one given by options
# (``matgrad try``, the API's inline identities): no file to name in a printed command.
STDIN_FILE = "<stdin>"
INLINE_FILE = "<inline>"


def unravel(flat: int, shape: list[int] | tuple[int, ...]) -> list[int]:
    """The index of entry ``flat`` of a row-major ``shape`` (``[]`` for a scalar)."""
    out = []
    for d in reversed(shape):
        out.append(flat % d)
        flat //= d
    return list(reversed(out))


def ravel(index: list[int], shape: list[int] | tuple[int, ...]) -> int:
    """The row-major position of ``index`` in ``shape``; the inverse of :func:`unravel`."""
    k = 0
    for i, d in zip(index, shape, strict=False):
        k = k * d + i
    return k

Number = float | complex  # an entry of a claim or of autograd: complex for complex claims


def fmt_number(x: Number, spec: str = ".4g") -> str:
    """A number for people: ``1.5`` or, for a complex one, ``1.5 + 2i`` / ``1.5 - 2i``."""
    if not isinstance(x, complex):
        return format(x, spec)
    sign = "-" if x.imag < 0 or (x.imag == 0 and str(x.imag).startswith("-")) else "+"
    return f"{format(x.real, spec)} {sign} {format(abs(x.imag), spec)}i"


def json_number(x: Number) -> Any:
    """A number for JSON: a float as it is, a complex one as ``{"re": a, "im": b}``."""
    if isinstance(x, complex):
        return {"re": x.real, "im": x.imag}
    return x


IDENTITY_STATUSES = ("passed", "failed", "xfailed", "xpassed", "error")


@dataclasses.dataclass
class Worst:
    """Where a claim is furthest from the truth: trial, entry index and both values."""

    trial: int
    index: list[int]
    autograd: Number
    claimed: Number

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["autograd"] = json_number(self.autograd)
        out["claimed"] = json_number(self.claimed)
        return out


@dataclasses.dataclass
class WitnessResult:
    """What one witness (autograd, fd, taylor) says about a claim.

    ``verdict`` is ``agrees``, ``disagrees`` or ``undefined`` (the witness could not give an
    answer at the point, e.g. NaN). ``max_abs_err`` is claim minus the witness's value (autograd,
    fd); ``slope`` is the Taylor test's fitted log-log slope (None: the remainder was at rounding
    level, f is affine or quadratic along the direction)."""

    name: str
    verdict: str
    max_abs_err: float | None = None
    slope: float | None = None
    expected_slope: float | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Recheck:
    """A claim that failed in float32 (complex64), checked again in float64 (complex128,
    ``wide_dtype``) on the same draw: the
    figures of both comparisons (errors, the largest error over its tolerance, the
    tolerances). ``float64_status`` is ``passed`` (the float32 failure was rounding: the claim
    passes), ``failed`` (the claim is wrong) or ``error`` (float64 could not judge)."""

    dtype: str
    max_abs_err: float | None
    max_rel_err: float | None
    max_ratio: float | None
    rtol: float | None
    atol: float | None
    float64_status: str
    float64_max_abs_err: float | None
    float64_max_rel_err: float | None
    float64_max_ratio: float | None
    float64_rtol: float
    float64_atol: float
    # the dtype the re-check ran in: float64, or complex128 where the values are complex64
    wide_dtype: str = "float64"

    @property
    def holds(self) -> bool:
        """Did the claim hold in float64 (the failure was rounding)?"""
        return self.float64_status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ClaimResult:
    kind: str
    var: str
    status: str
    line: int | None = None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    worst: Worst | None = None
    message: str = ""
    hint: str | None = None
    rtol: float | None = None
    atol: float | None = None
    convention: str | None = None
    # the largest entrywise err / (atol*scale + rtol*|autograd|): at most 1 passes
    max_ratio: float | None = None
    # Set when more than one witness judged the claim: each one's answer, and which pair
    # disagrees ("claim vs autograd", "autograd vs fd", ...) or "all agree".
    witnesses: list[WitnessResult] = dataclasses.field(default_factory=list)
    agreement: str | None = None
    # A claim that failed in float32 and was checked again in float64 on the same draw: the
    # figures of both (``recheck``), and in words (``note``) when the float64 check passed it
    # (or could not judge). A failure confirmed in float64 says so in ``message``.
    recheck: Recheck | None = None
    note: str | None = None
    # The claimed expression as written in the identity file.
    expr: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.var}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["worst"] = self.worst.to_dict() if self.worst else None
        d["recheck"] = self.recheck.to_dict() if self.recheck else None
        d["witnesses"] = [w.to_dict() for w in self.witnesses]
        return d


@dataclasses.dataclass
class IdentityResult:
    id: str
    file: str
    line: int | None
    expect: str
    status: str
    message: str = ""
    seconds: float = 0.0
    claims: list[ClaimResult] = dataclasses.field(default_factory=list)
    title: str | None = None
    source: str | None = None
    latex: str | None = None
    trials: int | None = None
    seed: int | None = None
    internal: bool = False  # an unexpected exception (a bug), not bad input
    # Trials drawn again: near a degenerate point (the guard), or where f, a claim or autograd
    # was NaN/Inf (each redraw of a trial counts once); ``undefined``: how many of the first
    # ``trials`` draws were NaN/Inf. The verdict is over ``trials`` draws that were defined.
    redrawn_degenerate: int = 0
    redrawn_undefined: int = 0
    undefined: int = 0
    # What the reader must know although the verdict stands (e.g. draws that were undefined).
    warnings: list[str] = dataclasses.field(default_factory=list)
    # The identity's own tol where it is looser than the run's: {"rtol": 1e-3} (only the
    # looser keys); None when it has none, or none looser.
    loose_tol: dict[str, float] | None = None
    # The scalar function as written in the identity file (None for an unreadable one).
    f: str | None = None
    # The line the error message names (an invalid identity, a shape error), if it names one.
    error_line: int | None = None

    def tol_note(self) -> str | None:
        """The identity's looser-than-the-run tol in words, or None."""
        if not self.loose_tol:
            return None
        given = ", ".join(f"{k}={v:g}" for k, v in self.loose_tol.items())
        return f"its own tol is looser than the run's: {given}"

    @property
    def ok(self) -> bool:
        """Did the identity meet its ``expect``?"""
        return self.status in ("passed", "xfailed")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["claims"] = [c.to_dict() for c in self.claims]
        d["seconds"] = round(self.seconds, 6)
        return d


def summarize(results: list[IdentityResult]) -> dict[str, int]:
    counts = dict.fromkeys(IDENTITY_STATUSES, 0)
    for r in results:
        counts[r.status] += 1
    return counts


@dataclasses.dataclass
class RunReport:
    matgrad: str
    torch: str | None
    seed: int
    device: str
    dtype: str
    results: list[IdentityResult] = dataclasses.field(default_factory=list)
    complete: bool = True
    seconds: float = 0.0
    shard: str | None = None  # "K/N" when this run is one shard of a split run
    stopped: str | None = None  # why the run stopped before the end (maxfail), if it did
    not_run: int = 0  # identities left unchecked because of that stop
    witnesses: list[str] = dataclasses.field(default_factory=list)  # run flags: fd, taylor
    # Every setting of the run, as resolved (the fields above repeat a few of them). Left out,
    # it is rebuilt from seed, dtype and witnesses with the other settings at their defaults.
    settings: Settings = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.settings is None:
            self.settings = Settings(
                seed=self.seed, dtype=self.dtype, witnesses=tuple(self.witnesses)
            )

    @property
    def summary(self) -> dict[str, int]:
        return summarize(self.results)

    @property
    def warnings(self) -> list[str]:
        """What every report must show about the run's settings (a raised tolerance bound)."""
        return limit_warnings(self.settings.limits)

    @property
    def ok(self) -> bool:
        """Did the run complete, check something, and every identity meet its ``expect``?"""
        return self.complete and bool(self.results) and all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "matgrad": self.matgrad,
            "torch": self.torch,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
            "complete": self.complete,
            "seconds": round(self.seconds, 6),
            "results": [r.to_dict() for r in self.results],
            "summary": self.summary,
            "shard": self.shard,
            "stopped": self.stopped,
            "not_run": self.not_run,
            "witnesses": list(self.witnesses),
            "settings": self.settings.to_dict(),
            "warnings": self.warnings,
        }


# ---- the values behind one verdict (matgrad show) ----------------------------------------


@dataclasses.dataclass
class Matrix:
    """A scalar, vector or matrix of one trial: its shape and its entries, row-major."""

    shape: list[int]
    values: list[Number]  # complex for a complex quantity

    def index(self, flat: int) -> list[int]:
        return unravel(flat, self.shape)

    def flat(self, index: list[int]) -> int:
        return ravel(index, self.shape)


@dataclasses.dataclass
class ClaimView:
    label: str
    kind: str
    var: str
    status: str
    message: str = ""
    hint: str | None = None
    note: str | None = None  # a float32 failure that held in float64 (ClaimResult.note)
    convention: str | None = None
    agreement: str | None = None
    witnesses: list[str] = dataclasses.field(default_factory=list)  # one line each
    autograd: Matrix | None = None  # the reference the claim is judged against
    claimed: Matrix | None = None
    difference: Matrix | None = None  # claimed - autograd
    fd: Matrix | None = None
    # what the reference and the claimed value are: for an implementation claim the claimed
    # value is autograd's (the user's backward) and the reference is finite differences
    reference_name: str = "autograd"
    claimed_name: str = "claimed"
    direction: Matrix | None = None  # dVAR of a differential claim
    worst: list[int] | None = None  # largest error relative to its tolerance, as in check
    max_abs_err: float | None = None  # of this trial


@dataclasses.dataclass
class View:
    id: str
    file: str
    line: int
    seed: int
    trial: int
    trials: int
    dtype: str
    status: str = "passed"
    message: str = ""
    title: str | None = None
    source: str | None = None
    latex: str | None = None
    variables: list[tuple[str, str, Matrix]] = dataclasses.field(default_factory=list)
    f: Matrix | None = None
    claims: list[ClaimView] = dataclasses.field(default_factory=list)
