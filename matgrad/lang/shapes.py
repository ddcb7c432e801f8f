"""Shape rules of the operators, decided before any tensor exists: broadcasting (one-sided
only), ``@`` over batch axes, and indexing.

Broadcasting is deliberate. Two operands of an elementwise operator (``+ - * /``, a
comparison, ``where``) may differ in shape only when the result has the shape of one of them:

* ``[m, n] + [n]`` (a bias on every row) and ``[B, H, T] * [B, 1, T]`` (a mask shared by the
  heads) are allowed: the smaller operand is repeated along the axes it lacks or has as 1;
* ``[n, 1] + [1, n]`` is refused: its result ``[n, n]`` is bigger than both operands, a silent
  outer product, which is the layout mistake a checker exists to catch (write ``outer(x, y)``
  or make both operands the result's shape);
* an operand with one entry (a scalar, ``[1, 1]``) goes with anything and takes the other's
  shape, as before.

``@`` follows ``torch.matmul``: vectors are promoted and the promoted axis removed, leading axes
are batch axes, broadcast by the same one-sided rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from matgrad.lang.functions import Shape, fmt_shape, is_scalar


class RuleError(Exception):
    """A shape rule does not hold; the caller adds the expression's text."""


def broadcast(a: Shape, b: Shape) -> Shape | None:
    """torch's broadcast of two shapes, or None when they do not broadcast."""
    out: list[int] = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y) if 1 in (x, y) else x)
    return tuple(reversed(out))


def elementwise(shapes: Sequence[Shape]) -> Shape:
    """The result shape of an elementwise operation on operands of ``shapes``: the largest
    operand's shape, when every other operand broadcasts to it one-sidedly."""
    big = [s for s in shapes if not is_scalar(s)]
    if not big:  # every operand has one entry: the longest shape, as before ([1, 1] * 2)
        return max(shapes, key=len)
    out = big[0]
    for s in big[1:]:
        if s == out:
            continue
        both = broadcast(out, s)
        if both is None:
            raise RuleError("mismatch")
        if both not in (out, s):
            raise RuleError("two-sided")
        out = both
    for s in big:
        if broadcast(out, s) != out:
            raise RuleError("two-sided")
    return out


def matmul(a: Shape, b: Shape) -> Shape:
    """The result shape of ``a @ b`` (``torch.matmul``, batch axes broadcast one-sidedly).
    Raises RuleError with the reason: "scalar", "inner" or "batch"."""
    if not a or not b:
        raise RuleError("scalar")
    ma = (1, a[0]) if len(a) == 1 else a
    mb = (b[0], 1) if len(b) == 1 else b
    if ma[-1] != mb[-2]:
        raise RuleError("inner")
    batch_a, batch_b = ma[:-2], mb[:-2]
    batch = broadcast(batch_a, batch_b)
    if batch is None or batch not in (batch_a, batch_b):
        raise RuleError("batch")
    rows = () if len(a) == 1 else (ma[-2],)
    cols = () if len(b) == 1 else (mb[-1],)
    return batch + rows + cols


def describe(shapes: Sequence[Shape]) -> str:
    return " and ".join(fmt_shape(s) for s in shapes)
