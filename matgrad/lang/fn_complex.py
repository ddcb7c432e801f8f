"""Complex parts: ``conj``, ``real``, ``imag``, ``angle`` (``abs`` is in fn_piecewise).

Each is elementwise and keeps the shape. On a real argument ``conj`` and ``real`` return it,
``imag`` returns zeros and ``angle`` 0 or pi; a real function of a complex argument (``real``,
``imag``, ``abs``, ``angle``) is what makes a loss real, so a ``grad`` claim can be made of it.
The conjugate transpose is the attribute ``.H`` (``matgrad.lang.expr``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matgrad.lang.functions import Arg, Shape, entrywise, register


def _same(args: Sequence[Arg]) -> Shape:
    return args[0].shape


def _part(name: str, summary: str, op: Any) -> None:
    register(
        name,
        f"{name}(z)",
        summary,
        "shape of z",
        _same,
        category="elementwise",
        cost=entrywise,
        sensitive=None,
    )(op)


def _conj(torch: Any, z: Any) -> Any:
    return torch.conj(z).resolve_conj() if z.is_complex() else z


def _real(torch: Any, z: Any) -> Any:
    return torch.real(z) if z.is_complex() else z


def _imag(torch: Any, z: Any) -> Any:
    return torch.imag(z) if z.is_complex() else torch.zeros_like(z)


def _angle(torch: Any, z: Any) -> Any:
    return torch.angle(z)


_part("conj", "Elementwise complex conjugate (Z.H is conj(Z).T)", _conj)
_part("real", "Elementwise real part", _real)
_part("imag", "Elementwise imaginary part (0 for a real argument)", _imag)
_part("angle", "Elementwise argument (phase) in (-pi, pi]; smooth away from z <= 0", _angle)
