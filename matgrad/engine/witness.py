"""Second opinions that do not trust autograd: central finite differences (``fd``) and the
Taylor test (``taylor``). Both evaluate f only (never a backward pass), in float64 (complex128
for complex values), on the same draws as the autograd check.

Finite differences (``fd``) give a value to compare the claim with:

* grad: the entrywise central difference (f(x + h e_i) - f(x - h e_i)) / 2h for every entry i,
  then the identity's gradient convention, as for autograd (a complex variable is stepped along
  the real and the imaginary part of each entry: df/dX + i df/dY, torch's ``.grad``, then its
  Wirtinger convention);
* differential: the central difference of f along the claim's direction dVAR;
* hessian: the central second difference of f (the finite difference of the finite-difference
  gradient): (f(x+h e_i+h e_j) - f(x+h e_i-h e_j) - f(x-h e_i+h e_j) + f(x-h e_i-h e_j)) / 4h^2.

Steps are eps^(1/3) (first order) and eps^(1/4) (second order) times max(1, |x_i|), each
difference taken with two steps (h and h/4, h/2 for a Hessian) and combined by Richardson
extrapolation; the claim must match within rtol 1e-5 (1e-4 for a Hessian) plus the difference
of the two estimates and the rounding error.

The Taylor test (``taylor``) needs no reference value at all. Along a unit direction v it
measures the remainder over a range of steps h:

* grad / differential: r(h) = |f(x + hv) - f(x) - h <claim, v>|, which shrinks like h^2 for a
  right claim and like h for a wrong one (for a complex variable, v is a complex direction and
  <claim, v> is re <G, v>, G the claim read back as df/dX + i df/dY);
* hessian: with a second unit direction u, the mixed second difference
  r(h) = |f(x+hu+hv) - f(x+hu-hv) - f(x-hu+hv) + f(x-hu-hv) - 4h^2 u^T H v|, like h^4 when H
  is right and h^2 when it is wrong (u^T H v, unlike v^T H v, also sees a non-symmetric H).

The slope of log r against log h, fitted over the three smallest steps whose remainder is above
rounding level (and above rtol times the predicted change: an error the check allows), is
reported; the claim passes if it is at least 1.5 (3 for a Hessian). Where the
remainder is at rounding level for every h (f affine, or quadratic for a Hessian, along v) there
is no slope and the claim passes.

Both witnesses know their noise floor. Where the rounding of f at their steps swallows the
signal (a large constant added to f: 1e20 + tr(AX) rounds to multiples of 16384), a wrong
claim would "agree" inside the noise, so they say they cannot judge (verdict ``undefined``,
the reason in the message) rather than agree:

* both measure f's own rounding noise at the point by Monte Carlo arithmetic
  (:meth:`Evaluator.f_noise`), which sees the cancellation inside f that ``eps * |f|`` misses;
* fd, per trial: the rounding noise of the difference quotient (max(16 eps |f|, the measured
  noise) / step) must be :data:`FD_NOISE_MARGIN` times below the signal, the largest of the
  estimate, the claim and the change of f over a step (so a right zero derivative of an f
  that moves still counts);
* taylor, per trial without a slope: the change of f over the largest step, measured at a
  moved point or predicted by the claim, must stand :data:`TAYLOR_SIGNAL_MARGIN` times above
  the rounding floor there, with the remainder at rounding level at every step (f affine
  along the direction); a remainder above the floor at a single step is too little to fit a
  slope, and the test cannot judge that trial either; nor can it judge a trial whose low
  slope was still rising towards the smallest step, or was fitted on two steps only (a right
  claim's remainder still settling towards its slope when it reached f's noise).

A mismatch beyond the noise is still a disagreement, and an f that does not read the variable
(directly or through a let) has no noise to fear: moving the variable changes none of f's
inputs, so a zero claim is judged exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from matgrad.claims import KINDS, ClaimKind, kind_of
from matgrad.claims.base import EPS, ROUNDING
from matgrad.engine import degeneracy, tensors
from matgrad.errors import LimitError
from matgrad.lang.domains import DOMAINS
from matgrad.lang.expr import Bound, Name, Node
from matgrad.lang.functions import Shape, numel
from matgrad.limits import Limits
from matgrad.results import ClaimResult, WitnessResult, Worst, fmt_number, ravel
from matgrad.spec import budget
from matgrad.spec.schema import Claim, Compiled

ORDER = ("autograd", "fd", "taylor")
NAMES = {"autograd": "autograd", "fd": "finite differences", "taylor": "the Taylor test"}
PLURAL = {"fd"}  # "finite differences agree", "autograd agrees"

# EPS, FIRST_STEP, SECOND_STEP and ROUNDING come from matgrad.claims.base; each kind's
# tolerance (fd_tol), step ratio (fd_ratio) and Taylor slopes live on the kind.

# Taylor steps (times max(1, max |x|)), largest first; the fit uses the smallest usable ones.
TAYLOR_STEPS = {
    "first": [10 ** (-1.5 - k / 2) for k in range(7)],  # 3e-2 .. 3e-5
    "second": [10 ** (-1.0 - k / 2) for k in range(6)],  # 1e-1 .. 3e-4
}
TAYLOR_FLOOR = 64 * EPS  # a remainder below this (relative to the terms) is rounding
# Steps so small that any remainder there is rounding noise of f itself (which can be far
# above eps * |f| when f is a small sum of large terms); usable steps must beat it 30-fold.
TAYLOR_TINY = [k * 1e-13 for k in (1, 1.5, 2, 3, 4, 5, 6, 8)]
TAYLOR_NOISE_MARGIN = 30.0
# f's noise measured by Monte Carlo arithmetic moves every operation by 16 ulps, 16 to 32
# times a rounding: usable steps must beat it only twice (about 30 times f's real noise).
TAYLOR_MEASURED_MARGIN = 2.0
# A trial without a slope counts as "f affine along the direction, claim right" only where
# f's change over the largest step is this many times above the rounding floor there.
TAYLOR_SIGNAL_MARGIN = 100.0
TAYLOR_DIRECTIONS = 3  # directions per trial; the steepest slope counts
# A low slope whose local slopes rise by more than this from the larger to the smaller steps
# of its fit is still settling (a right claim's remainder on its way to slope 2), not a wrong
# claim's (which falls towards slope 1): that trial cannot be judged.
TAYLOR_RISE = 0.1
TAYLOR_SETTLING = 1.2  # ... and the last local slope is above this (a wrong claim's stay below 1)

# Finite differences judge a trial only where the rounding noise of their difference quotient
# is this many times below the signal (the largest entry of the claim or of the estimate).
FD_NOISE_MARGIN = 100.0
CANNOT_JUDGE = "cannot judge"  # in the message of a witness whose noise swallows the signal

NOISE_SEED = 7919  # the noise estimate's Monte Carlo runs draw from seed + NOISE_SEED * k

CHUNK_ELEMENTS = 1 << 22  # largest batch (elements of the biggest intermediate) per f call

Convert = Callable[[Any], Any]


WITHOUT = ("fd", "taylor")  # the witnesses that do not use autograd


def witnesses_for(ident_witness: tuple[str, ...] | None, extra: tuple[str, ...]) -> tuple[str, ...]:
    """The witnesses that judge an identity: its own list (default autograd) plus run flags."""
    chosen = set(ident_witness or ("autograd",)) | set(extra)
    return tuple(w for w in ORDER if w in chosen)


def for_claim(kind: str, chosen: tuple[str, ...]) -> tuple[str, ...]:
    """The witnesses of one claim: the identity's, or for a claim of autograd's own value,
    every witness but autograd (it cannot judge itself)."""
    if not KINDS[kind].claimed_by_autograd:
        return chosen
    return tuple(w for w in ORDER if w in set(chosen) | set(WITHOUT) and w != "autograd")


def _names(node: Any) -> set[str]:
    """The names an expression tree reads."""
    if isinstance(node, Name):
        return {node.name}
    out: set[str] = set()
    if dataclasses.is_dataclass(node):
        for field in dataclasses.fields(node):
            value = getattr(node, field.name)
            for child in value if isinstance(value, tuple) else (value,):
                if isinstance(child, Node):
                    out |= _names(child)
    return out


class Evaluator:
    """Evaluates f and claims at perturbed points, float64, batched over trials."""

    def __init__(
        self,
        compiled: Compiled,
        draw: tuple[dict[str, Any], dict[str, Any]],
        device: str,
        seed: int = 0,
    ):
        xs, ds = draw
        self.seed = seed
        self.c = compiled
        self.x_cpu = xs  # as drawn (float64, CPU): domain directions are drawn from these
        # float64, or complex128 for a complex variable (its real and imaginary parts float64)
        self.x = {k: tensors.cast(v, torch.float64, device) for k, v in xs.items()}
        self.d = {k: tensors.cast(v, torch.float64, device) for k, v in ds.items()}
        self.trials = next(iter(xs.values())).shape[0]
        self.device = device
        self.width = max([compiled.f.max_numel] + [b.max_numel for _, b in compiled.lets])
        self._gradients: dict[str, Any] = {}
        self._noise: Any = None
        self._reads: dict[str, bool] = {}
        # the kink sites of f and its lets (relu, max, a comparison ...): where a step moves
        # one onto another piece, f's change along it says nothing about the claim
        self.kinks = [
            s for s in degeneracy.sites(compiled)
            if s.sensitive == "kink" and (s.where == "f" or s.where.startswith("let "))
        ]
        self._pieces: tuple[Any | None] | None = None  # (pieces at x,), once computed

    def reads(self, var: str) -> bool:
        """Whether f reads ``var`` (directly or through a let). Where it does not, moving
        ``var`` leaves every input of f as it was: f's values agree bit for bit, with no
        rounding noise to fear."""
        if var not in self._reads:
            self._reads[var] = self._read(var)
        return self._reads[var]

    def _read(self, var: str) -> bool:
        names = {var}
        for name, bound in self.c.lets:
            if _names(bound.node) & names:
                names.add(name)
        return bool(_names(self.c.f.node) & names)

    def f_noise(self) -> Any:
        """The rounding noise of f at the point, [T, *f.shape]: the largest deviation of
        :data:`tensors.NOISE_RUNS` evaluations of f under Monte Carlo arithmetic (every
        operation's result moved by ``tensors.PERTURBATION_ULPS`` ulps,
        ``tensors.EveryOperation``) from f. It sees what ``eps * |f|`` cannot: cancellation
        inside f (``log(1 - sigmoid(z))`` at large z, a small difference of large terms),
        where f is rounded far more coarsely than its size says. A perturbed f that is NaN/Inf
        where f is finite has no bound on its noise (inf). Measured once, at the point: the
        steps of the witnesses are small enough that f's rounding is the same at their points
        (the Taylor test also measures it at its own steps, :data:`TAYLOR_TINY`)."""
        if self._noise is None:
            base = self.f()
            out = torch.zeros_like(base.abs())  # real, also for a complex f
            for k in range(tensors.NOISE_RUNS):
                with tensors.EveryOperation(tensors.Perturbation(self.seed + NOISE_SEED * (k + 1))):
                    moved = self.f()
                d = (moved - base).abs()
                out = torch.maximum(out, torch.where(torch.isfinite(d), d, torch.inf))
            self._noise = torch.where(torch.isfinite(base), out, torch.zeros_like(out))
        return self._noise

    def rounding(self, var: str, values: Any) -> Any:
        """The rounding noise of each of ``values`` [T, ...] of f at a witness's points near
        x, as it moves ``var``: ``ROUNDING * eps * |value|``, or f's measured noise
        (:meth:`f_noise`) where that is larger. An f that does not read ``var`` gives the same
        bits at every point: no cancellation can hurt it, and the first term alone stands."""
        floor = ROUNDING * EPS * values.abs()
        if not self.reads(var):
            return floor
        s = self.f_noise()
        if s[0].numel() == 1:  # a scalar f (also as a 1 x 1 matrix): the same for every entry
            s = s.reshape(s.shape[0], *([1] * (values.dim() - 1)))
        elif s[0].numel() == values[0].numel():  # values of f itself, entry by entry
            s = s.reshape_as(values)
        else:  # [T, entries of f, points]: entry i of f at several points (a Jacobian)
            s = s.reshape(s.shape[0], -1, *([1] * (values.dim() - 2)))
        return torch.maximum(floor, s)

    def _env(self, xs: dict[str, Any], batch: int) -> tuple[dict[str, Any], Any]:
        like = torch.zeros(batch, dtype=torch.float64, device=self.device)
        return tensors.with_lets(self.c.lets, dict(xs), like), like

    @torch.no_grad()
    def f(self, xs: dict[str, Any] | None = None) -> Any:
        xs = self.x if xs is None else xs
        batch = next(iter(xs.values())).shape[0]
        env, like = self._env(xs, batch)
        return tensors.evaluate(self.c.f, env, like)

    def _along_each(
        self, count: int, points: Callable[[int, int], dict[str, Any]]
    ) -> Iterator[tuple[dict[str, Any], int]]:
        """The variables with those that ``points(start, stop)`` names replaced by its points
        ([k, T, *shape]; one variable for f_along, two for a mixed hessian), the others kept,
        in chunks covering range(count): yields (variables [k * T, ...], k)."""
        t = self.trials
        per = max(1, CHUNK_ELEMENTS // max(1, t * self.width))
        for start in range(0, count, per):
            stop = min(count, start + per)
            moved = self._retracted(points(start, stop))
            k = stop - start
            yield {
                n: moved[n].reshape(k * t, *v.shape[1:])
                if n in moved
                else v.repeat(k, *([1] * (v.dim() - 1)))
                for n, v in self.x.items()
            }, k

    def _retracted(self, moved: dict[str, Any]) -> dict[str, Any]:
        """The moved points, each brought back onto its variable's domain where the steps go
        along tangent directions and the domain says how (``Domain.retract``: the matrices of
        a rank, off which pinv jumps); as they are otherwise."""
        if self.c.identity.directions != "tangent":
            return moved
        out = dict(moved)
        for n, p in moved.items():
            retract = DOMAINS[self.c.identity.vars[n].domain].retract
            if retract is not None:
                out[n] = retract(torch, self.x[n], p)
        return out

    @torch.no_grad()
    def f_along(self, var: str, count: int, points: Callable[[int, int], Any]) -> Any:
        """f with ``var`` replaced by ``points(start, stop)`` ([k, T, *shape]) for
        start..stop covering range(count); returns [count, T, *f.shape]."""
        return self.f_along_each(count, lambda start, stop: {var: points(start, stop)})

    @torch.no_grad()
    def f_along_each(self, count: int, points: Callable[[int, int], dict[str, Any]]) -> Any:
        """As :meth:`f_along`, moving several variables at once (see :meth:`_along_each`)."""
        t = self.trials
        return torch.cat([
            self.f(xs).reshape(k, t, *self.c.f.shape) for xs, k in self._along_each(count, points)
        ])

    @torch.no_grad()
    def f_and_pieces_along_each(
        self, count: int, points: Callable[[int, int], dict[str, Any]]
    ) -> tuple[Any, Any | None]:
        """As :meth:`f_along_each`, and per point ([count, T] bool) whether every kink site of
        f is on the piece it is on at x (the same sign of relu's argument, the same index of a
        max): None when f has no kink site that says what its pieces are. Both come from one
        evaluation of the lets per chunk of points."""
        t = self.trials
        base = self._base_pieces()
        vals, same = [], []
        for xs, k in self._along_each(count, points):
            env, like = self._env(xs, k * t)
            vals.append(tensors.evaluate(self.c.f, env, like).reshape(k, t, *self.c.f.shape))
            if base is not None:
                moved = degeneracy.branches(self.kinks, env, like)
                assert moved is not None
                same.append((moved.reshape(k, t, -1) == base.unsqueeze(0)).all(dim=-1))
        return torch.cat(vals), (torch.cat(same) if base is not None else None)

    def _base_pieces(self) -> Any | None:
        """The pieces of f's kink sites at x ([T, P]; see degeneracy.branches), computed once;
        None when no kink site says what its pieces are."""
        if not self.kinks:
            return None
        if self._pieces is None:
            env, like = self._env(dict(self.x), self.trials)
            self._pieces = (degeneracy.branches(self.kinks, env, like),)
        return self._pieces[0]

    @torch.no_grad()
    def claim(self, claim: Claim, bound: Bound, direction: Any | None = None) -> Any:
        kind = KINDS[claim.kind]
        if kind.claimed_by_autograd:
            return self.gradient(claim.var, kind.converter(torch, self.c.identity, claim.var))
        env, like = self._env(dict(self.x), self.trials)
        if KINDS[claim.kind].uses_direction:
            env["d" + claim.var] = self.d[claim.var] if direction is None else direction
            # and the lets that use the direction, as the autograd path computes them
            tensors.with_lets(self.c.direction_lets.get(claim.var, ()), env, like)
        return tensors.evaluate(bound, env, like)


    def gradient(self, var: str, convert: Convert | None) -> Any:
        """Autograd's gradient of f with respect to ``var`` at the point, float64 (computed
        once per variable), in the convention ``convert`` gives."""
        if var not in self._gradients:
            with torch.enable_grad():
                xs = {k: v.detach().requires_grad_(k == var) for k, v in self.x.items()}
                env, like = self._env(xs, self.trials)
                out = tensors.evaluate(self.c.f, env, like).reshape(self.trials)
                g = None
                if out.requires_grad:
                    (g,) = torch.autograd.grad(out.sum(), [xs[var]], allow_unused=True)
            g = torch.zeros_like(self.x[var]) if g is None else g.detach()
            self._gradients[var] = convert(g) if convert is not None else g
        return self._gradients[var]


# ---- what the witnesses cost, decided before they run -----------------------------------------


def _width(compiled: Compiled) -> int:
    """Elements of the largest tensor one evaluation of f creates, per trial (as Evaluator)."""
    return max([compiled.f.max_numel] + [b.max_numel for _, b in compiled.lets])


def evaluations(
    kind: str | ClaimKind, shape: Shape, name: str, complex_var: bool = False
) -> int:
    """Evaluations of f per trial that witness ``name`` makes for one claim of ``kind`` (a
    name, or the kind object of a claim: ``kind_of``; about a complex variable if
    ``complex_var``)."""
    # Both also measure f's rounding noise at the point: f and NOISE_RUNS perturbed runs.
    noise = tensors.NOISE_RUNS + 1
    if name == "fd":
        # and f at the point (second differences)
        return fd_evals(kind, shape, complex_var) + 1 + noise
    if name == "taylor":
        order = (KINDS[kind] if isinstance(kind, str) else kind).taylor_order
        moves = 4 if order == "second" else 1
        steps = len(TAYLOR_STEPS[order]) + len(TAYLOR_TINY)
        return TAYLOR_DIRECTIONS * (moves * steps + 1) + noise
    return 0  # autograd: counted by the check itself


def witness_work(compiled: Compiled, witnesses: tuple[str, ...], trials: int) -> int:
    """Estimated work of the witnesses other than autograd, over every claim and trial."""
    per = max(1, CHUNK_ELEMENTS // max(1, trials * _width(compiled)))
    work = 0
    kinked = any(s.sensitive == "kink" for s in degeneracy.sites(compiled))
    ident = compiled.identity
    for claim, _ in compiled.claims:
        var = ident.vars[claim.var]
        complex_var = DOMAINS[var.domain].complex
        # each moved point of a variable whose domain retracts it (Evaluator._retracted): an
        # SVD, about a QR of its larger side
        retract = sum(
            budget.QR * max(v.shape) ** 3
            for v in (ident.vars[n] for n in claim.vars)
            if ident.directions == "tangent" and DOMAINS[v.domain].retract is not None and v.shape
        )
        for name in for_claim(claim.kind, witnesses):
            evals = evaluations(kind_of(claim, ident), var.shape, name, complex_var)
            if name == "taylor" and kinked:
                evals *= 2  # the kink sites at each point (f_and_pieces_along_each)
            if evals:
                chunks = -(-evals // per)
                work += budget.evaluations_work(evals, trials, compiled.estimate, chunks)
                work += evals * trials * retract
    return work


def check_budget(
    compiled: Compiled, witnesses: tuple[str, ...], trials: int, limits: Limits
) -> None:
    """Refuse, before anything runs, witnesses whose work would exceed the work budget."""
    extra = tuple(
        w for w in ORDER if w != "autograd" and any(
            w in for_claim(c.kind, witnesses) for c, _ in compiled.claims
        )
    )
    if extra:
        work = witness_work(compiled, extra, trials)
        names = " and ".join(NAMES[w] for w in extra)
        budget.check_extra_work(names, work, compiled.estimate, limits)


# ---- finite differences ---------------------------------------------------------------------


def fd_evals(kind: str | ClaimKind, shape: Shape, complex_var: bool = False) -> int:
    """Evaluations of f per trial that the finite-difference witness needs (two step sizes),
    for a variable of ``shape`` (complex if ``complex_var``); ``kind`` a name, or the kind
    object of a claim (``kind_of``)."""
    n = numel(shape)
    k = KINDS[kind] if isinstance(kind, str) else kind
    factor = k.fd_complex_factor if complex_var else 1
    return 2 * k.fd_points(n) * factor


def finite_differences(
    ev: Evaluator, claim: Claim, convert: Convert | None, limits: Limits
) -> tuple[Any, Any]:
    """The finite-difference value of the claim's quantity and its error estimate (rounding
    and truncation), both [T, *shape] float64."""
    value, slack, _, _ = _finite_differences(ev, claim, convert, limits)
    return value, slack


def _finite_differences(
    ev: Evaluator, claim: Claim, convert: Convert | None, limits: Limits
) -> tuple[Any, Any, Any, Any]:
    """As :func:`finite_differences`, and two more [T, *shape]: the rounding noise alone
    (what the rounding of f at the steps makes of the difference quotient, its noise floor)
    and the change of f over the steps, in the same units."""
    shape = tuple(ev.x[claim.var].shape[1:])
    kind = kind_of(claim, ev.c.identity)
    needed = fd_evals(kind, shape, ev.x[claim.var].is_complex())
    if needed > limits.max_fd_evals:
        raise LimitError(
            f"{claim.label}: finite differences need {needed} evaluations of f per trial, over "
            f"the limit max_fd_evals={limits.max_fd_evals} (raise it with --limit "
            f"max_fd_evals=N, or use the Taylor test, which needs a handful)"
        )

    def one(ev: Evaluator, var: str, scale: float) -> tuple[Any, Any, Any]:
        return kind.fd_estimate(torch, ev, var, scale)

    # Two step sizes h and h/q: their Richardson combination cancels the h^2 error term, and
    # their difference estimates what is left (large where f bends on the scale of h, e.g.
    # near a singular matrix: there finite differences cannot judge, and say so by a wide
    # tolerance rather than by a false disagreement).
    q = kind.fd_ratio
    coarse, slack_c, change_c = one(ev, claim.var, 1.0)
    fine, slack_f, change_f = one(ev, claim.var, 1.0 / q)
    change = torch.maximum(change_c, change_f)
    w = q * q
    value = (w * fine - coarse) / (w - 1)
    noise = (w * slack_f + slack_c) / (w - 1)
    slack = noise + (fine - coarse).abs()
    if convert is not None:
        value, slack = convert(value), convert(slack).abs()
        noise, change = convert(noise).abs(), convert(change).abs()
    return value, slack, noise, change


def fd_blind(
    value: Any, claimed: Any, noise: Any, change: Any
) -> tuple[int, float, float] | None:
    """The first trial on which finite differences cannot judge the claim, with its noise
    floor and its signal; None when they can judge every trial.

    The signal of a trial is its largest entry of the finite-difference value, of the claim,
    or of the change of f over a step (one-sided, in the same units: it shows f moving at
    second order where the derivative itself is zero, as for Q^T Q along a tangent of the
    orthogonal group); the noise floor is the largest rounding noise of the difference
    quotient. Where the noise is not :data:`FD_NOISE_MARGIN` times below the signal, f is
    rounded too coarsely at the step (a large constant added to f, a small difference of
    large terms) for differences to see the claim at all: a wrong claim would fit inside the
    noise. A trial with no noise at all (f computed exactly) is judged.
    """
    t = value.shape[0]
    val, cl = tensors.per_trial(value, claimed)
    signal = torch.maximum(val.abs(), cl.abs()).amax(dim=1)
    signal = torch.maximum(signal, torch.nan_to_num(change.reshape(t, -1), nan=0.0).amax(dim=1))
    floor = noise.reshape(t, -1).amax(dim=1)
    blind = ~(floor * FD_NOISE_MARGIN < signal) & (floor > 0)
    if not bool(blind.any()):
        return None
    trial = int(torch.nonzero(blind).flatten()[0])
    return trial, float(floor[trial]), float(signal[trial])


# ---- the Taylor test ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Blind:
    """A trial the Taylor test cannot judge: f's rounding noise swallows the change of f
    (``floor``, ``signal`` at the largest step), or the remainder may still be settling
    towards its slope when it reaches that noise (``slopes``: its first and last local
    slope, NaN where only two steps rose above the noise; ``fit``: the fitted slope)."""

    trial: int
    floor: float = 0.0
    signal: float = 0.0
    slopes: tuple[float, float] | None = None  # NaN: fitted on two steps
    fit: float = math.nan
    kinked: bool = False  # every step of every trial crosses a kink of f

    def message(self) -> str:
        if self.kinked:
            return (
                f"the Taylor test {CANNOT_JUDGE}: on every trial too many of its steps move a "
                f"kink of f (relu, abs, a max, a comparison ...) onto another piece, where f's "
                f"change says nothing about the claim; the draws lie closer to a kink than the "
                f"steps: use autograd"
            )
        if self.slopes is not None and math.isnan(self.slopes[0]):
            return (
                f"the Taylor test {CANNOT_JUDGE}: on trial {self.trial} the remainder rose above "
                f"the rounding noise of f at two steps only, with slope {self.fit:.2f}: too few "
                f"to tell a wrong claim (slope 1) from a right one still settling towards its "
                f"slope; f curves on a scale finer than the steps there, or is rounded coarsely"
            )
        if self.slopes is not None:
            a, b = self.slopes
            return (
                f"the Taylor test {CANNOT_JUDGE}: on trial {self.trial} the remainder's slope "
                f"was still rising as the step shrank ({a:.2f} then {b:.2f}) when it reached "
                f"the rounding noise of f; f curves on a scale finer than the steps there (a "
                f"saturated tanh or sigmoid), so the remainder never showed its final slope"
            )
        return (
            f"the Taylor test {CANNOT_JUDGE}: on trial {self.trial} the change of f over the "
            f"largest step, measured or predicted by the claim ({self.signal:.3g}), is not "
            f"{TAYLOR_SIGNAL_MARGIN:g} times above the rounding noise of f there "
            f"({self.floor:.3g}), nor does the remainder rise above it at two steps or more; f "
            f"is rounded too coarsely (a large constant or large cancelling terms in f): use "
            f"autograd"
        )



def taylor(
    ev: Evaluator, claim: Claim, bound: Bound, convention: str | None, rtol: float = 0.0
) -> tuple[list[float | None], bool, Blind | None]:
    """Per trial: the fitted slope (None where the remainder stays at rounding level);
    whether every trial had a finite f at some step (False: the test is undefined); and the
    first trial the test cannot judge, with its noise floor and signal at the largest step
    (None: it can judge every trial).

    A trial without a slope is judged (f affine, or quadratic, along the directions, and the
    claim right) only where the change of f over the largest step, measured or predicted by
    the claim, stands above the rounding noise of f there in some direction; where it does
    not, the remainder is at rounding level because f's rounding swallows everything (a large
    constant added to f), and the test cannot judge.

    Each trial is probed along :data:`TAYLOR_DIRECTIONS` directions and keeps the steepest
    slope: along one direction the second-order term can be tiny, so that the remainder
    changes sign inside the range of steps and the fit is meaningless; a wrong claim is wrong
    along every direction, so the steepest slope still shows it.
    """
    var = claim.var
    x = ev.x[var]
    gen = torch.Generator().manual_seed(ev.seed)
    kind = kind_of(claim, ev.c.identity)

    def draw() -> Any:
        return kind.taylor_draw(torch, ev, var, gen, convention)

    runs = []
    for k in range(TAYLOR_DIRECTIONS):
        v, u = kind.taylor_directions(ev, var, k, draw)
        runs.append(_remainders(ev, claim, bound, convention, v, u, rtol))
    # The rounding noise of f near x does not depend on the direction: pool it.
    noise = torch.stack([n for _, _, n, _, _ in runs]).amax(dim=0)
    # Per trial, for the trials that show no slope: some direction where f's change over the
    # largest step clearly beats the noise while the remainder stays at rounding level at every
    # step (f affine along it, claim right: agrees); or one where the remainder beats the
    # noise at a single step only (too little to fit a slope: cannot judge).
    affine = torch.zeros(x.shape[0], dtype=torch.bool)
    single = torch.zeros(x.shape[0], dtype=torch.bool)
    first_floor = torch.zeros(x.shape[0], dtype=torch.float64)
    first_signal = torch.zeros(x.shape[0], dtype=torch.float64)
    main = TAYLOR_STEPS[kind.taylor_order]
    log_h = torch.log(torch.tensor(main, dtype=torch.float64))
    best: list[float | None] = [None] * x.shape[0]
    # Per trial, the low slopes (under taylor_pass) and whether each was still rising
    # towards the smallest step (see TAYLOR_RISE).
    low: list[list[tuple[float, float, float]]] = [[] for _ in range(x.shape[0])]
    defined = True
    # Per trial: whether some direction has a main step that stays on f's pieces (a trial
    # whose every step crosses a kink of f is not judged here: autograd judges it)
    on_piece = torch.zeros(x.shape[0], dtype=torch.bool)
    lost = torch.zeros(x.shape[0], dtype=torch.bool)  # some step of the trial crossed one
    for r, floor, _, signal, crossed in runs:
        r, floor, signal, crossed = (
            r.cpu(), torch.maximum(floor, TAYLOR_NOISE_MARGIN * noise).cpu(), signal.cpu(),
            crossed.cpu(),
        )
        first_floor = torch.maximum(first_floor, torch.nan_to_num(floor[0], nan=0.0))
        first_signal = torch.maximum(first_signal, torch.nan_to_num(signal[0], nan=0.0))
        finite = torch.isfinite(r)
        defined = defined and bool(finite.any(dim=0).all())
        kept = finite & ~crossed
        on_piece |= kept.any(dim=0)
        lost |= (finite & crossed).any(dim=0)
        usable = kept & (r > floor)
        count = usable.sum(dim=0)
        heard = signal[0] > TAYLOR_SIGNAL_MARGIN * floor[0]  # strict: 0 > 0 is silence
        affine |= heard & (count == 0) & kept.any(dim=0)
        single |= count == 1
        for trial in range(x.shape[0]):
            idx = torch.nonzero(usable[:, trial]).flatten()[-3:]
            if idx.numel() < 2:
                continue
            lx, ly = log_h[idx], torch.log(r[idx, trial])
            if idx.numel() == 3 and kind.taylor_pass:
                local = ((ly[1:] - ly[:-1]) / (lx[1:] - lx[:-1])).tolist()
            else:
                local = []
            lx, ly = lx - lx.mean(), ly - ly.mean()
            slope = float((lx * ly).sum() / (lx * lx).sum())
            if slope < kind.taylor_pass:
                low[trial].append((slope, *local) if local else (slope, math.nan, math.nan))
            old = best[trial]
            best[trial] = slope if old is None else max(old, slope)
    # A trial without a slope that lost steps to kinks (too few left to fit one) is not
    # judged here, and does not make the whole test blind: autograd judges it.
    skipped = [
        i for i, s in enumerate(best) if s is None and not bool(affine[i]) and bool(lost[i])
    ]
    if defined and len(skipped) == x.shape[0]:
        return best, defined, Blind(0, kinked=True)
    deaf = [
        i for i, s in enumerate(best) if s is None and not bool(affine[i]) and not bool(lost[i])
    ]
    blind: Blind | None = None
    if deaf and ev.reads(var):
        i = deaf[0]
        if bool(single[i]) or bool(first_floor[i] > 0):
            blind = Blind(i, float(first_floor[i]), float(first_signal[i]))
    for i, s in enumerate(best):
        if blind is None and s is not None and s < kind.taylor_pass and _settling(low[i]):
            # Every low slope of the trial was still rising towards the smallest step when
            # the remainder reached the noise floor: f curves on a scale finer than the steps
            # (a saturating tanh or sigmoid at large inputs), and the remainder had not yet
            # reached its asymptotic slope. Not a disagreement: the test cannot judge.
            fit, a, b = low[i][0]
            blind = Blind(i, slopes=(a, b), fit=fit)
        if s is not None and s < kind.taylor_pass and _settling(low[i]):
            best[i] = None  # not judged
    return best, defined, blind


def _settling(low: list[tuple[float, float, float]]) -> bool:
    """Whether a trial's low slopes (fit, first and last local slope of its three points)
    may be a right claim's remainder still settling, rather than a wrong claim's: each one
    either rose towards the smallest step by more than :data:`TAYLOR_RISE`, to above
    :data:`TAYLOR_SETTLING`, or was fitted on two points only (no trend to tell by).

    A right claim's remainder ``|a h^2 + b h^3|`` rises towards slope 2 as the step shrinks
    (from below where a and b have opposite signs). A wrong claim's ``|e h + a h^2|`` falls
    towards slope 1 from above, or rises towards it from below (a and e of opposite signs):
    its local slopes never rise above 1, and where three steps show it, it is judged."""
    return bool(low) and all(
        math.isnan(a) or (b - a > TAYLOR_RISE and b > TAYLOR_SETTLING) for _, a, b in low
    )


def _remainders(
    ev: Evaluator,
    claim: Claim,
    bound: Bound,
    convention: str | None,
    v: Any,
    u: Any | None,
    rtol: float = 0.0,
) -> tuple[Any, Any, Any, Any, Any]:
    """Along one direction: the remainders [K, T] at the main steps, their rounding floor
    from the size of the terms [K, T], the largest remainder at the tiny steps [T], the
    signal [K, T] at the main steps (the larger of the measured and the predicted change),
    and the main steps that cross a kink of f [K, T] (their remainders say nothing)."""
    if claim.var2 is not None:
        return _mixed_remainders(ev, claim, bound, convention, v, u, rtol)
    var = claim.var
    x = ev.x[var]
    t = x.shape[0]
    v = v / tensors.rows(v.reshape(t, -1).norm(dim=1).clamp(min=1e-300), v)
    xscale = x.reshape(t, -1).abs().amax(dim=1).clamp(min=1.0)
    main = TAYLOR_STEPS[KINDS[claim.kind].taylor_order]
    steps = torch.tensor(main + TAYLOR_TINY, dtype=torch.float64, device=x.device)
    hs = steps.unsqueeze(1) * xscale.unsqueeze(0)  # [K, T]
    k = steps.shape[0]
    if u is not None:
        u = u / tensors.rows(u.reshape(t, -1).norm(dim=1).clamp(min=1e-300), u)
        moves = [u + v, u - v, -u + v, -u - v]
    else:
        moves = [v]

    disp = hs.reshape(k, t, *([1] * (x.dim() - 1)))  # [K, T, 1...]
    stacked = torch.stack(moves)  # [moves, T, ...]

    def points(start: int, stop: int) -> Any:
        # built chunk by chunk, one point at a time: all K * moves points at once would be that
        # many copies of x, and a gather over the chunk as many again
        moved = [torch.addcmul(x, disp[i % k], stacked[i // k]) for i in range(start, stop)]
        return torch.stack(moved)

    vals, same = ev.f_and_pieces_along_each(k * len(moves), lambda a, b: {var: points(a, b)})
    vals = vals.reshape(len(moves), k, t, -1)
    count = 2 if u is None else len(moves)  # values of f in one remainder
    return _remainder_parts(
        ev, claim, bound, convention, vals, hs, v, u, rtol, ev.reads(var), count, same
    )


def _mixed_remainders(
    ev: Evaluator,
    claim: Claim,
    bound: Bound,
    convention: str | None,
    v: Any,
    u: Any | None,
    rtol: float = 0.0,
) -> tuple[Any, Any, Any, Any, Any]:
    """As :func:`_remainders`, for a claim about two variables: ``u`` moves the first, ``v``
    the second, at the points (x +- h u, y +- h v), whose mixed second difference is
    4 h^2 u^T H v."""
    assert u is not None and claim.var2 is not None
    var, var2 = claim.var, claim.var2
    x, y = ev.x[var], ev.x[var2]
    t = x.shape[0]
    u = u / tensors.rows(u.reshape(t, -1).norm(dim=1).clamp(min=1e-300), u)
    v = v / tensors.rows(v.reshape(t, -1).norm(dim=1).clamp(min=1e-300), v)
    scale = torch.maximum(
        x.reshape(t, -1).abs().amax(dim=1), y.reshape(t, -1).abs().amax(dim=1)
    ).clamp(min=1.0)
    main = TAYLOR_STEPS[kind_of(claim, ev.c.identity).taylor_order]
    steps = torch.tensor(main + TAYLOR_TINY, dtype=torch.float64, device=x.device)
    hs = steps.unsqueeze(1) * scale.unsqueeze(0)  # [K, T]
    k = steps.shape[0]
    signs = ((1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0))  # the order taylor_remainder reads

    def points(start: int, stop: int) -> dict[str, Any]:
        xs, ys = [], []
        for i in range(start, stop):
            a, b = signs[i // k]
            h = hs[i % k]
            xs.append(x + a * tensors.rows(h, x) * u)
            ys.append(y + b * tensors.rows(h, y) * v)
        return {var: torch.stack(xs), var2: torch.stack(ys)}

    vals, same = ev.f_and_pieces_along_each(k * len(signs), points)
    vals = vals.reshape(len(signs), k, t, -1)
    reads = ev.reads(var) or ev.reads(var2)
    return _remainder_parts(
        ev, claim, bound, convention, vals, hs, v, u, rtol, reads, len(signs), same
    )


def _remainder_parts(
    ev: Evaluator,
    claim: Claim,
    bound: Bound,
    convention: str | None,
    vals: Any,
    hs: Any,
    v: Any,
    u: Any | None,
    rtol: float,
    reads: bool,
    count: int,
    same: Any | None,
) -> tuple[Any, Any, Any, Any, Any]:
    """What :func:`_remainders` returns, from f at the moved points ``vals``
    [moves, K, T, -1] at the steps ``hs`` [K, T]; ``reads``: whether f reads a moved variable;
    ``count``: the values of f in one remainder; ``same``: whether each point is on the
    pieces of f's kinks that x is on ([moves * K, T]; None: no kinks)."""
    k, t = hs.shape
    f0 = ev.f().reshape(1, t, -1)
    kind = kind_of(claim, ev.c.identity)
    rem, terms, pred, size = kind.taylor_remainder(
        torch, ev, claim, bound, convention, vals, f0, hs, v, u
    )
    r_all = rem.norm(dim=-1)  # [K, T]
    crossed = torch.zeros(k, t, dtype=torch.bool, device=hs.device)
    if same is not None:
        # A step that moves a kink site of f onto another piece (relu's argument changes
        # sign, another entry becomes the max): f's remainder there is not the claim's.
        crossed = ~same.reshape(vals.shape[0], k, t).all(dim=0)
    main = TAYLOR_STEPS[kind.taylor_order]
    km = len(main)
    noise = torch.nan_to_num(r_all[km:], nan=0.0).amax(dim=0)
    if reads:
        # The remainder at the tiny steps shows the rounding of f only where it happens to
        # round differently there; f's measured noise (Monte Carlo arithmetic) at each of the
        # remainder's points bounds it however f rounds.
        measured = ev.f_noise().reshape(t, -1).norm(dim=-1) * count
        noise = torch.maximum(noise, measured * (TAYLOR_MEASURED_MARGIN / TAYLOR_NOISE_MARGIN))
    # the signal: the change of f over the step, at any of the moved points, or as the claim
    # predicts it (a right zero claim of an f that moves is heard through the first)
    moved = (vals[:, :km] - f0.unsqueeze(0)).norm(dim=-1).amax(dim=0)  # [K, T]
    signal = torch.maximum(moved, pred[:km].norm(dim=-1))
    # A remainder within rtol of the predicted change is an error the check itself allows
    # (the claim is right to rtol, entry by entry): it is not evidence of a wrong claim.
    floor = torch.maximum(
        TAYLOR_FLOOR * terms[:km].norm(dim=-1), rtol * size[:km].norm(dim=-1)
    )
    return r_all[:km], floor, noise, signal, crossed[:km]


