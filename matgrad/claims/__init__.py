"""Claim kinds: one module per kind, one registration line each (see :mod:`.base`).

To add a kind: write ``matgrad/claims/<kind>.py`` with a :class:`~.base.ClaimKind` subclass
and ``KIND = ...``, register it below, and document it (docs/format.md). The YAML
key, the parser, the engine, the witnesses, the budget, ``matgrad new`` and ``show`` all read
it from :data:`KINDS`.
"""

from __future__ import annotations

from typing import Any

from matgrad.claims import differential, grad, hessian, implementation, jacobian
from matgrad.claims.base import KINDS, ClaimKind, missing_parts, register

register(grad.KIND)
register(differential.KIND)
register(hessian.KIND)
register(jacobian.KIND)
register(implementation.KIND)

DEFAULT = next(iter(KINDS.values()))  # the kind `matgrad new` writes unless told otherwise



def kind_of(claim: Any, ident: Any) -> ClaimKind:
    """The kind object that answers for ``claim`` (a ``spec.schema.Claim``) in ``ident``:
    its registered kind, or for a claim about two variables that kind paired with the second
    (the schema accepts a second variable only where :meth:`ClaimKind.paired` gives one)."""
    kind = KINDS[claim.kind]
    if claim.var2 is None:
        return kind
    paired = kind.paired(claim.var2, ident.vars[claim.var2].shape)
    assert paired is not None, f"{claim.kind} takes one variable"
    return paired


__all__ = ["DEFAULT", "KINDS", "ClaimKind", "kind_of", "missing_parts", "register"]
