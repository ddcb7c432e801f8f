"""What every claim kind is made of, and the registry of kinds.

A claim kind (``grad``, ``differential``, ``hessian``) is one object that carries everything
about itself: its YAML key, its shape rule, how autograd produces the true value, its
finite-difference and Taylor maths, its budget, its ``matgrad new`` template and its display.
The rest of matgrad asks the registry (:data:`KINDS`) and never branches on a kind's name.

No torch here: the engine passes the ``torch`` module in, as it does for the function
registry (``matgrad.lang.functions``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, ClassVar

from matgrad.lang.functions import Shape, fmt_shape, is_scalar, numel

if TYPE_CHECKING:
    from collections.abc import Callable

# Finite-difference constants shared by the kinds (float64; the witnesses run in float64).
EPS = sys.float_info.epsilon
FIRST_STEP = EPS ** (1 / 3)  # ~6e-6: balances truncation h^2 and rounding eps/h
SECOND_STEP = EPS ** (1 / 4)  # ~1e-4: the same balance for a second difference
ROUNDING = 16.0  # least rounding error of one value of f: ROUNDING * eps * |f| (witness.Evaluator)


class ClaimKind:
    """One kind of claim. Subclasses set every class attribute below and implement every
    method that raises :class:`NotImplementedError`; :func:`register` refuses a kind that
    leaves one out (see :func:`missing_parts`)."""

    # -- name and display
    name: ClassVar[str]  # the YAML key, the CLI flag (--NAME) and the label's first word
    noun: ClassVar[str]  # in prose: "gradient"
    layout: ClassVar[str]  # the shape a claim must have, in words
    symbol: ClassVar[str]  # the claim's left-hand side in text, "{var}" for the variable
    symbol_mathml: ClassVar[str]  # the same as MathML; "{var}" becomes the variable's MathML
    # the symbols of a claim about two variables ("{var2}" the second), for kinds with paired()
    symbol2: ClassVar[str] = ""
    symbol2_mathml: ClassVar[str] = ""
    # -- spec
    needs_scalar_f: ClassVar[bool]
    uses_direction: ClassVar[bool] = False  # the claim may use dVAR, drawn for it
    joint_gradient: ClassVar[bool] = False  # its truth comes from the first backward pass
    # the claimed value is autograd's own (the implementation under test), judged by the
    # witnesses that do not use autograd; written as a list of variables, with no expression
    claimed_by_autograd: ClassVar[bool] = False
    # its truth handles complex variables and a complex f (grad: a Wirtinger convention;
    # differential: a complex direction); other kinds refuse them with a pointer to these
    complex_ok: ClassVar[bool] = False
    # -- witnesses
    fd_tol: ClassVar[float]  # rtol and atol (scaled) against finite differences
    fd_ratio: ClassVar[float]  # second step = first / ratio
    fd_complex_factor: ClassVar[int] = 1  # fd_points is this many times more for a complex var
    taylor_order: ClassVar[str]  # "first" or "second": which Taylor steps
    taylor_expected: ClassVar[float]  # slope of the remainder for a right claim
    taylor_pass: ClassVar[float]  # the least slope that passes
    taylor_exact: ClassVar[str]  # f is this along the directions when no slope shows
    # -- budget
    shared_passes: ClassVar[int] = 0  # passes over f once per identity with such a claim
    # -- `matgrad new`
    new_help: ClassVar[str]
    template_var: ClassVar[str]
    template_body: ClassVar[str]  # string.Template text: $key $var $other $dim
    template_title: ClassVar[str]
    template_latex: ClassVar[str]

    ATTRIBUTES: ClassVar[tuple[str, ...]] = (
        "name", "noun", "layout", "symbol", "symbol_mathml", "needs_scalar_f", "fd_tol",
        "fd_ratio", "taylor_order",
        "taylor_expected", "taylor_pass", "taylor_exact", "new_help", "template_var",
        "template_body", "template_title", "template_latex",
    )
    METHODS: ClassVar[tuple[str, ...]] = (
        "expected_shape", "truth", "fd_points", "fd_estimate", "taylor_remainder", "passes",
    )

    # ---- shapes (spec time, no torch) --------------------------------------------------------

    def expected_shape(self, var_shape: Shape, f_shape: Shape) -> Shape:
        """The shape a claim about a variable of ``var_shape`` must have."""
        raise NotImplementedError

    def shape_problem(self, var: str, var_shape: Shape, f_shape: Shape) -> tuple[str, str] | None:
        """Why such a claim cannot be made here, and the key to report it under; None if it can."""
        if self.needs_scalar_f and not is_scalar(f_shape):
            return (
                f"a {self.name} claim needs a scalar f, but f has shape {fmt_shape(f_shape)}; "
                f"use a differential claim for a non-scalar f",
                self.name,
            )
        return None

    def complex_problem(self, var: str, domain: str | None) -> str | None:
        """Why this kind cannot check a claim about ``var`` when ``var`` is complex (its
        ``domain`` given) or f is (``domain`` None), with what to do; None if it can."""
        if self.complex_ok:
            return None
        if domain is None:
            return (
                f"a {self.name} claim about a complex f cannot be checked; claim the "
                f"differential instead (differential: {{{var}: ...}}, the change of f along "
                f"d{var}), or make f real (real(f), imag(f), abs(f)**2)"
            )
        return (
            f"a {self.name} claim about a complex variable ({var}, domain {domain}) cannot be "
            f"checked; claim the differential instead (differential: {{{var}: ...}}, the change "
            f"of f along a complex d{var}, where conj(d{var}) and d{var}.H may appear), or for "
            f"a real f its gradient (grad: {{{var}: ...}})"
        )

    def layout_note(self, var: str, var_shape: Shape, f_shape: Shape) -> str:
        """Added to the message of a failed claim where its layout is worth stating."""
        return ""

    def shape_note(self, var: str) -> str:
        """Added to the message of a claim of the wrong shape."""
        return ""

    # ---- truth (the engine passes torch and its run) -----------------------------------------

    def truth(self, torch: Any, run: Any, var: str, first_pass: dict[str, Any]) -> Any:
        """The autograd value [T, *expected shape] of a claim about ``var``.

        ``run`` is the engine's batch (``leaves``, ``f``, ``f_of``, ``gradients``, ``x``,
        ``d``, ``trials``, ``c``); ``first_pass`` holds the gradients of the first backward
        pass, by variable (empty when there was none)."""
        raise NotImplementedError

    def convention(self, ident: Any, var: str, truth: Any) -> str | None:
        """The gradient convention the truth is in (None: none applies)."""
        return None

    def converter(self, torch: Any, ident: Any, var: str) -> Callable[[Any], Any] | None:
        """Turns an entrywise estimate (finite differences) into the truth's convention."""
        return None

    def alternatives(self, torch: Any, run: Any, var: str, truth: Any) -> dict[str, Any]:
        """Other readings of the truth a diagnosis may compare with, by name."""
        return {}

    def layouts(
        self, var: str, var_shape: Shape, f_shape: Shape, truth: Any
    ) -> list[tuple[str, Any]]:
        """The truth (or finite differences) ``[T, *expected shape]`` of a claim about ``var``
        rearranged into the layouts a claim is often written in by mistake, each with the hint
        that names it (tried first by the diagnosis; the reference itself is not among them)."""
        return []

    def paired(self, var2: str, shape2: Shape) -> ClaimKind | None:
        """This kind about a second variable ``var2`` as well (a claim keyed ``"x, var2"``,
        e.g. a mixed hessian); None when the kind is about one variable only."""
        return None

    def shape_hint(self, var: str, claimed: Shape, expected: Shape) -> str | None:
        """A hint for a claim about ``var`` of the wrong shape (None: no hint)."""
        if len(expected) == 2 and sorted(claimed) == sorted(expected):
            return "transposed: the layout is swapped (did you mean .T?)"
        return None

    # ---- witnesses -----------------------------------------------------------------------

    def fd_points(self, entries: int) -> int:
        """Evaluations of f per trial for one finite-difference estimate (one step size)."""
        raise NotImplementedError

    def fd_estimate(self, torch: Any, ev: Any, var: str, scale: float) -> tuple[Any, Any, Any]:
        """The finite-difference value, its rounding-error estimate, and the change of f
        over the step (the largest |f(point) - f(x)|, in the units of the value: over the
        step, or its square for a second difference), all [T, *shape]; the step is ``scale``
        x the first one; ``ev`` is the witness evaluator (``x``, ``d``, ``f``, ``f_along``,
        and ``rounding``, the rounding noise of f's values, for the error estimate).
        The change tells whether f is resolved at the step at all (see
        ``matgrad.engine.witness.fd_blind``)."""
        raise NotImplementedError

    def taylor_draw(self, torch: Any, ev: Any, var: str, gen: Any, convention: str | None) -> Any:
        """A random direction for the Taylor test."""
        x = ev.x[var]
        return torch.randn(tuple(x.shape), generator=gen, dtype=torch.float64).to(x.device)

    def taylor_directions(
        self, ev: Any, var: str, k: int, draw: Callable[[], Any]
    ) -> tuple[Any, Any | None]:
        """The directions (v, u) of the ``k``-th Taylor probe; u only for a second order."""
        return draw(), None

    def taylor_remainder(
        self, torch: Any, ev: Any, claim: Any, bound: Any, convention: str | None,
        vals: Any, f0: Any, hs: Any, v: Any, u: Any | None,
    ) -> tuple[Any, Any, Any, Any]:
        """The Taylor remainder [K, T, -1], the size of its terms (for the rounding floor),
        the change of f that the claim predicts [K, T, -1] (the signal: the remainder is that
        change minus the measured one), and the size that the run's rtol applies to (that
        change with every product of an entry of the claim and of the directions taken in
        absolute value: a claim within rtol of the truth entry by entry leaves a remainder
        within rtol of it), from f at the moved points ``vals`` [moves, K, T, -1] and at the
        point ``f0``."""
        raise NotImplementedError

    # ---- budget --------------------------------------------------------------------------

    def truth_elements(self, var_shape: Shape, f_shape: Shape) -> int:
        """Elements per trial of what autograd returns for one claim."""
        return numel(self.expected_shape(var_shape, f_shape))

    def passes(self, var_shape: Shape, f_shape: Shape) -> int:
        """Passes over f for one claim about a variable of ``var_shape`` (on top of
        :attr:`shared_passes`)."""
        raise NotImplementedError



