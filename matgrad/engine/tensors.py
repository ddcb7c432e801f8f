"""Small tensor helpers that several engine modules share, one implementation each.

All tensors are batched: a leading trial dimension ``T``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from matgrad.lang.batch import fill_like, rows
from matgrad.lang.expr import Bound, as_tensor

__all__ = [
    "NOISE_FACTOR",
    "NOISE_RUNS",
    "Perturbation",
    "evaluate",
    "fill_like",
    "noise",
    "per_trial",
    "rows",
    "tolerance",
    "with_lets",
]

# The rounding noise of an entry is estimated by NOISE_RUNS re-evaluations with every
# intermediate result moved by PERTURBATION_ULPS ulps (see Perturbation), and an entry may
# differ by NOISE_FACTOR (per dtype) times the spread they show. All chosen from measurement:
# see docs/decision-rule.md ("Choosing K, the perturbation and C").
NOISE_RUNS = 3
PERTURBATION_ULPS = 16
NOISE_FACTOR: dict[Any, float] = {torch.float64: 64.0, torch.float32: 16.0}


class Perturbation:
    """Monte Carlo arithmetic on one evaluation: each tensor it is applied to is multiplied by
    ``1 + s * PERTURBATION_ULPS * eps`` (``s`` = +1 or -1 at random per element, ``eps`` the
    dtype's machine epsilon), which moves every nonzero entry by that many ulps, as roundings
    that went the other way would; exact zeros stay zero. Not one ulp: a library routine
    (LAPACK's eigh, a matrix product) often rounds a one-ulp change of its input back to the
    same output bits, and its own rounding would then go unseen. A tensor that records
    gradients also gets a hook that perturbs the gradient flowing back through it likewise, so
    autograd's backward pass is perturbed as its forward pass is. The signs come from a
    dedicated generator, seeded: the estimate is the same on every run."""

    def __init__(self, seed: int, forward: bool = True):
        self.gen = torch.Generator().manual_seed(seed)
        # False: only the gradients flowing back are moved (the forward values are moved by
        # EveryOperation, which autograd's backward pass does not pass through)
        self.forward = forward

    def move(self, x: Any) -> Any:
        """``x`` with each nonzero entry moved by PERTURBATION_ULPS ulps, at least that many
        steps of the smallest subnormal (where a relative move would round away)."""
        # Outside EveryOperation: its own steps moved again could cancel the move.
        # In place where it can be: the estimate runs on every intermediate of f, and a
        # temporary per step of this formula would make it the memory peak of a witness.
        with _disable_current_modes():
            info = torch.finfo(x.dtype)
            s = torch.randint(0, 2, tuple(x.shape), generator=self.gen, dtype=torch.int8)
            step = x.abs().mul_(info.eps).clamp_min_(info.smallest_normal * info.eps)
            sign = s.to(device=x.device, dtype=step.dtype)
            del s
            step.mul_(PERTURBATION_ULPS).mul_(sign.mul_(2).sub_(1))
            del sign
            return torch.where(x == 0, x, step.add_(x) if not x.is_complex() else x + step)

    def __call__(self, x: Any) -> Any:
        if not _inexact(x) or x.numel() == 0:
            return x
        out = self.move(x) if self.forward else x
        if out.requires_grad:
            out.register_hook(self._move_gradient)
        return out

    def _move_gradient(self, g: Any) -> Any:
        # a result of a function with several (qr(A).Q) that the expression does not use
        # receives no gradient: autograd calls the hook with None
        return None if g is None else self.move(g)


def _inexact(x: Any) -> bool:
    """A floating-point or complex tensor (what rounding touches)."""
    floating = getattr(x, "is_floating_point", lambda: False)()
    return bool(floating or getattr(x, "is_complex", lambda: False)())


class EveryOperation(TorchDispatchMode):
    """Monte Carlo arithmetic below matgrad's own expressions: while active, the floating-point
    result of every tensor operation torch runs (those inside a function such as softmax or
    logsumexp, and those of autograd's backward pass, which run below Python) goes through
    ``perturbation``. Views and in-place operations are left alone (their results alias their
    inputs). Used only for the rounding-noise estimate."""

    def __init__(self, perturbation: Perturbation):
        super().__init__()  # type: ignore[no-untyped-call]
        self.perturbation = perturbation

    def __torch_dispatch__(
        self, func: Any, types: Any, args: Any = (), kwargs: Any = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if func.is_view or func._schema.is_mutable or func in _EXACT:
            return out
        if isinstance(out, torch.Tensor):
            return self._moved(out)
        if isinstance(out, (tuple, list)):
            return type(out)(self._moved(o) if isinstance(o, torch.Tensor) else o for o in out)
        return out

    def _moved(self, x: Any) -> Any:
        # Forward-mode autograd stands for a missing tangent by an efficient zero tensor,
        # which has no storage: reading it (abs) crashes the process. It is exact anyway.
        if not _inexact(x) or x.numel() == 0 or x._is_zerotensor():
            return x
        return self.perturbation.move(x)


# torch wraps a mode's __torch_dispatch__ so that torch.compile leaves it alone, and that
# wrapper imports torch._dynamo on its first call (about a second). matgrad never compiles:
# telling the wrapper its answer up front keeps the import out of every check that estimates
# noise. (Where a torch version wraps differently, the import simply happens.)
_raw_dispatch = getattr(EveryOperation.__torch_dispatch__, "__wrapped__", None)
if _raw_dispatch is not None:
    setattr(_raw_dispatch, "__dynamo_disable", _raw_dispatch)


# Operations whose results are exact (copies, shapes, constants): not perturbed.
_EXACT = {
    torch.ops.aten.clone.default,
    torch.ops.aten.detach.default,
    torch.ops.aten._to_copy.default,
    torch.ops.aten.zeros_like.default,
    torch.ops.aten.ones_like.default,
    torch.ops.aten.empty_like.default,
    torch.ops.aten.full_like.default,
    torch.ops.aten.zeros.default,
    torch.ops.aten.ones.default,
    torch.ops.aten.full.default,
    torch.ops.aten.new_zeros.default,
    torch.ops.aten.new_ones.default,
    torch.ops.aten.new_full.default,
    torch.ops.aten.new_empty.default,
    torch.ops.aten.empty.memory_format,
    torch.ops.aten.neg.default,
    torch.ops.aten.abs.default,
    torch.ops.aten.eye.default,
    torch.ops.aten.randint.generator,
    torch.ops.aten.randint.low_generator,
}


def evaluate(
    bound: Bound,
    env: dict[str, Any],
    like: Any,
    memo: dict[str, Any] | None = None,
    perturb: Perturbation | None = None,
) -> Any:
    """``bound`` evaluated on the batched tensors of ``env``. An expression that folds to a
    constant (a Python float) is filled to ``[T, *bound.shape]``; ``like`` gives ``T``, the
    dtype and the device. With a ``memo``, a sub-expression written twice is computed once
    (only where no autograd graph is recorded: see ``Bound.evaluate``). With ``perturb``,
    every intermediate result goes through it (the rounding-noise estimate)."""
    return as_tensor(bound.evaluate(env, torch, like, memo, perturb), bound.shape, torch, like)


def with_lets(
    lets: Iterable[tuple[str, Bound]],
    env: dict[str, Any],
    like: Any,
    perturb: Perturbation | None = None,
) -> dict[str, Any]:
    """``env`` with each ``let`` evaluated in order (each may use the ones before it)."""
    for name, bound in lets:
        env[name] = evaluate(bound, env, like, perturb=perturb)
    return env


COMPLEX_OF: dict[Any, Any] = {torch.float64: torch.complex128, torch.float32: torch.complex64}


def real_dtype(x: Any) -> Any:
    """The real dtype of ``x``'s precision: float64 for complex128, float32 for complex64
    (a run's ``like`` has it, whatever the values it computes)."""
    return x.real.dtype if x.is_complex() else x.dtype


def cast(x: Any, dtype: Any, device: Any) -> Any:
    """A drawn tensor (float64 or complex128 on the CPU) in the run's ``dtype`` on ``device``:
    a complex draw goes to the complex dtype of that precision (complex64 with float32)."""
    if x.is_complex():
        dtype = COMPLEX_OF.get(dtype, dtype)
    return x.to(device=device, dtype=dtype)


def per_trial(reference: Any, value: Any) -> tuple[Any, Any]:
    """``reference`` and ``value`` as ``[T, entries]``; a value with one entry per trial (a
    constant scalar claim) is expanded to every entry of the reference."""
    t = reference.shape[0]
    ref = reference.reshape(t, -1)
    val = value.reshape(t, -1)
    if val.shape[1] == 1 and ref.shape[1] > 1:
        val = val.expand_as(ref)
    return ref, val


def tolerance(mag: Any, rtol: float, atol: float, noise: Any = None) -> Any:
    """The bound on ``|claim - reference|`` per entry, from ``mag = |reference|`` ``[T, k]``:
    ``rtol * |reference| + atol * (largest |reference| of the trial) + C * noise``, C the
    dtype's ``NOISE_FACTOR``.

    The one statement of matgrad's test (docs/decision-rule.md): a claim matches when every
    entry is within it. Nothing in it is absolute, so it is unchanged in meaning when f or a
    variable is rescaled. ``atol`` (0 by default) is an explicit loosening relative to the
    trial's largest entry. ``noise`` ``[T, k]`` is the estimated rounding noise of each entry
    (see :func:`noise`), computed only for a claim that fails without it; left out, the test
    is the strict ``rtol`` one, and an exact zero must be matched exactly."""
    bound = mag * rtol
    if atol:
        bound = bound + mag.amax(dim=1, keepdim=True) * atol
    if noise is not None:
        bound = bound + noise * NOISE_FACTOR.get(noise.dtype, NOISE_FACTOR[torch.float64])
    return bound


def noise(base: Any, runs: Iterable[Any]) -> Any:
    """The rounding noise of each entry of ``base`` ``[T, ...]`` as ``[T, k]``: the largest
    deviation from it of its re-evaluations under :class:`Perturbation`. A deviation that is
    not finite gives no estimate (0: the entry is then held to the strict test)."""
    t = base.shape[0]
    b = base.reshape(t, -1)
    out = torch.zeros(b.shape, dtype=b.abs().dtype, device=b.device)  # real for complex too
    for r in runs:
        d = (r.reshape(t, -1).expand_as(b) - b).abs()
        out = torch.maximum(out, torch.where(torch.isfinite(d), d, torch.zeros_like(d)))
    return out