def taylor_result(
    claim: Claim,
    slopes: list[float | None],
    defined: bool,
    blind: Blind | None = None,
) -> WitnessResult:
    kind = KINDS[claim.kind]
    expected = kind.taylor_expected
    need = kind.taylor_pass
    if not defined:
        return WitnessResult(
            "taylor", "undefined", expected_slope=expected,
            message="f is NaN/Inf at every step of the Taylor test on some trial",
        )
    known = [(s, i) for i, s in enumerate(slopes) if s is not None]
    if blind is not None and not any(s < need for s, _ in known):
        return WitnessResult(
            "taylor", "undefined", expected_slope=expected, message=blind.message()
        )
    if not known:
        return WitnessResult(
            "taylor", "agrees", expected_slope=expected,
            message="the remainder is at rounding level for every step (f is "
            + kind.taylor_exact
            + " along the directions)",
        )
    slope, trial = min(known)
    verdict = "agrees" if slope >= need else "disagrees"
    return WitnessResult(
        "taylor",
        verdict,
        slope=slope,
        expected_slope=expected,
        message=f"slope {slope:.2f} on trial {trial}; a right claim gives {expected:g}, "
        f"a wrong one {expected / 2:g}",
    )


# ---- putting the witnesses together ---------------------------------------------------------

