"""The engine: sample the variables, compute the truth with autograd, evaluate each claim,
compare. All trials of one identity run as one batch (a leading trial dimension), so one
forward and one backward pass serve every draw.

The engine never prints and never exits: a mismatch is a :class:`ClaimResult` with status
``failed``; an identity that cannot be evaluated is an ``error`` result; the caller decides
what to show.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# torch warns at import when NumPy is absent; matgrad does not use NumPy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.autograd.forward_ad as fwAD  # noqa: E402

from matgrad._version import __version__
from matgrad.engine import degeneracy, diagnose, witness
from matgrad.errors import EvalError, LimitError, MatgradError, SpecError
from matgrad.lang import domains
from matgrad.lang.expr import Bound
from matgrad.lang.functions import Shape, fmt_shape, is_scalar, numel
from matgrad.limits import DEFAULT_LIMITS, Limits
from matgrad.results import ClaimResult, IdentityResult, RunReport, Worst
from matgrad.spec.schema import (
    DEFAULT_TRIALS,
    Claim,
    Compiled,
    Identity,
    Invalid,
    compile_identity,
    symmetric_vars,
)

# Default tolerances per dtype, for |claim - autograd| <= atol*scale + rtol*|autograd|, where
# scale = max(1, largest |autograd| entry of that trial). Sampled inputs are well-conditioned
# (condition numbers <= 4), so rounding differences are ~1e-13 in float64; a wrong claim
# differs by O(1).
DEFAULT_TOL = {"float64": (1e-6, 1e-9), "float32": (2e-3, 1e-4)}

# Below this many elements per batch, torch's intra-op threads cost more than they save.
SMALL_WORK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Settings:
    seed: int = 0
    trials: int | None = None  # overrides the files' trials
    dtype: str = "float64"
    device: str = "auto"
    limits: Limits = DEFAULT_LIMITS
    rtol: float | None = None  # default tolerances of identities without `tol` (None: per dtype)
    atol: float | None = None
    witnesses: tuple[str, ...] = ()  # added to every identity's own (--fd, --taylor)


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
    ):
        self.c = compiled
        ident = compiled.identity
        if draw is None:
            draw = _draw(ident, trials, seed)
            draw = degeneracy.guard(
                compiled,
                draw,
                lambda k: _draw(ident, trials, identity_seed(seed, f"redraw {k}")),
                str(dtype).removeprefix("torch."),
            )
        xs, ds = draw
        self.draw = draw  # float64 CPU, as drawn (witnesses and `show` start from it)
        self.x = {k: t.to(device=device, dtype=dtype) for k, t in xs.items()}
        self.d = {k: t.to(device=device, dtype=dtype) for k, t in ds.items()}
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
        for name, bound in self.c.lets:
            env[name] = self.compute(bound, env)
        return env

    def compute(self, bound: Bound, env: dict[str, Any], memo: dict[str, Any] | None = None) -> Any:
        out = bound.evaluate(env, torch, self.like, memo)
        if isinstance(out, float):
            return torch.full(
                (self.trials, *bound.shape), out, dtype=self.like.dtype, device=self.like.device
            )
        return out

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
        out = value.reshape(self.trials)
        grads = torch.autograd.grad(
            out.sum(), [leaves[n] for n in names], allow_unused=True
        ) if out.requires_grad else [None] * len(names)
        return value.detach(), {
            n: g if g is not None else torch.zeros_like(leaves[n]) for n, g in zip(names, grads)
        }

    def hessian(self, name: str) -> Any:
        leaves, env = self.leaves([name])
        x = leaves[name]
        n = numel(x.shape[1:])
        out = self.f(env).reshape(self.trials)
        zero = torch.zeros(self.trials, n, n, dtype=x.dtype, device=x.device)
        if not out.requires_grad:
            return zero
        (g,) = torch.autograd.grad(out.sum(), [x], create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:
            return zero
        g = g.reshape(self.trials, n)
        rows = []
        for i in range(n):
            (h,) = torch.autograd.grad(g[:, i].sum(), [x], retain_graph=True, allow_unused=True)
            rows.append(torch.zeros_like(g) if h is None else h.reshape(self.trials, n))
        return torch.stack(rows, dim=1)

    def differential(self, name: str) -> Any:
        """Directional derivative of f along d<name>: the Jacobian-vector product J v.

        Computed as d/du <u, J^T u>|v with two reverse passes: in torch 2.x the first
        forward-mode (dual tensor) product imports torch._dynamo, a one-off cost of ~2.5 s
        that would dominate a quick check. Forward mode remains the fallback for an op
        whose backward is not itself differentiable.
        """
        try:
            return self._jvp_by_double_backward(name)
        except (RuntimeError, NotImplementedError):
            return self._jvp_by_forward_mode(name)

    def _jvp_by_forward_mode(self, name: str) -> Any:
        with fwAD.dual_level():
            env = dict(self.x)
            env[name] = fwAD.make_dual(self.x[name], self.d[name])
            out = self.f(self._with_lets(env))
            tangent = fwAD.unpack_dual(out).tangent
        return torch.zeros_like(out) if tangent is None else tangent

    def _jvp_by_double_backward(self, name: str) -> Any:
        leaves, env = self.leaves([name])
        out = self.f(env)
        if not out.requires_grad:
            return torch.zeros_like(out)
        # Scalar outputs only: torch.autograd.grad with explicit grad_outputs imports
        # torch.fx's symbolic shapes (and sympy) on first use, about a second.
        u = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(
            (out * u).sum(), [leaves[name]], create_graph=True, allow_unused=True
        )
        if g is None or not g.requires_grad:
            return torch.zeros_like(out)
        (jv,) = torch.autograd.grad((g * self.d[name]).sum(), [u], allow_unused=True)
        return torch.zeros_like(out) if jv is None else jv

    def claim_value(self, claim: Claim, bound: Bound) -> Any:
        env = dict(self.env)
        with torch.no_grad():
            if claim.kind == "differential":
                env["d" + claim.var] = self.d[claim.var]
                for name, let in self.c.direction_lets.get(claim.var, ()):
                    env[name] = self.compute(let, env)
            # No graph here, so a sub-expression the claim repeats is computed once.
            return self.compute(bound, env, memo={})


def _draw(ident: Identity, trials: int, seed: int) -> degeneracy.Draw:
    gen = torch.Generator().manual_seed(seed)
    # Draw every variable, then every direction, in declaration order: the draws do not
    # depend on which claims an identity makes.
    xs = {
        v.name: domains.sample(torch, v.domain, v.shape, trials, gen)
        for v in ident.vars.values()
    }
    # Directions only serve differential claims; drawn after every variable, so leaving them
    # out elsewhere changes no variable's draw.
    ds = {}
    if any(c.kind == "differential" for c in ident.claims):
        tangent = ident.directions == "tangent"
        ds = {
            v.name: domains.direction(torch, v.domain, xs[v.name], gen, tangent)
            for v in ident.vars.values()
        }
    return xs, ds


def _expected_shape(claim: Claim, compiled: Compiled) -> Shape:
    var = compiled.identity.vars[claim.var]
    if claim.kind == "grad":
        return var.shape
    if claim.kind == "differential":
        return compiled.f.shape
    n = numel(var.shape)
    return () if var.shape == () else (n, n)


def _shapes_agree(claimed: Shape, expected: Shape) -> bool:
    return claimed == expected or (is_scalar(claimed) and is_scalar(expected))


def _apply_convention(g: Any, convention: str) -> Any:
    gt = g.transpose(-1, -2)
    if convention == "frobenius":
        return 0.5 * (g + gt)
    if convention == "free":
        return g + gt - torch.diag_embed(torch.diagonal(g, dim1=-2, dim2=-1))
    return g


def _first_bad_trial(x: Any) -> int | None:
    if degeneracy.all_finite(x):
        return None
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    idx = torch.nonzero(bad)
    return int(idx[0, 0]) if idx.numel() else None


def _unravel(k: int, shape: Shape) -> list[int]:
    out = []
    for d in reversed(shape):
        out.append(k % d)
        k //= d
    return list(reversed(out))


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def compare(
    claim: Claim,
    truth: Any,
    value: Any,
    expected: Shape,
    rtol: float,
    atol: float,
    slack: Any = None,
) -> ClaimResult:
    """Compare a claimed value with the autograd truth, both batched [T, ...]. ``slack``
    ([T, ...]) widens the bound entrywise (the error estimate of a finite difference)."""
    res = ClaimResult(claim.kind, claim.var, "passed", line=claim.line, rtol=rtol, atol=atol)
    t = truth.shape[0]
    tr = truth.reshape(t, -1)
    cl = value.reshape(t, -1)
    if cl.shape[1] == 1 and tr.shape[1] > 1:
        cl = cl.expand_as(tr)  # a constant scalar claim fills the whole shape
    err = (cl - tr).abs_()
    mag = tr.abs()
    top = mag.amax(dim=1, keepdim=True)
    bound = torch.add(top.clamp_min(1.0).mul_(atol), mag, alpha=rtol)
    if slack is not None:
        bound = bound + slack.reshape(t, -1).expand_as(bound)
    ratio = err / bound
    if not atol > 0 or slack is not None:
        # 0/0 (an exact entry with a zero bound) is no error at all; x/0 stays inf.
        ratio = ratio.nan_to_num_(nan=0.0, posinf=math.inf)
    flat = torch.argmax(ratio)
    # Relative error over the entries with a nonzero autograd value (x/0 and 0/0 left out).
    rel = (err / mag).nan_to_num_(nan=0.0, posinf=0.0)
    # Every number the result needs, read back in one transfer. NaN and Inf propagate into
    # the largest |autograd| and the largest error, so those two also say whether either
    # side had a non-finite entry; which trial it was is looked up only then.
    top_mag, max_abs, max_ratio, max_rel, claimed, autograd = torch.stack(
        [top.max(), err.max(), ratio.max(), rel.max(), torch.take(cl, flat), torch.take(tr, flat)]
    ).tolist()
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
    res.worst = Worst(trial, _unravel(k, expected), autograd, claimed)
    if ok:
        return res
    res.status = "failed"
    rel = "" if res.max_rel_err is None else f", max rel err {res.max_rel_err:.3g}"
    res.message = (
        f"{claim.label} mismatched on trial {trial} at {res.worst.index}: claimed "
        f"{_fmt(res.worst.claimed)}, autograd {_fmt(res.worst.autograd)} (max abs err "
        f"{res.max_abs_err:.3g}{rel}); tol rtol={rtol:g} atol={atol:g}"
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


def check_compiled(
    compiled: Compiled, settings: Settings, device: str, keep: list[Any] | None = None
) -> list[ClaimResult]:
    """Check every claim of one compiled identity; raise :class:`EvalError` if f is broken.

    ``keep``, if given, receives ``(run, claim, truth, value)`` per claim (for ``show``)."""
    ident = compiled.identity
    dtype = getattr(torch, settings.dtype)
    trials = _trials_for(ident, settings)
    run = _Run(compiled, trials, identity_seed(settings.seed, ident.id), dtype, device)
    grad_vars = list(dict.fromkeys(c.var for c, _ in compiled.claims if c.kind == "grad"))
    if grad_vars:
        fval, grads = run.gradients(grad_vars)
    else:
        grads = {}
        with torch.no_grad():
            fval = run.f(run.env)
    bad = _first_bad_trial(fval)
    if bad is not None:
        raise EvalError(
            f"f evaluates to NaN/Inf on trial {bad}; check the domains (e.g. positive for "
            f"log/sqrt, spd or invertible for logdet/inv)"
        )
    default_rtol, default_atol = DEFAULT_TOL[settings.dtype]
    if settings.rtol is not None:
        default_rtol = settings.rtol
    if settings.atol is not None:
        default_atol = settings.atol
    rtol = ident.tol.rtol if ident.tol.rtol is not None else default_rtol
    atol = ident.tol.atol if ident.tol.atol is not None else default_atol
    sym = symmetric_vars(ident)

    chosen = witness.witnesses_for(ident.witness, settings.witnesses)
    results: list[ClaimResult] = []
    for claim, bound in compiled.claims:
        expected = _expected_shape(claim, compiled)
        convention = None
        if not _shapes_agree(bound.shape, expected) and not (
            bound.static is not None and bound.shape == ()
        ):
            hint = None
            if sorted(bound.shape) == sorted(expected) and len(expected) == 2:
                hint = "transposed: the layout is swapped (did you mean .T?)"
            results.append(
                ClaimResult(
                    claim.kind,
                    claim.var,
                    "failed",
                    line=claim.line,
                    message=(
                        f"{claim.label}: the claim has shape {fmt_shape(bound.shape)}, but it must "
                        f"have shape {fmt_shape(expected)}"
                        + (" (the shape of " + claim.var + ")" if claim.kind == "grad" else "")
                    ),
                    hint=hint,
                    rtol=rtol,
                    atol=atol,
                )
            )
            continue
        if claim.kind == "grad":
            truth = grads[claim.var]
            if claim.var in sym and len(truth.shape) == 3:
                convention = ident.convention
                truth = _apply_convention(truth, convention)
        elif claim.kind == "hessian":
            truth = run.hessian(claim.var)
        else:
            truth = run.differential(claim.var)
        value = run.claim_value(claim, bound)
        res = compare(claim, truth.detach(), value, expected, rtol, atol)
        res.convention = convention
        reference, claimed = (truth, value) if res.status == "failed" else (None, None)
        if chosen != ("autograd",):
            res, reference, claimed = witness.judge(
                witnesses=chosen, compiled=compiled, draw=run.draw, device=device, claim=claim,
                bound=bound, expected=expected, truth=truth.detach(), value=value, autograd=res,
                convention=convention, convert=_converter(claim, sym, ident.convention),
                rtol=rtol, atol=atol, limits=settings.limits, compare=compare,
                seed=identity_seed(settings.seed, ident.id + "\0witness"),
            )
        if res.status == "failed" and reference is not None:
            res.hint = diagnose.diagnose(
                _probe(run, claim, bound, res, reference, claimed, expected, "autograd" in chosen)
            )
        if keep is not None:
            keep.append((run, claim, truth.detach(), value))
        results.append(res)
    return results


def _converter(claim: Claim, sym: frozenset[str], convention: str) -> Any:
    if claim.kind == "grad" and claim.var in sym:
        return lambda g: _apply_convention(g, convention) if g.dim() == 3 else g
    return None


def _truth_of(run: _Run, kind: str, var: str) -> Any:
    """The autograd value of a claim of ``kind`` about ``var`` (grad in its convention)."""
    if kind == "grad":
        g = run.gradients([var])[1][var]
        if var in symmetric_vars(run.c.identity) and g.dim() == 3:
            g = _apply_convention(g, run.c.identity.convention)
        return g.detach()
    if kind == "hessian":
        return run.hessian(var).detach()
    return run.differential(var).detach()


def _probe(
    run: _Run,
    claim: Claim,
    bound: Bound,
    res: ClaimResult,
    truth: Any,
    value: Any,
    expected: Shape,
    autograd: bool,
) -> diagnose.Probe:
    """What the diagnosis may try for a failed claim. Probes that need autograd at other
    points (symmetric inputs, swapped variables) are offered only when autograd is a witness."""
    ident = run.c.identity
    rtol = res.rtol if res.rtol is not None else 0.0
    atol = res.atol if res.atol is not None else 0.0
    probe = diagnose.Probe(
        claim.kind, claim.var, truth, value, expected, rtol, atol,
        reference="autograd" if autograd else "finite differences",
    )
    if not autograd:
        return probe
    if claim.kind == "grad" and claim.var in symmetric_vars(ident) and truth.dim() == 3:
        raw = run.gradients([claim.var])[1][claim.var].detach()
        probe.conventions = {
            c: _apply_convention(raw, c) for c in ("entrywise", "frobenius", "free")
            if c != ident.convention
        }

    def symmetric() -> Iterator[tuple[list[str], Any, Any]]:
        # Each square input made symmetric on its own (to name the one that matters), then
        # all of them together.
        xs, ds = run.draw
        changed: dict[str, Any] = {}
        for v in ident.vars.values():
            x = xs[v.name]
            if len(v.shape) != 2 or v.shape[0] != v.shape[1] or v.shape[0] < 2:
                continue
            if v.domain in ("real", "positive"):
                changed[v.name] = 0.5 * (x + x.transpose(-1, -2))
            elif v.domain in ("invertible", "fullrank"):
                changed[v.name] = x @ x.transpose(-1, -2)
        tries = [[name] for name in changed] if len(changed) > 1 else []
        for names in tries + ([list(changed)] if changed else []):
            draw = ({**xs, **{k: changed[k] for k in names}}, ds)
            other = _Run(run.c, run.trials, 0, run.like.dtype, str(run.like.device), draw=draw)
            yield names, _truth_of(other, claim.kind, claim.var), other.claim_value(claim, bound)

    def swapped() -> list[tuple[str, Any, Any]]:
        out = []
        shape = ident.vars[claim.var].shape
        for v in ident.vars.values():
            if v.name == claim.var or v.shape != shape:
                continue
            env = dict(run.env)
            if claim.kind == "differential":
                env["d" + claim.var] = run.d[v.name]
            with torch.no_grad():
                value_o = run.compute(bound, env)
            out.append((v.name, _truth_of(run, claim.kind, v.name), value_o))
        return out

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
        )
    ident = item
    result = IdentityResult(
        id=ident.id,
        file=ident.path,
        line=ident.line,
        expect=ident.expect,
        status="error",
        title=ident.title,
        source=ident.source,
        latex=ident.latex,
        seed=settings.seed,
    )
    try:
        trials = _trials_for(ident, settings)
        result.trials = trials
        compiled = compile_identity(ident, trials, settings.limits)
        result.claims = check_compiled(compiled, settings, device or resolve_device(settings.device))
        result.status = _identity_status(ident.expect, result.claims)
        result.message = "; ".join(c.message for c in result.claims if c.message)
    except SpecError as e:
        result.message = str(e.located(path=ident.path, identity=ident.id))
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
        result.internal = True
        result.message = (
            f"internal error while checking {ident.id!r}: {type(e).__name__}: {e}. "
            f"This is a bug in matgrad: please report it with the identity file"
        )
    result.seconds = time.perf_counter() - start
    return result


_OUT_OF_MEMORY: tuple[type[BaseException], ...] = (
    MemoryError,
    getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
)


def _file_label(path: str) -> str:
    return os.path.basename(path)


def _lower_threads_for_small_work(items: list[Identity | Invalid], settings: Settings) -> None:
    """One intra-op thread when every identity of the run is tiny (thread wake-ups cost more
    than the work), decided once per run from the variables' sizes.

    The count is only ever lowered, never raised again: in torch 2.x CPU builds, raising it
    with ``torch.set_num_threads`` makes later batched LU factorisations of large matrices
    fail ("Pivots given to lu_solve must all be greater or equal to 1").
    """
    if torch.get_num_threads() == 1:
        return
    for item in items:
        if isinstance(item, Identity):
            trials = settings.trials or item.trials or DEFAULT_TRIALS
            biggest = max((numel(v.shape) for v in item.vars.values()), default=1)
            if biggest * trials >= SMALL_WORK:
                return
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
    if device == "cpu":
        _lower_threads_for_small_work(items, settings)
    report = RunReport(
        matgrad=__version__,
        torch=torch.__version__,
        seed=settings.seed,
        device=device,
        dtype=settings.dtype,
        witnesses=list(settings.witnesses),
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
    "run",
]

