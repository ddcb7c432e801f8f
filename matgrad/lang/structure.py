"""What the binder can prove about a sub-expression's structure before any draw: whether it is
a symmetric matrix.

Functions defined on symmetric matrices (``eigvalsh``, ``eigvecsh``) read only one triangle of
their argument; given a matrix that is not symmetric they silently compute something else (the
eigenvalues of its symmetric part, say), so a claim about them would be checked against the
wrong function. The binder therefore accepts their argument only when it is symmetric by
construction, as proved here:

* a variable on a symmetric domain (``symmetric``, ``spd``, ``diagonal``), or a ``let`` proved
  symmetric;
* ``sym(M)``, ``eye(n)``, ``diag(v)`` of a vector, ``outer(x, x)``, a symmetric list literal, a
  one-entry value;
* ``S.T``, ``-S``, ``c * S``, ``S / c``, ``S1 + S2``, ``S1 - S2``, and ``inv``, ``expm``,
  ``matpow``, ``pinv``, ``sinm``, ``cosm`` of a symmetric S;
* a product that reads the same backwards with transposes: ``A @ A.T``, ``A.T @ A``,
  ``X @ S @ X.T`` (S symmetric), ``B.T @ S1 @ S2 @ S1 @ B`` and so on.

Anything else is refused with a message that says to wrap it in ``sym(...)`` (to mean the
symmetric part) or to declare the variable symmetric.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from matgrad.lang.functions import is_scalar

PRESERVING = frozenset({"inv", "expm", "matpow", "pinv", "sinm", "cosm", "logm", "sqrtm"})
ALWAYS = frozenset({"sym"})


def is_symmetric(b: Any, symmetric_names: frozenset[str]) -> bool:
    """Whether the bound expression ``b`` is a symmetric matrix by construction."""
    from matgrad.lang import expr  # the node types (expr imports this module)

    node = b.node
    shape = b.shape
    if is_scalar(shape) or b.static is not None:
        return True
    if len(shape) < 2 or shape[-1] != shape[-2]:
        return False

    def sym(a: Any) -> bool:
        return is_symmetric(a, symmetric_names)

    if isinstance(node, expr.Name):
        return node.name in symmetric_names
    if isinstance(node, (expr.Transpose, expr.Neg)):
        return sym(b.args[0])
    if isinstance(node, expr.Attr) and node.attr == "mT":
        return sym(b.args[0])
    if isinstance(node, expr.Literal):
        rows = b.value
        return len(shape) == 2 and all(
            rows[i][j] == rows[j][i] for i in range(shape[0]) for j in range(shape[1])
        )
    if isinstance(node, expr.BinOp):
        left, right = b.args
        if node.op in "+-":
            return sym(left) and sym(right)
        if node.op in "*/":
            return (is_scalar(right.shape) and sym(left)) or (
                node.op == "*" and is_scalar(left.shape) and sym(right)
            )
        if node.op == "@":
            return _palindrome(_factors(b, expr), sym, expr)
        return False
    if isinstance(node, expr.Call):
        if node.fn in ALWAYS:
            return True
        if node.fn == "eye":
            return not dict(b.options).get("k") and len(b.args) == 1
        if node.fn == "diag":
            return bool(len(b.args[0].shape) == 1 or b.args[0].shape[-1] == 1)
        if node.fn == "outer":
            return bool(b.args[0].node.text == b.args[1].node.text)
        if node.fn == "kron":
            return sym(b.args[0]) and sym(b.args[1])
        if node.fn in PRESERVING:
            return sym(b.args[0])
    return False


def _factors(b: Any, expr: Any) -> list[Any]:
    """The factors of a chain of ``@`` products, left to right."""
    if isinstance(b.node, expr.BinOp) and b.node.op == "@":
        return _factors(b.args[0], expr) + _factors(b.args[1], expr)
    return [b]


def _key(b: Any, expr: Any, transposed: bool = False) -> tuple[bool, str]:
    """A factor as (transposed?, text of what is transposed), so ``X.T`` and the transpose of
    ``X`` compare equal."""
    while isinstance(b.node, expr.Transpose) or (
        isinstance(b.node, expr.Attr) and b.node.attr == "mT"
    ):
        transposed = not transposed
        b = b.args[0]
    return transposed, b.node.text


def _palindrome(factors: list[Any], sym: Callable[[Any], bool], expr: Any) -> bool:
    k = len(factors)
    for i in range(k // 2):
        a, b = factors[i], factors[k - 1 - i]
        mirrored = _key(a, expr) == _key(b, expr, transposed=True)
        if not (mirrored or (_key(a, expr) == _key(b, expr) and sym(a))):
            return False
    return k % 2 == 0 or sym(factors[k // 2])
