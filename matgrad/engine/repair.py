"""Per-term repairs of a failed claim, and a description of what it is missing.

The claim is split into its additive terms (``matgrad.lang.terms``); each edit of one term
(transpose it, negate it, drop it, ...) changes the claim by ``sign * (edited - term)``, so the
claim with one edit, or with two edits of two different terms, is the claim's value plus one or
two such differences: all of them are compared with the reference at once, as one batch.

How much is tried is decided before anything is evaluated: at most MAX_EVALS edited terms are
evaluated (and only within ``max_work``), and at most MAX_CHECKS candidate claims are compared.
A repair is reported only when the repaired claim matches on every trial by the check's own
test (``tensors.tolerance``, with the failed claim's rounding noise): never one that holds on
some trials only.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import torch

from matgrad.engine import tensors
from matgrad.errors import EvalError
from matgrad.lang import terms as terms_mod
from matgrad.lang.expr import Bound
from matgrad.lang.functions import Shape
from matgrad.limits import Limits
from matgrad.spec import budget

# Edited terms evaluated (each about one evaluation of the claim), and candidate claims
# compared (each a few vector operations over the batch), per failed claim.
MAX_EVALS = 48
MAX_CHECKS = 2048


@dataclasses.dataclass
class Inputs:
    """What the repair search needs besides the reference and the claim's value."""

    claim: Bound
    lets: Mapping[str, Bound]
    # a sub-expression of the claim (or an edit of one) evaluated on the claim's draws
    evaluate: Callable[[Bound], Any]
    # named values the residual may be proportional to: variables and lets ([T, ...])
    named: Callable[[], list[tuple[str, Any]]]
    trials: int
    limits: Limits


@dataclasses.dataclass
class Outcome:
    hint: str | None = None
    skipped: list[str] = dataclasses.field(default_factory=list)
    checks: int = 0  # candidate claims compared
    evals: int = 0  # edited terms evaluated


class _Judge:
    """The check's own test, on many candidate claims at once."""

    def __init__(self, truth: Any, value: Any, rtol: float, atol: float, noise: Any):
        self.truth, self.value = tensors.per_trial(truth, value)
        if noise is not None and tuple(noise.shape) != tuple(self.truth.shape):
            noise = None
        self.bound = tensors.tolerance(self.truth.abs(), rtol, atol, noise)
        self.finite = bool(torch.isfinite(self.truth).all())

    def passes(self, deltas: Any) -> Any:
        """[K] booleans: does value + deltas[k] match on every trial and entry?"""
        cand = self.value.unsqueeze(0) + deltas
        ok = (cand - self.truth.unsqueeze(0)).abs() <= self.bound.unsqueeze(0)
        ok &= torch.isfinite(cand)
        return ok.flatten(1).all(dim=1) & self.finite


def _flat(x: Any, like: Any) -> Any:
    """A term's value as ``[T, entries]`` of the claim (a scalar term fills every entry)."""
    t, k = like.shape
    if not torch.is_tensor(x):
        return torch.full_like(like, float(x))
    v = x.reshape(t, -1).to(like.dtype)
    return v.expand(t, k) if v.shape[1] == 1 and k > 1 else v


