"""How much memory and time an identity asks for, computed from shapes before anything runs.

The element budget ``max_elements`` bounds the memory of one identity's check. It counts, over
all trials: every variable and its direction, every tensor each expression creates (lets, f and
the claims), and what autograd returns for each claim (a gradient, a directional derivative, or
an ``n x n`` hessian). Autograd keeps about as much again for its backward pass, so memory is a
small multiple of ``8 * max_elements`` bytes in float64.

The work budget ``max_work`` bounds the time. Work is counted in multiply-adds of a matrix
product (the cheapest operation per unit on a CPU); other operations are weighted by what they
cost relative to it, as measured with torch in float64 on a CPU: an exponential or an addition
about 30 multiply-adds per entry, an inverse about 6 n^3, a matrix exponential about 20 n^3,
the QR decomposition behind a random orthogonal matrix about 60 n^3 (each function's weight is
the ``cost`` on its entry in ``matgrad.lang.functions``). The estimate then counts how often
autograd goes over f: once to check it, and then as each claim kind says (its ``passes``):
five times more for the gradients, nine for each directional derivative (reverse over
reverse), five plus four per entry of the variable for each hessian, two plus two per entry
of f for each jacobian. When f, a let or a claim calls a function the degeneracy guard measures,
its surveys of the draw add up to GUARD_SURVEYS evaluations of f (no autograd).
Each launch of a tensor operation adds a fixed 200,000 (tens of microseconds), whatever its
size. It is an estimate, within a few times of the truth, meant to refuse the
identities that would run for many minutes, not to time the others. No torch here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from matgrad.claims import KINDS, ClaimKind
from matgrad.errors import LimitError
from matgrad.lang import overlay
from matgrad.lang.domains import DOMAINS
from matgrad.lang.expr import BinOp, Bound, Call, Compare, Name, Transpose
from matgrad.lang.functions import ENTRY, Arg, Shape, entrywise, numel
from matgrad.limits import Limits


@dataclasses.dataclass(frozen=True)
class Cost:
    """What evaluating one expression once asks for, per trial where it scales with trials."""

    elements: int  # elements of every tensor it creates (names and constants create none)
    work: int  # estimated work (see the module docstring)
    calls: int  # tensor operations launched, whatever the batch size


def expr_cost(bound: Bound) -> Cost:
    """The :class:`Cost` of evaluating ``bound`` once, from one walk over it."""
    elements = work = calls = 0
    stack = [bound]
    while stack:
        b = stack.pop()
        if b.static is None and not isinstance(b.node, Name):
            elements += numel(b.shape)
            work += _node_work(b)
            calls += 1
        stack.extend(b.args)
    return Cost(elements, work, calls)


def variables_elements(shapes: Iterable[Shape]) -> int:
    """Elements per trial of the variables and their directions (one of each per variable)."""
    return 2 * sum(numel(s) for s in shapes)


def _kind(kind: str | ClaimKind) -> ClaimKind:
    """A kind by name, or the kind object of one claim (``claims.kind_of``) as it is."""
    return KINDS[kind] if isinstance(kind, str) else kind


def truth_elements(kind: str | ClaimKind, var_shape: Shape, f_shape: Shape) -> int:
    """Elements per trial of what autograd returns for one claim."""
    return _kind(kind).truth_elements(var_shape, f_shape)


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


# ---- work -----------------------------------------------------------------------------------

OVERHEAD = 200_000  # the fixed cost of launching one tensor operation (about 40 us)
QR = 60  # cost / n^3 of the QR decomposition behind a random orthogonal n x n matrix


def _node_work(b: Bound) -> int:
    node = b.node
    if isinstance(node, Transpose):
        return 0  # a view
    if isinstance(node, BinOp) and node.op == "@":
        return numel(b.shape) * b.args[0].shape[-1]
    args = [Arg(a.shape, a.static, a.value) for a in b.args]
    if isinstance(node, Call):
        cost = overlay.get(node.fn).cost  # each function states its own cost
        if getattr(cost, "takes_options", False):  # a cost that depends on an option (ord=)
            return int(cost(args, b.shape, **dict(b.options)))
        return cost(args, b.shape)
    return entrywise(args, b.shape)


def sample_work(shape: Shape, domain: str) -> int:
    """Estimated work per trial of drawing one variable and its direction: the entries, the
    random orthogonal matrices that the domain's entry says a draw takes, and for a matrix
    of a given rank its factor product and the SVD behind its tangent projection (about a QR
    of the larger side)."""
    cheap = 2 * ENTRY * numel(shape)
    dom = DOMAINS[domain]
    ranked = QR * max(shape) ** 3 if dom.ranked and shape else 0
    return cheap + QR * sum(n**3 for n in dom.orthogonals(shape)) + ranked


def passes_over_f(kinds_and_shapes: Iterable[tuple[str | ClaimKind, Shape, Shape]]) -> int:
    """How many times autograd goes over f, for claims given as (kind, shape of the var,
    shape of f): each kind's passes per claim, plus its shared passes once (e.g. all gradients
    come from one backward pass)."""
    passes = 1  # the check that f is finite
    kinds = []
    for kind, var_shape, f_shape in kinds_and_shapes:
        passes += _kind(kind).passes(var_shape, f_shape)
        kinds.append(_kind(kind).name)
    return passes + sum(KINDS[k].shared_passes for k in dict.fromkeys(kinds))


def identity_work(
    variables: Iterable[tuple[Shape, str]],
    lets: Iterable[Cost],
    f: Cost,
    claims: Iterable[tuple[str | ClaimKind, Shape, Cost]],
    trials: int,
    f_shape: Shape = (),
) -> int:
    """Estimated work of checking one identity over ``trials`` trials.

    ``variables`` are (shape, domain); ``claims`` are (kind, shape of the var, cost).
    """
    lets, claims = list(lets), list(claims)
    passes = passes_over_f((kind, shape, f_shape) for kind, shape, _ in claims)
    per_trial = (
        sum(sample_work(shape, domain) for shape, domain in variables)
        + (sum(c.work for c in lets) + f.work) * passes
        + sum(c.work for _, _, c in claims)
    )
    calls = (sum(c.calls for c in lets) + f.calls) * passes + sum(c.calls for _, _, c in claims)
    return per_trial * trials + OVERHEAD * calls


# The degeneracy guard (matgrad.engine.degeneracy) surveys a draw at most this many times: once,
# and once after each of its redraws. Each survey evaluates f and its lets once, no autograd.
GUARD_SURVEYS = 6


def guard_work(bounds: Iterable[Bound], f_work: int, trials: int) -> int:
    """Estimated work of the degeneracy guard's surveys of one draw, at most: none when no
    expression calls a function the guard measures (a sensitive function or a comparison)."""
    stack = list(bounds)
    while stack:
        b = stack.pop()
        node = b.node
        if isinstance(node, Compare) or (
            isinstance(node, Call) and overlay.get(node.fn).sensitive is not None
        ):
            return GUARD_SURVEYS * f_work * trials
        stack.extend(b.args)
    return 0


def check_work(work: int, limits: Limits) -> None:
    """Refuse an identity whose estimated work exceeds the work budget."""
    if work > limits.max_work:
        raise limits.refuse(
            "max_work",
            f"about {work:.2g} multiply-adds (fewer trials or smaller dims lower it)",
            "the estimated work of this identity",
        )


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What :func:`~matgrad.spec.schema.compile_identity` measured of an identity, kept for the
    paths that evaluate f again (the witnesses, the diagnosis): the work of one evaluation of
    f with its lets, per trial, the tensor operations it launches, and the estimated work of
    the autograd check over all trials, and of the degeneracy guard's surveys of a draw (at
    most; 0 when it has nothing to measure)."""

    f_work: int
    f_calls: int
    total: int
    guard: int = 0


def evaluations_work(evaluations: int, trials: int, estimate: Estimate, chunks: int) -> int:
    """Estimated work of evaluating f ``evaluations`` times per trial over ``trials`` trials,
    batched into ``chunks`` calls of f."""
    return evaluations * trials * estimate.f_work + OVERHEAD * estimate.f_calls * chunks


def check_extra_work(what: str, work: int, estimate: Estimate, limits: Limits) -> None:
    """Refuse a path (a witness, a diagnosis) whose work, added to the check's own, would
    exceed the work budget."""
    if estimate.total + work > limits.max_work:
        raise limits.refuse(
            "max_work",
            f"about {estimate.total + work:.2g} multiply-adds with {what} (about {work:.2g} "
            f"for {what} alone; fewer trials, smaller dims or fewer witnesses lower it)",
            "the estimated work of this identity",
        )