Compare = Callable[..., ClaimResult]


def judge(
    *,
    witnesses: tuple[str, ...],
    compiled: Compiled,
    draw: tuple[dict[str, Any], dict[str, Any]],
    device: str,
    claim: Claim,
    bound: Bound,
    expected: Shape,
    truth: Any,
    value: Any,
    autograd: ClaimResult,
    convention: str | None,
    convert: Convert | None,
    rtol: float,
    atol: float,
    limits: Limits,
    compare: Compare,
    seed: int = 0,
) -> tuple[ClaimResult, Any, Any]:
    """Judge a claim by every witness. Returns the result, and the reference value and the
    claim value that a diagnosis should use (both None unless the claim failed, or with the
    Taylor test alone, which has no reference value).

    The verdict: passed if every witness agrees with the claim; failed if every witness
    disagrees (and autograd and finite differences agree with each other); otherwise error,
    naming the pair that disagrees, since no verdict would be trustworthy.
    """
    ev = Evaluator(compiled, draw, device, seed)
    value64 = ev.claim(claim, bound)
    if not bool(torch.isfinite(value64).all()) and autograd.status == "error":
        return autograd, None, None  # the claim itself is NaN/Inf: nothing to weigh
    results: dict[str, WitnessResult] = {}
    primary: ClaimResult | None = None
    reference = None
    fd_value = None
    if "autograd" in witnesses:
        undefined = autograd.status == "error"
        results["autograd"] = WitnessResult(
            "autograd",
            "undefined"
            if undefined
            else ("agrees" if autograd.status == "passed" else "disagrees"),
            max_abs_err=autograd.max_abs_err,
            message="autograd gives NaN/Inf at the point" if undefined else "",
        )
        primary, reference = autograd, truth
    if "fd" in witnesses:
        fd_value, slack, noise, change = _finite_differences(ev, claim, convert, limits)
        tol = max(rtol, KINDS[claim.kind].fd_tol)
        slack = slack + _fd_floor(fd_value, max(atol, tol))
        fd_res = compare(claim, fd_value, value64, expected, tol, max(atol, tol), slack=slack)
        fd_res.convention = convention
        undefined = fd_res.status == "error"
        message = "finite differences give NaN/Inf at the point" if undefined else ""
        # A mismatch beyond the noise is a real one; an agreement inside the noise is none.
        blind = None
        if fd_res.status == "passed" and ev.reads(claim.var):
            blind = fd_blind(fd_value, value64, noise, change)
        if blind is not None:
            undefined, (trial, floor, signal) = True, blind
            message = (
                f"finite differences {CANNOT_JUDGE}: on trial {trial} the rounding noise of f "
                f"at the step ({floor:.3g} in the difference quotient) is not "
                f"{FD_NOISE_MARGIN:g} times below the claim, the difference or the change of f "
                f"over the step ({signal:.3g}); "
                f"f is rounded too coarsely there (a large constant or large cancelling terms "
                f"in f): use autograd"
            )
        results["fd"] = WitnessResult(
            "fd",
            "undefined" if undefined else ("agrees" if fd_res.status == "passed" else "disagrees"),
            max_abs_err=fd_res.max_abs_err,
            message=message,
        )
        if primary is None:
            primary, reference = _as_fd(fd_res), fd_value
    if "taylor" in witnesses:
        slopes, defined, blind_t = taylor(ev, claim, bound, convention, rtol)
        results["taylor"] = taylor_result(claim, slopes, defined, blind_t)
        if convention in ("frobenius", "free") and results["taylor"].verdict == "agrees":
            # Symmetric directions only see the symmetric part (free: the upper triangle) of
            # the claim; a gradient in these conventions is symmetric, so check that too.
            if not _symmetric(tensors.fill_like(value64, ev.x[claim.var]), rtol, atol):
                results["taylor"].verdict = "disagrees"
                results["taylor"].message = (
                    f"the claim is not symmetric, but a {convention} gradient is (the Taylor "
                    f"test pairs it with symmetric directions, which see only part of it)"
                )
        if primary is None:
            primary = _taylor_only(claim, results["taylor"], rtol, atol, convention)
    assert primary is not None
    autograd_vs_fd = None
    if "autograd" in results and "fd" in results and "undefined" not in (
        results["autograd"].verdict,
        results["fd"].verdict,
    ):
        tol = max(rtol, KINDS[claim.kind].fd_tol)
        autograd_vs_fd = compare(
            claim, fd_value, tensors.cast(truth, torch.float64, truth.device), expected, tol,
            max(atol, tol), slack=slack,
        )
    res = primary
    res.witnesses = [results[w] for w in witnesses]
    # A witness that cannot judge (its noise floor is above the signal) abstains, as long as
    # another one judged; alone, it makes the claim an error that says why.
    judged = {n: w for n, w in results.items() if not _blind(w)} or results
    status, agreement = _combine(judged, autograd_vs_fd)
    if agreement == "autograd vs fd" and autograd_vs_fd is not None and autograd_vs_fd.worst:
        # The entry worth looking at is where autograd and finite differences part.
        w = autograd_vs_fd.worst
        claimed_all = tensors.fill_like(value64, fd_value).reshape(value64.shape[0], -1)
        entry = claimed_all[w.trial, ravel(w.index, expected)]
        claimed = complex(entry) if entry.is_complex() else float(entry)
        res.worst = Worst(w.trial, w.index, w.claimed, claimed)
    res.agreement = agreement
    res.message = _message(claim, res, status, agreement, judged, autograd_vs_fd)
    res.status = status
    if status != "failed" or reference is None:
        return res, None, None
    return res, reference, value if "autograd" in witnesses else value64


