"""The engine: sample the variables, compute the truth with autograd, evaluate each claim,
compare. All trials of one identity run as one batch (a leading trial dimension), so one
forward and one backward pass serve every draw.

The engine never prints and never exits: a mismatch is a :class:`ClaimResult` with status
``failed``; an identity that cannot be evaluated is an ``error`` result; the caller decides
what to show.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# torch warns at import when NumPy is absent; matgrad does not use NumPy. The filter lasts
# for the import only: the process's own warning filters are left as they were.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch

from matgrad._version import __version__
from matgrad.claims import KINDS, kind_of
from matgrad.engine import degeneracy, diagnose, repair, tensors, userfn, witness
from matgrad.errors import EvalError, LimitError, MatgradError, SpecError
from matgrad.lang import domains
from matgrad.lang.expr import Bound
from matgrad.lang.functions import Shape, fmt_shape, is_scalar, numel
from matgrad.limits import Limits
from matgrad.results import (
    ClaimResult,
    IdentityResult,
    Number,
    Recheck,
    RunReport,
    Worst,
    fmt_number,
    unravel,
)
from matgrad.settings import CONFIRM_DTYPE, DEFAULT_TOL, Settings
from matgrad.spec.schema import (
    DEFAULT_TRIALS,
    Claim,
    Compiled,
    Identity,
    Invalid,
    compile_identity,
)

# Below this many elements per batch, torch's intra-op threads cost more than they save.
SMALL_WORK = 1 << 16

# A trial on which f, a claim or autograd is NaN/Inf is drawn again, at most once per entry
# here: the entry caps the trial's scale (inf: its own scale, domains.SCALES). Redraws move
# towards the origin, so an f defined near it (log(x + 3)) gets every trial defined on every
# seed.
UNDEFINED_LADDER = (math.inf, math.inf, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1)
# An f undefined on more than this fraction of the first draws at the smallest scale (near the
# origin) is refused at once, on every seed: log(x) or sqrt(x) of a real x (half of them),
# log(x - 3) (all).
UNDEFINED_NEAR = 1 / 8
# With fewer first draws than this at that scale (fewer than 100 trials), the share is measured
# on a probe of this many draws at the smallest scale, so the outcome does not hang on a handful.
UNDEFINED_NEAR_PROBE = 33


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MatgradError("--device cuda was asked for, but CUDA is not available here")
    return device


def identity_seed(seed: int, ident_id: str) -> int:
    """A per-identity seed from the run seed and the id (stable across runs and orderings)."""
    digest = hashlib.sha256(f"{seed}\0{ident_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _trials_for(ident: Identity, settings: Settings) -> int:
    n = settings.trials or ident.trials or DEFAULT_TRIALS
    if n > settings.limits.max_trials:
        raise settings.limits.refuse("max_trials", n, "trials")
    return n


# ---- one identity ---------------------------------------------------------------------------


class _Run:
    """The tensors of one identity's batch."""

    def __init__(
        self,
        compiled: Compiled,
        trials: int,
        seed: int,
        dtype: Any,
        device: str,
        draw: degeneracy.Draw | None = None,
        tally: degeneracy.Tally | None = None,
        perturb: tensors.Perturbation | None = None,
    ):
        self.c = compiled
        self.perturb = perturb  # every intermediate result through it (the noise estimate)
        if draw is None:
            draw = _guarded(compiled, _draw(compiled.identity, trials, seed), seed, dtype, tally)
        xs, ds = draw
        self.draw = draw  # float64 CPU, as drawn (witnesses and `show` start from it)
        self.x = {k: tensors.cast(t, dtype, device) for k, t in xs.items()}
        self.d = {k: tensors.cast(t, dtype, device) for k, t in ds.items()}
        self.trials = trials
        self.like = torch.zeros(trials, dtype=dtype, device=device)
        self._env: dict[str, Any] | None = None

    @property
    def env(self) -> dict[str, Any]:
        """The variables and lets (no directions). Computed once: by the first gradient pass
        when there is one (its lets serve the claims too), else here without autograd."""
        if self._env is None:
            with torch.no_grad():
                self._env = self._with_lets(dict(self.x))
        return self._env

    def _with_lets(self, env: dict[str, Any]) -> dict[str, Any]:
        return tensors.with_lets(self.c.lets, env, self.like, self.perturb)

    def compute(self, bound: Bound, env: dict[str, Any], memo: dict[str, Any] | None = None) -> Any:
        return tensors.evaluate(bound, env, self.like, memo, self.perturb)

    def f(self, env: dict[str, Any]) -> Any:
        return self.compute(self.c.f, env)

    def leaves(self, names: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        wanted = set(names)
        leaves = {k: v.detach().requires_grad_() if k in wanted else v for k, v in self.x.items()}
        return leaves, self._with_lets(dict(leaves))

    def gradients(self, names: list[str]) -> tuple[Any, dict[str, Any]]:
        """f (detached) and its gradients with respect to ``names``, from one forward pass."""
        leaves, env = self.leaves(names)
        if self._env is None:
            self._env = {k: v.detach() if v.requires_grad else v for k, v in env.items()}
        value = self.f(env)
        if value.is_complex():
            raise EvalError(
                "f is complex-valued: it has no gradient (a gradient needs a real f); claim "
                "its differential instead (the change of f along a direction), or make f "
                "real: real(f), imag(f), abs(f)**2"
            )
        out = value.reshape(self.trials)
        grads = torch.autograd.grad(
            out.sum(), [leaves[n] for n in names], allow_unused=True
        ) if out.requires_grad else [None] * len(names)
        return value.detach(), {
            n: g if g is not None else torch.zeros_like(leaves[n])
            for n, g in zip(names, grads, strict=True)
        }

    def f_of(self, xs: dict[str, Any]) -> Any:
        """f at the variables ``xs``, its lets computed from them."""
        return self.f(self._with_lets(dict(xs)))

    def claim_env(self, claim: Claim, direction: Any | None = None) -> dict[str, Any]:
        """The names a claim may use: variables, lets, and for a differential claim its
        direction (``direction``, else the drawn one) and the lets that use it."""
        env = dict(self.env)
        if KINDS[claim.kind].uses_direction:
            with torch.no_grad():
                env["d" + claim.var] = self.d[claim.var] if direction is None else direction
                for name, let in self.c.direction_lets.get(claim.var, ()):
                    env[name] = self.compute(let, env)
        return env

    def claim_value(self, claim: Claim, bound: Bound) -> Any:
        env = self.claim_env(claim)
        with torch.no_grad():
            # No graph here, so a sub-expression the claim repeats is computed once.
            return self.compute(bound, env, memo={})


def _guarded(
    compiled: Compiled, draw: degeneracy.Draw, seed: int, dtype: Any,
    tally: degeneracy.Tally | None,
) -> degeneracy.Draw:
    """``draw`` with its degenerate trials drawn again (the degeneracy guard)."""
    ident = compiled.identity
    trials = next(iter(draw[0].values())).shape[0]
    return degeneracy.guard(
        compiled,
        draw,
        lambda k: _draw(ident, trials, identity_seed(seed, f"redraw {k}")),
        str(dtype).removeprefix("torch."),
        tally,
    )


def _draw_capped(ident: Identity, trials: int, seed: int, cap: float) -> degeneracy.Draw:
    """A fresh batch like :func:`_draw`, each trial's scale at most ``cap``."""
    xs, ds = _draw(ident, trials, seed)
    if math.isinf(cap):
        return xs, ds
    own = domains.trial_scales(torch, trials)
    factor = (cap / own).clamp_(max=1.0)
    return {
        v.name: domains.rescale(torch, v.domain, xs[v.name], factor) for v in ident.vars.values()
    }, ds


def _draw(ident: Identity, trials: int, seed: int) -> degeneracy.Draw:
    gen = torch.Generator().manual_seed(seed)
    # Draw every variable, then every direction, in declaration order: the draws do not
    # depend on which claims an identity makes.
    xs = {
        v.name: domains.sample(torch, v.domain, v.shape, trials, gen, v.rank)
        for v in ident.vars.values()
    }
    # Directions only serve differential claims; drawn after every variable, so leaving them
    # out elsewhere changes no variable's draw.
    ds = {}
    if any(KINDS[c.kind].uses_direction for c in ident.claims):
        tangent = ident.directions == "tangent"
        ds = {
            v.name: domains.direction(torch, v.domain, xs[v.name], gen, tangent)
            for v in ident.vars.values()
        }
    return xs, ds


def _expected_shape(claim: Claim, compiled: Compiled) -> Shape:
    var = compiled.identity.vars[claim.var]
    return kind_of(claim, compiled.identity).expected_shape(var.shape, compiled.f.shape)


def _shapes_agree(claimed: Shape, expected: Shape) -> bool:
    return claimed == expected or (is_scalar(claimed) and is_scalar(expected))


def _first_bad_trial(x: Any) -> int | None:
    if degeneracy.all_finite(x):
        return None
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    idx = torch.nonzero(bad)
    return int(idx[0, 0]) if idx.numel() else None


def _fmt(x: Number) -> str:
    return fmt_number(x, ".4g")


def _item(x: Any) -> Number:
    """One entry as a Python number: complex for a complex tensor."""
    v = x.item()
    return complex(v) if isinstance(v, complex) else float(v)


def compare(
    claim: Claim,
    truth: Any,
    value: Any,
    expected: Shape,
    rtol: float,
    atol: float,
    slack: Any = None,
    noise: Any = None,
) -> ClaimResult:
    """Compare a claimed value with the autograd truth, both batched [T, ...], by the rule of
    ``tensors.tolerance``. ``slack`` ([T, ...]) widens the bound entrywise (the error estimate
    of a finite difference); ``noise`` ([T, entries]) is the estimated rounding noise of each
    entry (see :func:`rounding_noise`)."""
    res = ClaimResult(claim.kind, claim.subject, "passed", line=claim.line, rtol=rtol, atol=atol)
    tr, cl = tensors.per_trial(truth, value)  # a constant scalar claim fills the whole shape
    t = tr.shape[0]
    # |.| of the difference: the modulus for complex entries (the same rule, on the plane)
    err = (cl - tr).abs()
    mag = tr.abs()
    bound = tensors.tolerance(mag, rtol, atol, noise)
    if slack is not None:
        bound = bound + slack.reshape(t, -1).expand_as(bound)
    # 0/0 (an exact entry matched exactly, its bound zero) is no error at all; x/0 stays inf.
    ratio = (err / bound).nan_to_num_(nan=0.0, posinf=math.inf)
    flat = torch.argmax(ratio)
    if math.isinf(float(ratio.reshape(-1)[flat])):
        # Several entries may be over a zero bound: the worst is the one with the largest error.
        flat = torch.argmax(torch.where(torch.isinf(ratio), err, torch.full_like(err, -1.0)))
    # Relative error over the entries with a nonzero autograd value (x/0 and 0/0 left out).
    rel = (err / mag).nan_to_num_(nan=0.0, posinf=0.0)
    # Every number the result needs, read back in one transfer. NaN and Inf propagate into
    # the largest |autograd| and the largest error, so those two also say whether either
    # side had a non-finite entry; which trial it was is looked up only then.
    top_mag, max_abs, max_ratio, max_rel = torch.stack(
        [mag.max(), err.max(), ratio.max(), rel.max()]
    ).tolist()
    claimed, autograd = _item(torch.take(cl, flat)), _item(torch.take(tr, flat))
    if not math.isfinite(top_mag):
        res.status = "error"
        res.message = (
            f"{claim.label}: autograd gives NaN/Inf on trial {_first_bad_trial(truth)}; f is "
            f"not differentiable there: check the domains (e.g. positive for log/sqrt, spd for "
            f"logdet of X.T @ X)"
        )
        return res
    if not math.isfinite(max_abs):
        bad = _first_bad_trial(value)
        if bad is not None:
            res.status = "error"
            res.message = (
                f"{claim.label}: the claim evaluates to NaN/Inf on trial {bad} "
                f"(expression {claim.text!r}); check its domains"
            )
            return res
        # Both sides finite, their difference overflowed: a mismatch like any other.
    # err <= bound everywhere, read from the largest ratio: err / bound <= 1 exactly when
    # err <= bound, and rounds to 1 only within an ulp of the bound.
    ok = max_ratio <= 1.0
    any_nz = top_mag > 0
    trial, k = divmod(int(flat), tr.shape[1])
    res.max_abs_err = max_abs
    res.max_ratio = max_ratio
    res.max_rel_err = max_rel if any_nz else None
    res.worst = Worst(trial, unravel(k, expected), autograd, claimed)
    if ok:
        return res
    res.status = "failed"
    # The figures of the trial the message names (the one `matgrad show --trial` displays),
    # not the largest over every trial, which may be another trial's.
    trial_abs, trial_rel = torch.stack([err[trial].max(), rel[trial].max()]).tolist()
    rel_text = "" if res.max_rel_err is None else f", max rel err {trial_rel:.3g}"
    res.message = (
        f"{claim.label} mismatched on trial {trial} at {res.worst.index}: claimed "
        f"{_fmt(res.worst.claimed)}, autograd {_fmt(res.worst.autograd)} (max abs err "
        f"{trial_abs:.3g}{rel_text} on that trial); tol rtol={rtol:g} atol={atol:g}"
    )
    return res


def _identity_status(expect: str, claims: list[ClaimResult]) -> str:
    statuses = {c.status for c in claims}
    if "error" in statuses:
        return "error"
    failed = "failed" in statuses
    if expect == "fail":
        return "xfailed" if failed else "xpassed"
    return "failed" if failed else "passed"


def _grad_vars(compiled: Compiled) -> list[str]:
    """The variables whose claims take their truth from the one shared backward pass."""
    return list(dict.fromkeys(c.var for c, _ in compiled.claims if KINDS[c.kind].joint_gradient))


def _evaluate(run: _Run, compiled: Compiled) -> tuple[Any, list[Any]]:
    """f, and per claim ``(truth, value)`` (None for a claim whose shape is
    wrong: it is not evaluated)."""
    grad_vars = _grad_vars(compiled)
    if grad_vars:
        fval, grads = run.gradients(grad_vars)
    else:
        grads = {}
        with torch.no_grad():
            fval = run.f(run.env)
    evaluated: list[Any] = []
    for claim, bound in compiled.claims:
        kind = kind_of(claim, compiled.identity)
        expected = _expected_shape(claim, compiled)
        if not kind.claimed_by_autograd and not _shapes_agree(bound.shape, expected) and not (
            bound.static is not None and bound.shape == ()
        ):
            evaluated.append(None)
            continue
        # (a complex variable is refused with the identity file, by the schema)
        refusal = kind.complex_problem(claim.var, None) if fval.is_complex() else None
        if refusal is not None:
            raise EvalError(
                f"{claim.label} (line {claim.line}, key {claim.kind}.{claim.subject}): {refusal}"
            )
        truth = kind.truth(torch, run, claim.var, grads)
        # a claim of autograd's own value is judged by the witnesses that do not use autograd
        value = truth.detach() if kind.claimed_by_autograd else run.claim_value(claim, bound)
        evaluated.append((truth, value))
    return fval, evaluated


def _undefined(
    trials: int, fval: Any, compiled: Compiled, evaluated: list[Any], autograd_alone: bool
) -> tuple[Any, str, Any] | None:
    """The trials ([T] bool) on which f, a claim or autograd is NaN/Inf, what was NaN/Inf
    first ("f", "autograd (grad x)", "the claim grad x"), and the trials where only autograd
    is, when other witnesses judge too ([T] bool: theirs to judge where redrawing does not
    help); None when everything is finite (the common case, one check each).

    Autograd alone: a NaN of autograd is like a NaN of f. With other witnesses, an autograd
    that is NaN where f and the claims are finite is drawn again like the rest where that
    helps (a log of a softmax that underflows at a large draw: autograd's backward overflows
    where f does not); where it is NaN on every trial, or stays NaN after the redraws (sqrt
    of an exact zero: autograd's chain rule gives 0 * inf), the other witnesses judge it
    (they say "autograd vs fd" and can check the claim without it)."""
    named: list[tuple[str, Any, bool]] = [("f", fval, False)]
    for (claim, _), pair in zip(compiled.claims, evaluated, strict=True):
        if pair is not None:
            named.append((f"autograd ({claim.label})", pair[0], not autograd_alone))
            named.append((f"the claim {claim.label}", pair[1], False))
    # isfinite makes a bool tensor (an eighth of a float64 copy): no large temporary here.
    if all(bool(torch.isfinite(t).all()) for _, t, _ in named):
        return None
    hard = torch.zeros(trials, dtype=torch.bool, device=fval.device)
    soft = torch.zeros_like(hard)
    what = ""
    for name, t, autograd_only in named:
        if t.dim() and t.shape[0] == trials:
            rows = ~torch.isfinite(t.reshape(trials, -1)).all(dim=1)
        else:  # one value for every trial
            rows = (~torch.isfinite(t).all()).expand(trials)
        if not what and bool(rows.any()):
            what = name
        if autograd_only:
            soft |= rows
        else:
            hard |= rows
    return hard | soft, what, soft & ~hard


def _refuse_if_undefined_near_the_origin(
    run: _Run, bad: Any, trials: int, tally: degeneracy.Tally, autograd_alone: bool,
    limits: Limits,
) -> None:
    """Raise :class:`EvalError` when too many first draws at the smallest scale are undefined
    (redrawing towards the origin cannot help there). With fewer than UNDEFINED_NEAR_PROBE of
    them (a small ``--trials``), the share is measured on a probe of that many draws at the
    smallest scale instead, so that the outcome is the same on every seed at every trial
    count."""
    near = domains.trial_scales(torch, trials) == min(domains.SCALES)
    n = int(near.sum())
    k = int((bad & near).sum())
    if n < UNDEFINED_NEAR_PROBE:
        n, k = UNDEFINED_NEAR_PROBE, _undefined_near_probe(run, autograd_alone, limits)
    if k <= UNDEFINED_NEAR * n:
        return
    first = tally.first_undefined
    raise EvalError(
        f"{tally.undefined_what} gives NaN/Inf on {first} of {trials} draws "
        f"({100 * first / trials:.3g}%), {k} of the {n} at scale {min(domains.SCALES):g} (near "
        f"the origin): undefined on much of the domain; choose domains where it is defined "
        f"(e.g. positive for log/sqrt, spd or invertible for logdet/inv)"
    )


def _undefined_near_probe(run: _Run, autograd_alone: bool, limits: Limits) -> int:
    """On how many of UNDEFINED_NEAR_PROBE fresh draws at the smallest scale f, a claim or
    (alone) autograd is NaN/Inf. About UNDEFINED_NEAR_PROBE / trials checks of the identity:
    counted against max_work before anything is drawn, like a redraw."""
    compiled = run.c
    work = (2 + -(-UNDEFINED_NEAR_PROBE // run.trials)) * max(1, compiled.estimate.total)
    if work > limits.max_work:
        raise limits.refuse(
            "max_work",
            work,
            "some draws are NaN/Inf; measuring where, on "
            f"{UNDEFINED_NEAR_PROBE} draws near the origin, would make the work of the check",
        )
    seed = identity_seed(0, f"{compiled.identity.id}\0undefined near the origin")
    dtype = run.like.dtype
    draw = _draw_capped(compiled.identity, UNDEFINED_NEAR_PROBE, seed, min(domains.SCALES))
    draw = _guarded(compiled, draw, seed, dtype, None)
    probe = _Run(compiled, UNDEFINED_NEAR_PROBE, seed, dtype, str(run.like.device), draw=draw)
    fval, evaluated = _evaluate(probe, compiled)
    undefined = _undefined(UNDEFINED_NEAR_PROBE, fval, compiled, evaluated, autograd_alone)
    return 0 if undefined is None else int((undefined[0] & ~undefined[2]).sum())


def _undefined_share(tally: degeneracy.Tally, trials: int) -> str:
    """What was undefined on how many of the first draws, as the error and the warning say."""
    first = tally.first_undefined
    return (
        f"{tally.undefined_what} gives NaN/Inf on {first} of {trials} draws "
        f"({100 * first / trials:.3g}%)"
    )


def _undefined_message(tally: degeneracy.Tally, trials: int, left: int, what: str) -> str:
    still = "" if what == tally.undefined_what else f" ({what})"
    return (
        f"{_undefined_share(tally, trials)} and still on {left}{still} after "
        f"{len(UNDEFINED_LADDER)} redraws of each (the last at scale "
        f"{min(UNDEFINED_LADDER):g}): undefined on much of the domain; choose domains where it "
        f"is defined (e.g. positive for log/sqrt, spd or invertible for logdet/inv)"
    )


def undefined_warning(tally: degeneracy.Tally, trials: int) -> str | None:
    """The warning for an identity some of whose draws were undefined and drawn again."""
    if not tally.first_undefined:
        return None
    return (
        f"{_undefined_share(tally, trials)}; those draws were drawn again ({tally.undefined} "
        f"redraws, towards the origin) and the verdict is over defined draws only: if f is "
        f"meant only where it is defined, say so with a domain (e.g. positive for log/sqrt)"
    )


def check_compiled(
    compiled: Compiled,
    settings: Settings,
    device: str,
    keep: list[Any] | None = None,
    tally: degeneracy.Tally | None = None,
) -> list[ClaimResult]:
    """Check every claim of one compiled identity; raise :class:`EvalError` if f is broken.

    ``keep``, if given, receives ``(run, claim, truth, value, noise)`` per claim (for
    ``show``; ``noise`` is the estimated rounding noise, or None where none was needed);
    ``tally``, if given, counts the trials drawn again (degenerate or undefined)."""
    ident = compiled.identity
    dtype = getattr(torch, settings.dtype)
    trials = _trials_for(ident, settings)
    chosen = witness.witnesses_for(ident.witness, settings.witnesses)
    if compiled.own_backward:
        # autograd's derivative is the user's implementation under test: judge every claim by
        # the witnesses that evaluate f only, too
        chosen = witness.witnesses_for(ident.witness, (*settings.witnesses, *witness.WITHOUT))
    witness.check_budget(compiled, chosen, trials, settings.limits)  # before anything is drawn
    seed = identity_seed(settings.seed, ident.id)
    tally = tally if tally is not None else degeneracy.Tally()
    run = _Run(compiled, trials, seed, dtype, device, tally=tally)
    for attempt in range(len(UNDEFINED_LADDER) + 1):
        fval, evaluated = _evaluate(run, compiled)
        undefined = _undefined(
            trials, fval, compiled, evaluated, chosen == ("autograd",)
        )
        if undefined is None:
            break
        bad, what, autograd_only = undefined
        hard = bad & ~autograd_only
        if not bool(hard.any()) and (
            bool(autograd_only.all()) or attempt == len(UNDEFINED_LADDER)
        ):
            break  # autograd alone is NaN there, and drawing again does not help: the
            # other witnesses judge those trials
        count = int(bad.sum())
        if attempt == 0:
            tally.first_undefined, tally.undefined_what = count, what
            _refuse_if_undefined_near_the_origin(
                run, hard.cpu(), trials, tally, chosen == ("autograd",), settings.limits
            )
        if attempt == len(UNDEFINED_LADDER):
            raise EvalError(_undefined_message(tally, trials, int(hard.sum()), what))
        # Each redraw is one more check of the identity: within max_work, like the rest.
        work = (attempt + 2) * max(1, compiled.estimate.total + compiled.estimate.guard)
        if work > settings.limits.max_work:
            raise settings.limits.refuse(
                "max_work",
                work,
                f"{tally.undefined_what} gives NaN/Inf on {tally.first_undefined} of {trials} "
                f"draws; drawing them again (redraw {attempt + 1}) would make the work of the "
                f"check",
            )
        tally.undefined += count
        fresh = _draw_capped(
            ident, trials, identity_seed(seed, f"undefined {attempt + 1}"),
            UNDEFINED_LADDER[attempt],
        )
        draw = degeneracy.replace_rows(run.draw, bad.cpu(), fresh)
        draw = _guarded(compiled, draw, identity_seed(seed, f"undefined {attempt + 1}"), dtype,
                        tally)
        run = _Run(compiled, trials, seed, dtype, device, draw=draw)
    # Here f, the claims (and autograd, when it judges alone) are finite on every trial.
    default_rtol, default_atol = settings.tolerances
    rtol = ident.tol.rtol if ident.tol.rtol is not None else default_rtol
    atol = ident.tol.atol if ident.tol.atol is not None else default_atol
    recheck = None
    if settings.dtype != CONFIRM_DTYPE:
        rtol64, atol64 = settings.tolerances_in(CONFIRM_DTYPE)
        recheck = _Recheck(
            run,
            _grad_vars(compiled),
            device,
            ident.tol.rtol if ident.tol.rtol is not None else rtol64,
            ident.tol.atol if ident.tol.atol is not None else atol64,
            settings.limits,
            identity_seed(settings.seed, ident.id + "\0noise"),
        )

    results: list[ClaimResult] = []
    for (claim, bound), pair in zip(compiled.claims, evaluated, strict=True):
        kind = kind_of(claim, ident)
        expected = _expected_shape(claim, compiled)
        if pair is None:
            hint = kind.shape_hint(claim.var, bound.shape, expected)
            results.append(
                ClaimResult(
                    claim.kind,
                    claim.subject,
                    "failed",
                    line=claim.line,
                    message=(
                        f"{claim.label}: the claim has shape {fmt_shape(bound.shape)}, but it must "
                        f"have shape {fmt_shape(expected)}"
                        + kind.shape_note(claim.var)
                    ),
                    hint=hint,
                    rtol=rtol,
                    atol=atol,
                )
            )
            continue
        truth, value = pair
        convention = kind.convention(ident, claim.var, truth)
        res = compare(claim, truth.detach(), value, expected, rtol, atol)
        noise = None
        if res.status == "failed" and not (recheck is not None and "autograd" in chosen):
            # Only now, and only for this claim: is the mismatch within rounding noise? (In a
            # narrower dtype the float64 re-check below answers that, with float64's noise:
            # noise measured in float32 is too coarse to tell a small error from rounding.)
            noise = rounding_noise(
                run, claim, bound, truth.detach(), value, settings.limits,
                identity_seed(settings.seed, ident.id + "\0noise"),
            )
            if noise is not None:
                res = compare(claim, truth.detach(), value, expected, rtol, atol, noise=noise)
        computed = (truth.detach(), value)  # in the run's dtype, for `show`
        if res.status == "failed" and recheck is not None and "autograd" in chosen:
            res, truth, value = recheck(claim, bound, expected, res, truth, value)
        res.convention = convention
        reference, claimed = (truth, value) if res.status == "failed" else (None, None)
        judges = witness.for_claim(claim.kind, chosen)
        if judges != ("autograd",):
            res, reference, claimed = witness.judge(
                witnesses=judges, compiled=compiled, draw=run.draw, device=device, claim=claim,
                bound=bound, expected=expected, truth=truth.detach(), value=value, autograd=res,
                convention=convention, convert=kind.converter(torch, ident, claim.var),
                rtol=rtol, atol=atol, limits=settings.limits, compare=compare,
                seed=identity_seed(settings.seed, ident.id + "\0witness"),
            )
        if res.status == "failed" and reference is not None:
            probe = _probe(
                run, claim, bound, res, reference, claimed, expected, "autograd" in judges,
                settings.limits,
            )
            probe.repair = _repair_inputs(
                run if recheck is None else recheck.run_of(claimed), claim, bound, claimed,
                settings.limits,
            )
            if noise is not None and "autograd" in judges:
                probe.noise = _symmetrised(noise, expected)
            res.hint = diagnose.diagnose(probe)
        if res.status == "failed" and res.message:
            res.message += kind.layout_note(
                claim.var, ident.vars[claim.var].shape, compiled.f.shape
            )
        if keep is not None:
            keep.append((run, claim, *computed, noise))
        results.append(res)
    return results


class _Recheck:
    """A claim that fails in a narrower dtype (float32), checked again in float64 on the same
    draw and the same device. The draw is made in float64 on the CPU from the identity's seed
    (degeneracy redraws included) and only then rounded to the run's dtype, so the float64
    re-check sees the very inputs that the float32 check rounded. A claim that holds there
    failed by rounding alone: it passes, with a note that states both errors. A claim that
    fails there too is a failure, and its message gives both figures.

    The float64 pass over f (and its gradients) is made once per identity, at the first claim
    that needs it; the comparison is :func:`compare`, with the float64 tolerances."""

    def __init__(
        self,
        run: _Run,
        grad_vars: list[str],
        device: str,
        rtol: float,
        atol: float,
        limits: Limits,
        seed: int,
    ):
        self.first = run
        self.grad_vars = grad_vars
        self.device = device
        self.rtol = rtol
        self.atol = atol
        self.limits = limits
        self.seed = seed  # of the rounding-noise estimate, as in the first check
        self._run: _Run | None = None
        self._grads: dict[str, Any] = {}

    def run_of(self, value: Any) -> _Run:
        """The run whose dtype ``value`` has: the float64 re-check's once it was made."""
        if self._run is not None and tensors.real_dtype(value) == self._run.like.dtype:
            return self._run
        return self.first

    def _float64(self) -> tuple[_Run, dict[str, Any]]:
        if self._run is None:
            first = self.first
            self._run = _Run(
                first.c, first.trials, 0, torch.float64, self.device, draw=first.draw
            )
            if self.grad_vars:
                _, self._grads = self._run.gradients(self.grad_vars)
        return self._run, self._grads

    def __call__(
        self,
        claim: Claim,
        bound: Bound,
        expected: Shape,
        first: ClaimResult,
        truth: Any,
        value: Any,
    ) -> tuple[ClaimResult, Any, Any]:
        """The result of ``claim`` after the re-check, and the truth and claim values that
        the witnesses and the diagnosis should use (float64 when the failure stands)."""
        run64, grads = self._float64()
        truth64 = kind_of(claim, run64.c.identity).truth(torch, run64, claim.var, grads).detach()
        value64 = run64.claim_value(claim, bound)
        second = compare(claim, truth64, value64, expected, self.rtol, self.atol)
        if second.status == "failed":  # within the rounding noise of float64?
            noise = rounding_noise(run64, claim, bound, truth64, value64, self.limits, self.seed)
            if noise is not None:
                second = compare(
                    claim, truth64, value64, expected, self.rtol, self.atol, noise=noise
                )
        dtype = str(truth.dtype).removeprefix("torch.")
        wide = str(truth64.dtype).removeprefix("torch.")  # complex128 for complex values
        first.recheck = Recheck(
            dtype=dtype,
            max_abs_err=first.max_abs_err,
            max_rel_err=first.max_rel_err,
            max_ratio=first.max_ratio,
            rtol=first.rtol,
            atol=first.atol,
            float64_status=second.status,
            float64_max_abs_err=second.max_abs_err,
            float64_max_rel_err=second.max_rel_err,
            float64_max_ratio=second.max_ratio,
            float64_rtol=self.rtol,
            float64_atol=self.atol,
            wide_dtype=wide,
        )
        if second.status == "passed":
            second.recheck = first.recheck
            second.note = (
                f"{claim.label} failed in {dtype} ({_errors(first)}) but holds in {wide} on "
                f"the same draw ({_errors(second)}): the {dtype} failure is rounding"
            )
            return second, truth, value
        if second.status == "failed":
            first.message += (
                f"; in {wide} on the same draw it fails too ({_errors(second)}), so the claim "
                f"is wrong, not rounded"
            )
            return first, truth64, value64
        # float64 cannot judge (NaN/Inf there): the float32 failure stands, said so.
        first.note = f"the {wide} re-check on the same draw could not judge: {second.message}"
        return first, truth, value


def _errors(res: ClaimResult) -> str:
    """The figures of one comparison, for a re-check's note or message."""
    out = "max abs err " + ("—" if res.max_abs_err is None else f"{res.max_abs_err:.3g}")
    if res.max_rel_err is not None:
        out += f", max rel err {res.max_rel_err:.3g}"
    if res.max_ratio is not None:
        out += f", {res.max_ratio:.3g} of its tolerance"
    return out + f", rtol={res.rtol:g} atol={res.atol:g}"


def rounding_noise(
    run: _Run,
    claim: Claim,
    bound: Bound,
    truth: Any,
    value: Any,
    limits: Limits,
    seed: int,
) -> Any | None:
    """The estimated rounding noise of each entry of a claim and of its autograd truth
    ([T, entries], the two added): ``tensors.NOISE_RUNS`` re-evaluations of both on the same
    draw under Monte Carlo arithmetic (``tensors.Perturbation``: every intermediate result of
    f, of autograd's backward pass and of the claim moved by about an ulp), and each entry's
    largest deviation. Each run costs about one more check of the identity; None (no
    estimate: the strict test stands) when that would exceed ``max_work``, or when a perturbed
    evaluation cannot be made (a perturbed input that a function refuses)."""
    cost = max(1, run.c.estimate.total)
    if (tensors.NOISE_RUNS + 1) * cost > limits.max_work:
        return None
    # Each run's deviations are folded in as it ends: one extra run's tensors live at a time,
    # beside the first check's (twice its memory at the peak, not 2 + NOISE_RUNS times).
    of_truth = of_claim = None
    try:
        for k in range(tensors.NOISE_RUNS):
            # Every operation's result is moved (EveryOperation), and so are the inputs, as the
            # roundings that made them would be. The expressions' own nodes are operations too:
            # their values are not moved a second time (two moves could cancel), only the
            # gradients flowing back through them, since autograd's backward pass runs below
            # EveryOperation.
            moved = tensors.Perturbation(seed + k)
            xs, ds = run.draw
            draw = ({name: moved.move(x) for name, x in xs.items()}, ds)
            other = _Run(
                run.c, run.trials, 0, run.like.dtype, str(run.like.device), draw=draw,
                perturb=tensors.Perturbation(seed + 7919 * (k + 1), forward=False),
            )
            with tensors.EveryOperation(moved):
                truth_k = _truth_of(other, claim)
                value_k = other.claim_value(claim, bound)
            del other
            t_k, v_k = tensors.noise(truth, [truth_k]), tensors.noise(value, [value_k])
            of_truth = t_k if of_truth is None else torch.maximum(of_truth, t_k)
            of_claim = v_k if of_claim is None else torch.maximum(of_claim, v_k)
    except (EvalError, RuntimeError, ValueError):
        return None
    if of_truth is None or of_claim is None:
        return None
    # of_claim is [T, 1] for a constant scalar claim: broadcast
    return of_truth + of_claim.expand_as(of_truth)


def _symmetrised(noise: Any, expected: Shape) -> Any:
    """``noise`` [T, entries] as the larger of it and its transpose for a square shape (the
    diagnosis compares transposed candidates)."""
    if len(expected) != 2 or expected[0] != expected[1]:
        return noise
    t, n = noise.shape[0], expected[0]
    m = noise.reshape(t, n, n)
    return torch.maximum(m, m.transpose(-1, -2)).reshape(t, -1)


def _truth_of(run: _Run, claim: Claim, var: str | None = None) -> Any:
    """The autograd value of ``claim`` (grad in its convention), or of a claim of its kind
    about ``var`` instead."""
    kind = kind_of(claim, run.c.identity)
    return kind.truth(torch, run, claim.var if var is None else var, {}).detach()


def _repair_inputs(
    run: _Run, claim: Claim, bound: Bound, claimed: Any, limits: Limits
) -> repair.Inputs | None:
    """How the per-term repairs evaluate a claim's terms: on ``run``'s draws, in the dtype of
    the claimed value they are compared with (None when no run has that dtype)."""
    if tensors.real_dtype(claimed) != run.like.dtype:
        return None
    env = run.claim_env(claim)
    memo: dict[str, Any] = {}  # one env: equal text, equal value

    def evaluate(b: Bound) -> Any:
        with torch.no_grad():
            return run.compute(b, env, memo)

    lets = dict(run.c.lets)
    if KINDS[claim.kind].uses_direction:
        lets.update(run.c.direction_lets.get(claim.var, ()))

    def named() -> list[tuple[str, Any]]:
        out = [(v, env[v]) for v in run.c.identity.vars]
        if KINDS[claim.kind].uses_direction:
            out.append(("d" + claim.var, env["d" + claim.var]))
        return out + [(name, env[name]) for name in lets]

    return repair.Inputs(bound, lets, evaluate, named, run.trials, limits)


def _probe(
    run: _Run,
    claim: Claim,
    bound: Bound,
    res: ClaimResult,
    truth: Any,
    value: Any,
    expected: Shape,
    autograd: bool,
    limits: Limits,
) -> diagnose.Probe:
    """What the diagnosis may try for a failed claim. Probes that need autograd at other
    points (symmetric inputs, swapped variables) are offered only when autograd is a witness."""
    ident = run.c.identity
    rtol = res.rtol if res.rtol is not None else 0.0
    atol = res.atol if res.atol is not None else 0.0
    probe = diagnose.Probe(
        claim.kind, claim.var, truth, value, expected, rtol, atol,
        reference="autograd" if autograd else "finite differences",
        layouts=kind_of(claim, ident).layouts(
            claim.var,
            ident.vars[claim.var].shape,
            run.c.f.shape,
            truth.reshape(truth.shape[0], *expected),
        ),
    )
    if not autograd:
        return probe
    alternatives = kind_of(claim, ident).alternatives(torch, run, claim.var, truth)
    if alternatives:
        probe.conventions = alternatives

    def symmetric() -> Iterator[tuple[list[str], Any, Any]]:
        # Each square input made symmetric on its own (to name the one that matters), then
        # all of them together.
        xs, ds = run.draw
        changed: dict[str, Any] = {}
        for v in ident.vars.values():
            x = xs[v.name]
            if len(v.shape) != 2 or v.shape[0] != v.shape[1] or v.shape[0] < 2:
                continue
            symmetrized = domains.DOMAINS[v.domain].symmetrized
            if symmetrized is not None:
                changed[v.name] = symmetrized(x)
        tries = [[name] for name in changed] if len(changed) > 1 else []
        tries += [list(changed)] if changed else []
        if not diagnosis_affordable("symmetric inputs", len(tries)):
            return
        for names in tries:
            draw = ({**xs, **{k: changed[k] for k in names}}, ds)
            other = _Run(run.c, run.trials, 0, run.like.dtype, str(run.like.device), draw=draw)
            yield names, _truth_of(other, claim), other.claim_value(claim, bound)

    def swapped() -> list[tuple[str, Any, Any]]:
        out = []
        if claim.var2 is not None:
            return []  # its variables swapped: the transposed orientation, a layout
        shape = ident.vars[claim.var].shape
        others = [v for v in ident.vars.values() if v.name != claim.var and v.shape == shape]
        if not diagnosis_affordable("swapped variables", len(others)):
            return []
        for v in others:
            env = run.claim_env(claim, run.d.get(v.name))
            with torch.no_grad():
                value_o = run.compute(bound, env)
            out.append((v.name, _truth_of(run, claim, v.name), value_o))
        return out

    def diagnosis_affordable(what: str, candidates: int) -> bool:
        # Each candidate costs about one check of the identity (another autograd pass over f,
        # the claim again): at most MAX_DIAGNOSIS_CANDIDATES of them, and within max_work.
        cost = candidates * compiled_cost
        if candidates <= diagnose.MAX_CANDIDATES and cost + compiled_cost <= limits.max_work:
            return True
        probe.skipped.append(
            f"{what} not tried ({candidates} candidates, each about one more check of this "
            f"identity; the diagnosis tries at most {diagnose.MAX_CANDIDATES} within max_work)"
        )
        return False

    compiled_cost = max(1, run.c.estimate.total)
    probe.symmetric = symmetric
    probe.swapped = swapped
    return probe


def check_identity(
    item: Identity | Invalid, settings: Settings, device: str | None = None
) -> IdentityResult:
    """Check one identity. Never raises for bad input: problems become ``error`` results."""
    start = time.perf_counter()
    if isinstance(item, Invalid):
        return IdentityResult(
            id=item.id or _file_label(item.path),
            file=item.path,
            line=item.line,
            expect="pass",
            status="error",
            message=str(item.error),
            error_line=item.error.line,
        )
    ident = item
    compiled: Compiled | None = None
    result = IdentityResult(
        id=ident.id,
        file=ident.path,
        line=ident.line,
        expect=ident.expect,
        status="error",
        title=ident.title,
        source=ident.source,
        latex=ident.latex,
        f=ident.f,
        seed=settings.seed,
        loose_tol=settings.looser(ident.tol.rtol, ident.tol.atol),
    )
    try:
        trials = _trials_for(ident, settings)
        result.trials = trials
        compiled = compile_identity(ident, trials, settings.limits)
        device = device or resolve_device(settings.device)
        tally = degeneracy.Tally()
        try:
            result.claims = check_compiled(compiled, settings, device, tally=tally)
            written = {(c.kind, c.subject): c.text for c in ident.claims}
            for c in result.claims:  # autograd's own gradient has no expression to show
                own = KINDS[c.kind].claimed_by_autograd
                c.expr = None if own else written.get((c.kind, c.var))
        finally:
            result.redrawn_degenerate = tally.degenerate
            result.redrawn_undefined = tally.undefined
            result.undefined = tally.first_undefined
        warning = undefined_warning(tally, trials)
        if warning is not None:
            result.warnings.append(warning)
        result.status = _identity_status(ident.expect, result.claims)
        result.message = "; ".join(c.message for c in result.claims if c.message)
    except SpecError as e:
        result.message = str(e.located(path=ident.path, identity=ident.id))
        result.error_line = e.line
    except (EvalError, LimitError) as e:
        result.message = f"{ident.path}:{ident.line}: identity {ident.id!r}: {e}"
    except MatgradError as e:
        result.message = str(e)
    except KeyboardInterrupt:
        raise
    except _OUT_OF_MEMORY as e:  # limits raised beyond this machine: not a bug
        result.message = (
            f"{ident.path}:{ident.line}: identity {ident.id!r}: out of memory "
            f"({type(e).__name__}); use fewer trials or smaller dims, or lower "
            f"--limit max_elements so such an identity is refused before it starts"
        )
    except Exception as e:  # a bug: report it for this identity and go on with the others
        blamed = userfn.blame(e, compiled.user_functions if compiled is not None else ())
        if blamed is not None:  # user code (or torch running it): the user's to fix
            result.message = f"{ident.path}:{ident.line}: identity {ident.id!r}: {blamed}"
            result.seconds = time.perf_counter() - start
            return result
        result.internal = True
        result.message = (
            f"internal error while checking {ident.id!r}: {type(e).__name__}: {e}. "
            f"This is a bug in matgrad: please report it with the identity file"
        )
    if result.status == "error" and not result.claims:
        result.trials = None  # no verdict rests on any draw: every format shows "—"
    result.seconds = time.perf_counter() - start
    return result


_OUT_OF_MEMORY: tuple[type[BaseException], ...] = (
    MemoryError,
    getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
)


def _file_label(path: str) -> str:
    return os.path.basename(path)


def _small_work(items: list[Identity | Invalid], settings: Settings) -> bool:
    """Is every identity of the run tiny (thread wake-ups cost more than the work)?"""
    for item in items:
        if isinstance(item, Identity):
            trials = settings.trials or item.trials or DEFAULT_TRIALS
            biggest = max((numel(v.shape) for v in item.vars.values()), default=1)
            if biggest * trials >= SMALL_WORK:
                return False
    return True


def lower_threads_for_small_work(items: Iterable[Identity | Invalid], settings: Settings) -> None:
    """One intra-op thread for the rest of the process when every identity of a CPU run is
    tiny. Process-wide and for good, so only the ``matgrad`` command calls it (the library
    leaves torch's threads alone).

    It cannot be scoped: in torch 2.x CPU builds with MKL, any later ``torch.set_num_threads``
    above 1 (even back to the count the process had) makes batched LU factorisations of large
    matrices fail ("Pivots given to lu_solve must all be greater or equal to 1").
    """
    if resolve_device(settings.device) != "cpu" or torch.get_num_threads() == 1:
        return
    if _small_work(list(items), settings):
        torch.set_num_threads(1)


# ---- a whole run ----------------------------------------------------------------------------


def run(
    items: Iterable[Identity | Invalid],
    settings: Settings,
    on_result: Callable[[IdentityResult], None] | None = None,
    maxfail: int | None = None,
    on_start: Callable[[Identity | Invalid], None] | None = None,
) -> RunReport:
    """Check every item. Ctrl-C stops early: the report is returned with ``complete=False``.

    With ``maxfail``, the run stops once that many identities did not meet their ``expect``;
    the report says so in ``stopped`` and counts the rest in ``not_run``.
    """
    items = list(items)
    device = resolve_device(settings.device)
    report = RunReport(
        matgrad=__version__,
        torch=torch.__version__,
        seed=settings.seed,
        device=device,
        dtype=settings.dtype,
        witnesses=list(settings.witnesses),
        settings=settings,
    )
    start = time.perf_counter()
    failures = 0
    try:
        for i, item in enumerate(items):
            if on_start is not None:
                on_start(item)
            res = check_identity(item, settings, device)
            report.results.append(res)
            if on_result is not None:
                on_result(res)
            failures += not res.ok
            if maxfail is not None and failures >= maxfail and i + 1 < len(items):
                report.not_run = len(items) - i - 1
                report.stopped = (
                    f"stopped after {failures} identit{'y' if failures == 1 else 'ies'} "
                    f"did not meet {'its' if failures == 1 else 'their'} expect "
                    f"(maxfail {maxfail}); {report.not_run} not run"
                )
                break
    except KeyboardInterrupt:
        report.complete = False
    report.seconds = time.perf_counter() - start
    return report


__all__ = [
    "DEFAULT_TOL",
    "DEFAULT_TRIALS",
    "Settings",
    "check_identity",
    "compare",
    "identity_seed",
    "lower_threads_for_small_work",
    "rounding_noise",
    "run",
]

