"""Why did a claim fail? Cheap alternatives tried on the same draws, first fit wins.

Runs only for a failed claim (a passing claim costs nothing). In order:

0. another layout the claim's kind names (a Jacobian transposed, or flattened row by row
   rather than by vec's column stacking), each rearranging the reference itself;
1. transposed (claim = truth^T), wrong sign (claim = -truth), both, or a constant factor
   (claim = c * truth, c fitted by least squares, possibly transposed);
2. another gradient convention (grad claims of symmetric variables: entrywise, frobenius,
   free);
3. symmetry: the claim's symmetric part matches a symmetric truth (not symmetrised, e.g. a
   Hessian 2ab^T for ab^T + ba^T); the claim is the symmetric part of a non-symmetric truth
   (symmetric part only); or the claim matches on draws where the square inputs are made
   symmetric, but not on general ones (symmetric inputs only, e.g. 2Ax for x^T A x);
4. off the diagonal only: a square claim matches on its diagonal and not off it;
5. some trials only: the claim matches on some draws and not others (a domain or
   conditioning problem rather than algebra);
6. swapped variables: the claim is the derivative with respect to another variable of the
   same shape;
7. per-term repairs: one or two of the claim's additive terms edited (transposed, negated,
   dropped, doubled or halved, factors reordered, a transpose moved, symmetrised, ``**-1``
   for ``inv``, ``*`` for ``@``) make it match (``repair.search``);
8. what is missing: the difference autograd - claim is exactly proportional to a variable, a
   let or a term of the claim, or is rank one, diagonal, antisymmetric or symmetric
   (``repair.residual``).

"Matches" means the check's own test (``tensors.tolerance``, docs/decision-rule.md) on every
entry of a trial, with the failed claim's estimated rounding noise when it has one. Each hint
is one line, ``"SHORT: explanation"``; the table shows SHORT.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import torch

from matgrad.engine import repair, tensors
from matgrad.errors import EvalError
from matgrad.lang import terms
from matgrad.lang.functions import Shape

CONVENTION_WORDS = {
    "entrywise": "entrywise gradient (what autograd returns)",
    "frobenius": "Frobenius gradient sym(G) = (G + G.T)/2",
    "free": "free-parameter gradient G + G.T - G*I",
    "conjugate-wirtinger": "conjugate Wirtinger derivative df/dconj(Z)",
    "wirtinger": "Wirtinger derivative df/dZ = conj(df/dconj(Z)) for a real f",
    "pytorch": "complex gradient 2 df/dconj(Z) (torch's .grad)",
}


@dataclasses.dataclass
class Probe:
    """What the diagnosis may look at for one failed claim (tensors are batched [T, ...])."""

    kind: str
    var: str
    truth: Any
    value: Any
    expected: Shape
    rtol: float
    atol: float
    reference: str = "autograd"
    # the reference in the layouts a claim of this kind is often written in by mistake, each
    # with the hint that names the layout (from the kind: ClaimKind.layouts)
    layouts: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    # grad claims of a symmetric variable: the truth under each other convention
    conventions: dict[str, Any] = dataclasses.field(default_factory=dict)
    # truth and claim on the same draws with some square inputs made symmetric, with the
    # names of the inputs that were changed (tried in order until one fits)
    symmetric: Callable[[], Iterable[tuple[list[str], Any, Any]]] | None = None
    # for each other variable of the same shape: its name, the truth for it, the claim value
    swapped: Callable[[], list[tuple[str, Any, Any]]] | None = None
    # searches left out because they would cost too much (see MAX_CANDIDATES), in words
    skipped: list[str] = dataclasses.field(default_factory=list)
    # the estimated rounding noise of the failed comparison ([T, entries], truth and claim
    # together; symmetrised for a square shape so that it serves transposed candidates), or
    # None when none was estimated: candidates are held to the same noise
    noise: Any = None
    # the claim's terms and how to evaluate them (per-term repairs); None: not searched
    repair: repair.Inputs | None = None


def within(truth: Any, value: Any, rtol: float, atol: float, noise: Any = None) -> Any:
    """Per trial: does ``value`` match ``truth`` by the check's test? ([T] booleans)
    ``noise`` ([T, entries]) is the rounding noise allowed per entry (ignored if its shape is
    not the comparison's)."""
    tr, cl = tensors.per_trial(truth, value)
    if cl.shape != tr.shape:
        return torch.zeros(tr.shape[0], dtype=torch.bool, device=tr.device)
    if noise is not None and tuple(noise.shape) != tuple(tr.shape):
        noise = None
    ok = (cl - tr).abs() <= tensors.tolerance(tr.abs(), rtol, atol, noise)
    finite = torch.isfinite(tr).all(dim=1) & torch.isfinite(cl).all(dim=1)
    return ok.all(dim=1) & finite


def _all(truth: Any, value: Any, p: Probe) -> bool:
    return bool(within(truth, value, p.rtol, p.atol, p.noise).all())


def _fit(base: Any, value: Any) -> float | None:
    """The least-squares factor c of value ~ c * base, over every trial and entry."""
    if base.is_complex() or value.is_complex():
        return _complex_fit(base, value)
    b = base.reshape(-1).to(torch.float64)
    v = value.reshape(-1).to(torch.float64)
    if v.numel() == 1 and b.numel() > 1:
        return None
    if v.shape != b.shape:
        return None
    den = float((b * b).sum())
    if not den > 0:
        return None
    return float((b * v).sum()) / den


def _complex_fit(base: Any, value: Any) -> float | None:
    """The least-squares factor of complex values when it is real (a factor 2, a sign);
    None for a complex factor (the conjugation hints name those mistakes)."""
    b = base.reshape(-1).to(torch.complex128)
    v = value.reshape(-1).to(torch.complex128)
    if v.shape != b.shape:
        return None
    den = float((b.abs() ** 2).sum())
    if not den > 0:
        return None
    c = complex((b.conj() * v).sum()) / den
    return c.real if abs(c.imag) <= 1e-6 * max(1.0, abs(c.real)) else None


def _layout(p: Probe) -> str | None:
    fits = [h for h, other in p.layouts if not _all(p.truth, other, p) and _all(other, p.value, p)]
    if not fits:
        return None
    also = [h.split(":")[0] for h in fits[1:]]
    return fits[0] + "".join(f" (here the same as the {a})" for a in also)


def _linear(p: Probe) -> str | None:
    """Transposed, wrong sign, both, or a constant factor."""
    truth, value, ref = p.truth, p.value, p.reference
    square = len(p.expected) == 2 and p.expected[0] == p.expected[1] and p.expected[0] > 1
    bases: list[tuple[bool, Any]] = [(False, truth)]
    if square:
        tt = truth.transpose(-1, -2)
        if not _all(truth, tt, p):  # a symmetric truth has no distinct transpose
            bases.insert(0, (True, tt))
    fits: dict[tuple[bool, str], float] = {}
    for transposed, base in bases:
        c = _fit(base, value)
        if c is None or not abs(c) > 1e-12:
            continue
        if not _all(c * base, value, p):
            continue
        if abs(c - 1) <= 1e-6:
            fits[(transposed, "one")] = c
        elif abs(c + 1) <= 1e-6:
            fits[(transposed, "minus")] = c
        else:
            fits[(transposed, "factor")] = c
    if (True, "one") in fits:
        return (
            f"transposed: the claim equals the {ref} value transposed (a numerator/denominator "
            f"layout mix-up; did you mean .T?)"
        )
    if (False, "minus") in fits:
        return f"wrong sign: the claim equals minus the {ref} value"
    if (True, "minus") in fits:
        return f"transposed, wrong sign: the claim equals minus the {ref} value transposed"
    for transposed in (False, True):
        if (transposed, "factor") in fits:
            c = fits[(transposed, "factor")]
            t = " transposed" if transposed else ""
            return (
                f"{'transposed, ' if transposed else ''}off by a factor {c:.3f}: the claim "
                f"equals {c:.3f} x the {ref} value{t}"
            )
    return None


def _convention(p: Probe) -> str | None:
    for name, truth in p.conventions.items():
        if _all(truth, p.value, p):
            return (
                f"convention {name}: the claim is the {CONVENTION_WORDS[name]} of {p.var}; "
                f"set convention: {name}, or claim the gradient in the identity's convention"
            )
    return None


def _complex(p: Probe) -> str | None:
    """The complex mistakes: conjugated (.T where .H was meant, or the reverse), the real or
    the imaginary part only."""
    truth, ref = p.truth, p.reference
    if not truth.is_complex():
        return None
    if _all(truth.conj(), p.value, p):
        return (
            f"conjugated: the claim equals the complex conjugate of the {ref} value (.T where "
            f".H was meant, or conj missing or extra?)"
        )
    square = len(p.expected) == 2 and p.expected[0] == p.expected[1] and p.expected[0] > 1
    if square and _all(truth.conj().transpose(-1, -2), p.value, p):
        return (
            f"conjugate-transposed: the claim equals the {ref} value conjugate-transposed (.H "
            f"where none was meant?)"
        )
    if _all(truth.real, p.value, p) and not _all(truth.real, truth, p):
        return f"real part only: the claim equals the real part of the {ref} value"
    if _all(1j * truth.imag, p.value, p) or _all(truth.imag, p.value, p):
        return f"imaginary part only: the claim equals the imaginary part of the {ref} value"
    return None


def _symmetric(p: Probe) -> str | None:
    square = len(p.expected) == 2 and p.expected[0] == p.expected[1] and p.expected[0] > 1
    if square and p.value.shape == p.truth.shape:
        sym_truth = 0.5 * (p.truth + p.truth.transpose(-1, -2))
        sym_value = 0.5 * (p.value + p.value.transpose(-1, -2))
        truth_symmetric = _all(p.truth, sym_truth, p)
        if truth_symmetric and _all(p.truth, sym_value, p):
            return (
                f"not symmetrised: the symmetric part (C + C.T)/2 of the claim C matches "
                f"{p.reference}, which is symmetric; the claim is missing its transposed half"
            )
        if not truth_symmetric and _all(sym_truth, p.value, p):
            return (
                f"symmetric part only: the claim equals the symmetric part (G + G.T)/2 of the "
                f"{p.reference} value G, which is not symmetric"
            )
    return None


def _symmetric_inputs(p: Probe) -> str | None:
    if p.symmetric is None:
        return None
    names = next((n for n, truth, value in p.symmetric() if _all(truth, value, p)), None)
    if names is None:
        return None
    which = ", ".join(names)
    verb = "is" if len(names) == 1 else "are"
    return (
        f"symmetric inputs only: the claim matches {p.reference} when {which} {verb} symmetric, "
        f"but not in general (a formula valid only for symmetric matrices, or a missing "
        f"symmetrisation such as 2 * A @ x for (A + A.T) @ x)"
    )


def _off_diagonal(p: Probe) -> str | None:
    """The claim matches on the diagonal of a square quantity and only there."""
    square = len(p.expected) == 2 and p.expected[0] == p.expected[1] and p.expected[0] > 1
    if not square or p.value.shape != p.truth.shape:
        return None
    eye = torch.eye(p.expected[0], dtype=p.truth.dtype, device=p.truth.device)
    if not _all(p.truth * eye, p.value * eye, p):
        return None
    return (
        f"off the diagonal only: the claim matches {p.reference} on the diagonal but not off "
        f"it (a factor 2 off the diagonal, as between the free and the entrywise gradient of "
        f"a symmetric matrix, or a missing half of a symmetric term)"
    )


def _some_trials(p: Probe) -> str | None:
    ok = within(p.truth, p.value, p.rtol, p.atol, p.noise)
    t = int(ok.numel())
    good = int(ok.sum())
    if not 0 < good < t:
        return None
    bad = [str(i) for i in torch.nonzero(~ok).flatten().tolist()]
    shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
    return (
        f"some trials only: the claim matches {p.reference} on {good} of {t} trials (not on "
        f"trial{'s' if len(bad) > 1 else ''} {shown}): suspect the domain or conditioning "
        f"(draws near a singular or non-differentiable point), not the algebra"
    )


def _swapped(p: Probe) -> str | None:
    if p.swapped is None:
        return None
    for name, truth, value in p.swapped():
        if _all(truth, value, p):
            return (
                f"swapped variables: the claim is the {p.kind} for {name}, not for {p.var} "
                f"(same shape; check the order of the arguments)"
            )
    return None


# An edited term that cannot be evaluated on these draws (an inverse made singular, a value
# over a limit) is no repair; the diagnosis must never turn a failure into an error.
_CANNOT_EVALUATE = (EvalError, RuntimeError, ValueError)


def _repairs(p: Probe) -> str | None:
    if p.repair is None:
        return None
    try:
        found = repair.search(p.truth, p.value, p.rtol, p.atol, p.noise, p.expected, p.repair)
    except _CANNOT_EVALUATE as e:
        p.skipped.append(f"per-term repairs not tried ({type(e).__name__} on these draws)")
        return None
    if found.hint is None:
        p.skipped.extend(found.skipped)
    return found.hint


def _missing(p: Probe) -> str | None:
    if p.repair is None:
        return None
    inp = p.repair
    try:
        named = inp.named()
        parts = terms.split(inp.claim, inp.lets)[: terms.MAX_TERMS]
        if len(parts) > 1:
            named += [(t.text, inp.evaluate(t.bound)) for t in parts]
        return repair.residual(
            p.truth, p.value, p.rtol, p.atol, p.noise, p.expected, named, p.reference
        )
    except _CANNOT_EVALUATE:
        return None


STEPS = (
    _layout,
    _convention,  # before the factor: pytorch's .grad is 2x the conjugate Wirtinger derivative
    _linear,
    _complex,
    _symmetric,
    _some_trials,
    _swapped,
    _repairs,
    _off_diagonal,
    _symmetric_inputs,
    _missing,
)


# The searches that re-run the check on other inputs (symmetric inputs, swapped variables) try
# at most this many candidates each, and only within the work budget: over that the search is
# skipped, and said so, rather than letting a claim over many variables cost minutes.
MAX_CANDIDATES = 16


def diagnose(p: Probe) -> str | None:
    """The first hint that fits a failed claim; else a note on the searches that were skipped
    as too costly, or None."""
    for step in STEPS:
        hint = step(p)
        if hint is not None:
            return hint
    if p.skipped:
        return "diagnosis incomplete: " + "; ".join(p.skipped)
    return None