def _blind(w: WitnessResult) -> bool:
    """Whether ``w`` could not judge because the rounding noise of f swallowed the signal."""
    return w.verdict == "undefined" and CANNOT_JUDGE in w.message


def _fd_floor(fd_value: Any, atol: float) -> Any:
    """The absolute floor that finite differences are still compared with, ``atol`` up to
    1 (``atol * max(1, top)`` in all, ``top`` the trial's largest entry): the rounding of f at
    the step is not estimated, so their error is not yet known in relative terms."""
    t = fd_value.shape[0]
    top = fd_value.detach().reshape(t, -1).abs().amax(dim=1)
    floor = (1.0 - top).clamp_min(0.0).nan_to_num(nan=0.0) * atol
    return floor.reshape(t, *([1] * (fd_value.dim() - 1)))


def _symmetric(c: Any, rtol: float, atol: float) -> bool:
    """Whether every trial of ``c`` [T, n, n] equals its transpose by the check's tolerance."""
    t = c.shape[0]
    err = (c - c.transpose(-1, -2)).abs().reshape(t, -1)
    return bool((err <= tensors.tolerance(c.abs().reshape(t, -1), rtol, atol)).all())


def _as_fd(res: ClaimResult) -> ClaimResult:
    if res.status == "failed" and res.worst is not None:
        w = res.worst
        res.message = (
            f"{res.label} mismatched finite differences on trial {w.trial}: max abs err "
            f"{res.max_abs_err:.3g} at {w.index} (claimed {fmt_number(w.claimed, '.4g')}, finite "
            f"differences {fmt_number(w.autograd, '.4g')}); tol rtol={res.rtol:g} atol={res.atol:g}"
        )
    return res


