"""Claim kinds: one module per kind, one registration line each (see :mod:`.base`).

To add a kind: write ``matgrad/claims/<kind>.py`` with a :class:`~.base.ClaimKind` subclass
and ``KIND = ...``, register it below, and document it (docs/format.md). The YAML
key, the parser, the engine, the witnesses, the budget, ``matgrad new`` and ``show`` all read
it from :data:`KINDS`.
"""

from __future__ import annotations

from matgrad.claims import differential, grad, hessian, implementation, jacobian
from matgrad.claims.base import KINDS, ClaimKind, missing_parts, register

register(grad.KIND)
register(differential.KIND)
register(hessian.KIND)
register(jacobian.KIND)
register(implementation.KIND)

DEFAULT = next(iter(KINDS.values()))  # the kind `matgrad new` writes unless told otherwise

__all__ = ["DEFAULT", "KINDS", "ClaimKind", "missing_parts", "register"]
