"""How many numbers an identity asks for, computed from shapes before anything is allocated.

The element budget ``max_elements`` bounds the memory of one identity's check. It counts, over
all trials: every variable and its direction, every tensor each expression creates (lets, f and
the claims), and what autograd returns for each claim (a gradient, a directional derivative, or
an ``n x n`` hessian). Autograd keeps about as much again for its backward pass, so memory is a
small multiple of ``8 * max_elements`` bytes in float64. No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable

from matgrad.errors import LimitError
from matgrad.expr import Bound, Name
from matgrad.functions import Shape, numel
from matgrad.limits import Limits


def expr_elements(bound: Bound) -> int:
    """Elements per trial of every tensor evaluating ``bound`` creates (names and constants
    create none: they are looked up or folded)."""
    total = 0
    stack = [bound]
    while stack:
        b = stack.pop()
        if b.static is None and not isinstance(b.node, Name):
            total += numel(b.shape)
        stack.extend(b.args)
    return total


def variables_elements(shapes: Iterable[Shape]) -> int:
    """Elements per trial of the variables and their directions (one of each per variable)."""
    return 2 * sum(numel(s) for s in shapes)


def truth_elements(kind: str, var_shape: Shape, f_shape: Shape) -> int:
    """Elements per trial of what autograd returns for one claim."""
    if kind == "grad":
        return numel(var_shape)
    if kind == "differential":
        return numel(f_shape)
    return numel(var_shape) ** 2  # hessian


def _refuse(what: str, per_trial: int, trials: int, limits: Limits) -> LimitError:
    return LimitError(
        f"{what} take {per_trial} elements per trial, {per_trial * trials} over {trials} "
        f"trials, over the limit max_elements={limits.max_elements} (raise it with "
        f"--limit max_elements=N, or use fewer trials)"
    )


def check_variables(shapes: Iterable[Shape], trials: int, limits: Limits) -> None:
    """Refuse variables whose samples alone would exceed the element budget."""
    per_trial = variables_elements(shapes)
    if per_trial * trials > limits.max_elements:
        raise _refuse("the variables and their directions", per_trial, trials, limits)


def check_total(per_trial: int, trials: int, limits: Limits) -> None:
    """Refuse an identity whose tensors, all counted, would exceed the element budget."""
    if per_trial * trials > limits.max_elements:
        raise _refuse(
            "the variables, directions, expressions and autograd results of this identity",
            per_trial,
            trials,
            limits,
        )