def _taylor_only(
    claim: Claim, w: WitnessResult, rtol: float, atol: float, convention: str | None
) -> ClaimResult:
    res = ClaimResult(claim.kind, claim.subject, "passed", line=claim.line, rtol=rtol, atol=atol)
    res.convention = convention
    if w.verdict == "disagrees":
        res.status = "failed"
        res.message = f"{claim.label} fails the Taylor test: {w.message}"
    return res


def _combine(
    results: dict[str, WitnessResult], autograd_vs_fd: ClaimResult | None
) -> tuple[str, str | None]:
    verdicts = {name: w.verdict for name, w in results.items()}
    several = len(verdicts) > 1
    af_split = autograd_vs_fd is not None and autograd_vs_fd.status != "passed"
    if all(v == "agrees" for v in verdicts.values()):
        return "passed", "all agree" if several else None
    first = next(iter(verdicts))
    if all(v == "disagrees" for v in verdicts.values()) and not af_split:
        return "failed", f"claim vs {first}" if several else None
    if not several:
        return "error", None
    if af_split or (
        "autograd" in verdicts and "fd" in verdicts and verdicts["autograd"] != verdicts["fd"]
    ):
        return "error", "autograd vs fd"
    names = list(verdicts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if verdicts[a] != verdicts[b]:
                return "error", f"{a} vs {b}"
    return "error", None  # all undefined: no witness could judge


def _message(
    claim: Claim,
    res: ClaimResult,
    status: str,
    agreement: str | None,
    results: dict[str, WitnessResult],
    autograd_vs_fd: ClaimResult | None,
) -> str:
    if status == "passed":
        return ""
    if status == "failed":
        others = [n for n in results if n != next(iter(results))]
        if not others:
            return res.message
        said = " and ".join(
            NAMES[n] + (f" ({results[n].message})" if n == "taylor" else "") for n in others
        )
        verb = "confirms" if len(others) == 1 and others[0] not in PLURAL else "confirm"
        return f"{res.message}; {said} {verb} that the claim is wrong"
    if res.status == "error" and len(results) == 1:
        return res.message
    if len(results) == 1:  # the one witness cannot judge: say why
        (name, w), = results.items()
        return f"{claim.label}: " + (w.message or f"{NAMES[name]} is undefined at the point")
    if all(w.verdict == "undefined" for w in results.values()):
        why = [w.message or f"{NAMES[n]} is undefined at the point" for n, w in results.items()]
        return f"{claim.label}: no witness can judge: " + "; ".join(why)
    parts = []
    for name, w in results.items():
        if w.verdict == "undefined":
            parts.append(w.message or f"{NAMES[name]} is undefined at the point")
            continue
        detail = ""
        if w.slope is not None or name == "taylor":
            detail = f" ({w.message})"
        elif w.max_abs_err is not None:
            detail = f" (max abs err {w.max_abs_err:.3g})"
        verb = w.verdict.removesuffix("s") if name in PLURAL else w.verdict
        parts.append(f"{NAMES[name]} {verb} with the claim{detail}")
    text = f"{claim.label}: the witnesses disagree ({agreement}): " + "; ".join(parts)
    if agreement == "autograd vs fd":
        split = autograd_vs_fd
        if split is not None and split.worst is not None and split.status == "failed":
            worst = split.worst
            text += (
                f"; autograd and finite differences differ by {split.max_abs_err:.3g} "
                f"at {worst.index} on trial {worst.trial} (autograd "
                f"{fmt_number(worst.claimed, '.4g')}, finite differences "
                f"{fmt_number(worst.autograd, '.4g')})"
            )
        text += (
            ": autograd itself is wrong here, or f is not differentiable at the sampled point"
        )
        if results.get("fd") and results["fd"].verdict == "agrees" and (
            "taylor" not in results or results["taylor"].verdict == "agrees"
        ):
            text += "; to check without autograd, use witness: [fd, taylor]"
    return text