def vec(x: Any) -> Any:
    """Each trial of ``x`` [T, *shape] as the column-stacking vec [T, numel(shape)]
    (Magnus-Neudecker: the first index runs fastest), not torch's row-major flattening."""
    t = x.shape[0]
    return x.permute(0, *range(x.dim() - 1, 0, -1)).reshape(t, -1)


def vec_matrix(m: Any, rows: Shape, cols: Shape) -> Any:
    """``m`` [T, *rows, *cols] (an entry per pair of entries, in torch's order) as the matrix
    [T, numel(rows), numel(cols)] of d vec f / d vec X: both sides in the vec layout."""
    t, r, c = m.shape[0], len(rows), len(cols)
    axes = [*range(r, 0, -1), *range(r + c, r, -1)]
    return m.permute(0, *axes).reshape(t, numel(rows), numel(cols))


def row_major(m: Any, rows: Shape, cols: Shape) -> Any:
    """A matrix [T, numel(rows), numel(cols)] in the vec layout (:func:`vec_matrix`), as it
    reads when both sides are flattened row by row instead (NumPy's ravel, torch's reshape)."""
    t, r, c = m.shape[0], len(rows), len(cols)
    full = m.reshape(t, *reversed(rows), *reversed(cols))
    axes = [*range(r, 0, -1), *range(r + c, r, -1)]
    return full.permute(0, *axes).reshape(t, numel(rows), numel(cols))


