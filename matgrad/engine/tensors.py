"""Small tensor helpers that several engine modules share, one implementation each.

All tensors are batched: a leading trial dimension ``T``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from matgrad.lang.batch import fill_like, rows
from matgrad.lang.expr import Bound, as_tensor

__all__ = ["evaluate", "fill_like", "per_trial", "rows", "tolerance", "with_lets"]


def evaluate(
    bound: Bound, env: dict[str, Any], like: Any, memo: dict[str, Any] | None = None
) -> Any:
    """``bound`` evaluated on the batched tensors of ``env``. An expression that folds to a
    constant (a Python float) is filled to ``[T, *bound.shape]``; ``like`` gives ``T``, the
    dtype and the device. With a ``memo``, a sub-expression written twice is computed once
    (only where no autograd graph is recorded: see ``Bound.evaluate``)."""
    return as_tensor(bound.evaluate(env, torch, like, memo), bound.shape, torch, like)


def with_lets(lets: Iterable[tuple[str, Bound]], env: dict[str, Any], like: Any) -> dict[str, Any]:
    """``env`` with each ``let`` evaluated in order (each may use the ones before it)."""
    for name, bound in lets:
        env[name] = evaluate(bound, env, like)
    return env


def per_trial(reference: Any, value: Any) -> tuple[Any, Any]:
    """``reference`` and ``value`` as ``[T, entries]``; a value with one entry per trial (a
    constant scalar claim) is expanded to every entry of the reference."""
    t = reference.shape[0]
    ref = reference.reshape(t, -1)
    val = value.reshape(t, -1)
    if val.shape[1] == 1 and ref.shape[1] > 1:
        val = val.expand_as(ref)
    return ref, val


def tolerance(mag: Any, rtol: float, atol: float) -> Any:
    """The bound on ``|claim - reference|`` per entry, from ``mag = |reference|`` ``[T, k]``:
    ``atol * max(1, largest |reference| of the trial) + rtol * |reference|``.

    The one statement of matgrad's test: a claim matches when every entry is within it."""
    top = mag.amax(dim=1, keepdim=True)
    return torch.add(top.clamp_min(1.0).mul_(atol), mag, alpha=rtol)