def search(
    truth: Any, value: Any, rtol: float, atol: float, noise: Any, expected: Shape, inp: Inputs
) -> Outcome:
    """The first repair of one term, or of two terms, that makes the claim match."""
    out = Outcome()
    judge = _Judge(truth, value, rtol, atol, noise)
    if not judge.finite:
        return out
    terms = terms_mod.split(inp.claim, inp.lets)
    if len(terms) > terms_mod.MAX_TERMS:
        out.skipped.append(
            f"repairs searched over the first {terms_mod.MAX_TERMS} terms of the claim only"
        )
    terms = terms[: terms_mod.MAX_TERMS]
    scope = terms_mod.scope_of(inp.claim, *inp.lets.values())
    per_trial = max(1, inp.limits.max_elements // max(1, inp.trials))
    complex_values = judge.truth.is_complex() or judge.value.is_complex()
    edits = terms_mod.edits(terms, scope, per_trial, inp.limits, complex_values)
    # The budget, before any evaluation: the edited terms that need evaluating, by cost.
    work = 0
    kept: list[terms_mod.Edit] = []
    dropped = 0
    for e in edits:
        if e.bound is not None:
            cost = budget.expr_cost(e.bound).work * inp.trials
            if out.evals >= MAX_EVALS or work + cost > inp.limits.max_work:
                dropped += 1
                continue
            out.evals += 1
            work += cost
        kept.append(e)
    if dropped:
        out.skipped.append(
            f"{dropped} edits of terms not tried (the repair search evaluates at most "
            f"{MAX_EVALS} edited terms, within max_work)"
        )
    t, k = judge.truth.shape
    # Every difference is held at once: the search keeps within max_elements.
    room = max(1, inp.limits.max_elements // max(1, t * k) - 4)
    if len(kept) > room:
        out.skipped.append(f"{len(kept) - room} edits of terms not tried (max_elements)")
        kept = kept[:room]
    values: dict[int, Any] = {}
    deltas = []
    tried: list[terms_mod.Edit] = []
    for e in kept:
        i = e.term.index
        if i not in values:
            values[i] = _flat(inp.evaluate(e.term.bound), judge.truth)
        v = values[i]
        if e.op == "scale":
            new = v * e.factor
        elif e.op == "transpose":  # the last two axes (a matrix, or a batch of them)
            new = v.reshape(t, *expected).transpose(-1, -2).reshape(t, k)
        elif e.op == "conj":
            new = v.conj()
        elif e.op == "sym":
            m = v.reshape(t, *expected)
            new = (0.5 * (m + m.transpose(-1, -2))).reshape(t, k)
        else:
            assert e.bound is not None
            try:
                new = _flat(inp.evaluate(e.bound), judge.truth)
            except (EvalError, RuntimeError, ValueError):
                continue  # cannot be evaluated on these draws (a singular inverse): no repair
        deltas.append(e.term.sign * (new - v))
        tried.append(e)
    kept = tried
    if not deltas:
        return out
    stacked = torch.stack(deltas)
    single = judge.passes(stacked)
    out.checks += len(kept)
    hit = _first(single)
    if hit is not None:
        out.hint = kept[hit].describe()
        return out
    # Two edits of two different terms.
    pairs = [
        (a, b)
        for a, b in itertools.combinations(range(len(kept)), 2)
        if kept[a].term.index != kept[b].term.index
    ]
    budget_left = MAX_CHECKS - out.checks
    if len(pairs) > budget_left:
        out.skipped.append(
            f"two-term repairs: {len(pairs) - budget_left} of {len(pairs)} not tried (at most "
            f"{MAX_CHECKS} candidates)"
        )
        pairs = pairs[: max(0, budget_left)]
    chunk = max(1, room)
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        ia = torch.tensor([a for a, _ in part])
        ib = torch.tensor([b for _, b in part])
        ok = judge.passes(stacked[ia] + stacked[ib])
        out.checks += len(part)
        hit = _first(ok)
        if hit is not None:
            a, b = part[hit]
            out.hint = f"{kept[a].describe()}; and {kept[b].describe()}"
            return out
    return out


def _first(ok: Any) -> int | None:
    idx = torch.nonzero(ok).flatten()
    return int(idx[0]) if idx.numel() else None


# ---- what is missing ------------------------------------------------------------------------


def _number(c: float) -> str:
    if abs(c - round(c)) <= 1e-9 * max(1.0, abs(c)):
        return str(round(c))
    return f"{c:.4g}"


def _rank_one(x: Any) -> Any:
    """Per trial, the rank-one matrix through the largest entry's row and column of ``x``
    [T, m, n] (the skeleton c r / x_pq): equal to ``x`` exactly when ``x`` is rank one, with
    every entry to a few ulps of itself (an SVD would be off by ulps of the largest)."""
    t, _, n = x.shape
    at = x.abs().flatten(1).argmax(dim=1)
    p, q = at // n, at % n
    trials = torch.arange(t, device=x.device)
    col = x[trials, :, q]
    row = x[trials, p, :]
    pivot = x[trials, p, q]
    safe = torch.where(pivot == 0, torch.ones_like(pivot), pivot)
    out = col.unsqueeze(-1) * (row / safe.unsqueeze(-1)).unsqueeze(-2)
    return torch.where((pivot == 0).reshape(t, 1, 1), torch.zeros_like(out), out)


def residual(
    truth: Any,
    value: Any,
    rtol: float,
    atol: float,
    noise: Any,
    expected: Shape,
    named: list[tuple[str, Any]],
    reference: str = "autograd",
) -> str | None:
    """What the difference R = reference - claim is, when it is exactly (to the check's
    tolerance) proportional to one named value, rank one, diagonal, antisymmetric or
    symmetric; None otherwise. A structure that the reference and the claim both have is not
    news (R has it too), so it is not reported."""
    judge = _Judge(truth, value, rtol, atol, noise)
    if not judge.finite:
        return None
    ref = reference
    t, k = judge.truth.shape
    r = judge.truth - judge.value
    for name, x in named:
        if not torch.is_tensor(x) or x.dim() == 0 or x.shape[0] != t or x[0].numel() != k:
            continue
        wide = torch.complex128 if r.is_complex() or x.is_complex() else torch.float64
        b = _flat(x, judge.truth).to(wide)
        den = float((b.abs() ** 2).sum())
        if not den > 0:
            continue
        fit = complex((b.conj() * r.to(wide)).sum()) / den
        if abs(fit.imag) > 1e-9 * max(1.0, abs(fit.real)):
            continue  # a complex factor is no missing term of the claim's own
        c = fit.real
        if not abs(c) > 1e-12:
            continue
        if bool(judge.passes((c * b).to(r.dtype).unsqueeze(0))[0]):
            return (
                f"missing term: the difference {ref} - claim is exactly {_number(c)} * "
                f"({name}), a term the claim leaves out (or has with the wrong factor)?"
            )
    if len(expected) != 2 or min(expected) < 2:
        return None
    m, n = expected
    mats = r.reshape(t, m, n)

    def fits(d: Any) -> bool:
        return bool(judge.passes(d.reshape(1, t, k))[0])

    tol = judge.bound.reshape(t, m, n)

    def keeps(project: Callable[[Any], Any]) -> bool:
        # the reference and the claim both have the structure, to the check's tolerance
        return all(
            bool(((x - project(x)).abs() <= tol).all())
            for x in (judge.truth.reshape(t, m, n), judge.value.reshape(t, m, n))
        )

    if not keeps(_rank_one) and fits(_rank_one(mats)):
        return (
            f"rank one: the difference {ref} - claim is rank one on every trial (an outer "
            "product u @ v.T): a missing term such as a @ b.T?"
        )
    if m != n:
        return None
    eye = torch.eye(n, dtype=torch.bool, device=r.device)
    def diagonal(x: Any) -> Any:
        return x.masked_fill(~eye, 0)

    def skew(x: Any) -> Any:
        return 0.5 * (x - x.transpose(-1, -2))

    def sym(x: Any) -> Any:
        return 0.5 * (x + x.transpose(-1, -2))

    if not keeps(diagonal) and fits(diagonal(mats)):
        return (
            f"diagonal: the difference {ref} - claim is zero off the diagonal (a missing "
            "diagonal term, such as the - G*I of a free-parameter gradient, or * eye(n))"
        )
    if not keeps(skew) and fits(skew(mats)):
        return (
            f"antisymmetric: the difference {ref} - claim is antisymmetric, D.T = -D (a term "
            "T written where T.T belongs gives T.T - T)"
        )
    if not keeps(sym) and fits(sym(mats)):
        return (
            f"symmetric: the difference {ref} - claim is symmetric (a missing term that is "
            "symmetric, such as the transposed half of a product rule)"
        )
    return None