class FirstOrder(ClaimKind):
    """The witness constants of a first-order claim (a gradient, a differential): central
    first differences, and a Taylor remainder of order 2 for a right claim, 1 for a wrong one."""

    fd_tol = 1e-5
    fd_ratio = 4.0
    taylor_order = "first"
    taylor_expected = 2.0
    taylor_pass = 1.5
    taylor_exact = "affine"

KINDS: dict[str, ClaimKind] = {}


def missing_parts(kind: ClaimKind) -> list[str]:
    """The parts a kind leaves out (empty when it is complete)."""
    missing = [a for a in ClaimKind.ATTRIBUTES if getattr(kind, a, None) in (None, "")]
    missing += [
        m for m in ClaimKind.METHODS if getattr(type(kind), m) is getattr(ClaimKind, m)
    ]
    if getattr(kind, "taylor_order", None) not in (None, "first", "second"):
        missing.append("taylor_order (first or second)")
    return missing


def register(kind: ClaimKind) -> ClaimKind:
    """Add ``kind`` to :data:`KINDS` (in order: the first is the default of ``matgrad new``)."""
    missing = missing_parts(kind)
    if missing:
        raise TypeError(f"claim kind {type(kind).__name__} lacks {', '.join(missing)}")
    if kind.name in KINDS:
        raise ValueError(f"claim kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind
