"""Shape helpers for batched tensors (a leading trial dimension ``T``), shared by the claim
kinds and the engine. They use only tensor methods, so this module imports no torch."""

from __future__ import annotations

from typing import Any


def rows(v: Any, like: Any) -> Any:
    """A per-trial vector ``[T]`` shaped to broadcast against ``like`` ``[T, ...]``."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def fill_like(value: Any, like: Any) -> Any:
    """A claim value ``[T, ...]`` in the shape of ``like`` ``[T, ...]``: reshaped when it has
    as many entries, else one value per trial (a constant scalar claim) filling the shape."""
    if value.numel() == like.numel():
        return value.reshape(like.shape)
    return rows(value.reshape(value.shape[0]), like).expand_as(like)
