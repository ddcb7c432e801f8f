"""The expression language: Python operator syntax, parsed by ``ast`` and interpreted by
matgrad itself over a strict allowlist of node types. Nothing is ever passed to ``eval``.

Three steps:

* :func:`parse` turns text into an immutable, untyped :class:`Node` tree. It refuses every
  construct outside the allowlist and checks function names and arity.
* :func:`bind` resolves names against a :class:`Scope` (variables with shapes, dims as
  integers), computes every sub-expression's shape and folds constants. Shape errors name the
  sub-expression and the shapes involved. No torch here.
* :meth:`Bound.evaluate` runs a bound tree on batched tensors (leading trial dimension).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import operator
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from matgrad.errors import EvalError, ExprError, LimitError, did_you_mean
from matgrad.lang import notation, overlay, shapes, structure
from matgrad.lang.functions import (
    Arg,
    Shape,
    ShapeError,
    ValueTooLarge,
    fmt_shape,
    is_scalar,
    numel,
)
from matgrad.limits import DEFAULT_LIMITS, Limits

BINOPS: dict[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.MatMult: "@",
    ast.Pow: "**",
}

_NODE_NAMES: dict[type, str] = {
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "assignment (:=)",
    ast.BoolOp: "and/or (multiply masks: (x > 0) * (x < 1))",
    ast.IfExp: "a conditional expression",
    ast.Starred: "a starred argument",
    ast.Tuple: "a tuple (allowed only as a keyword value such as axis=(0, 1), or inside [...])",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.Slice: "a slice (allowed only inside x[...])",
}

COMPARISONS: dict[type, str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}

# Attributes: ``.T`` (a matrix transpose) has its own node; these are the others besides the
# named parts of a function with several results (``qr(A).Q``).
ATTRIBUTES = {"mT": "swap the last two axes", "H": "conjugate transpose (.T stays plain)"}

MAX_STRING = 64  # characters of a string argument (an einsum specification)


# ---- untyped tree -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Node:
    text: str
    col: int


@dataclasses.dataclass(frozen=True)
class Num(Node):
    value: float
    is_int: bool


@dataclasses.dataclass(frozen=True)
class Imag(Node):
    """An imaginary literal such as ``2j`` (``value`` is 2.0): ``1 + 2j`` is a sum."""

    value: float


@dataclasses.dataclass(frozen=True)
class Name(Node):
    name: str


@dataclasses.dataclass(frozen=True)
class Call(Node):
    fn: str
    args: tuple[Node, ...]
    kwargs: tuple[tuple[str, Node], ...] = ()  # options such as axis=0, in the written order


@dataclasses.dataclass(frozen=True)
class BinOp(Node):
    op: str
    left: Node
    right: Node


@dataclasses.dataclass(frozen=True)
class Neg(Node):
    operand: Node


@dataclasses.dataclass(frozen=True)
class Transpose(Node):
    operand: Node


@dataclasses.dataclass(frozen=True)
class Attr(Node):
    """``x.mT``, or a named part of a function with several results: ``qr(A).Q``."""

    operand: Node
    attr: str


@dataclasses.dataclass(frozen=True)
class Index(Node):
    """``x[items]``: constant indices, slices, ``...``, ``None`` and integer lists."""

    operand: Node
    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True)
class Slice(Node):
    start: Node | None
    stop: Node | None
    step: Node | None


@dataclasses.dataclass(frozen=True)
class Dots(Node):
    """``...`` inside an index: every axis not named."""


@dataclasses.dataclass(frozen=True)
class Compare(Node):
    """``a > b`` and the like: a mask of 0s and 1s (a constant for autograd)."""

    op: str
    left: Node
    right: Node


@dataclasses.dataclass(frozen=True)
class Literal(Node):
    """A list literal ``[[0, 1], [1, 0]]``: a constant tensor, or an index list in ``x[...]``."""

    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True)
class TupleLit(Node):
    """``(0, 1)``: allowed only as a function option, e.g. ``axis=(0, 1)``."""

    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True)
class Str(Node):
    """A string: allowed only where a function takes one (``einsum``'s specification)."""

    value: str


@dataclasses.dataclass(frozen=True)
class Const(Node):
    """``True``, ``False`` or ``None``: allowed only as options and ``None`` inside ``x[...]``."""

    value: bool | None


@dataclasses.dataclass(frozen=True)
class Expr:
    """A parsed expression: the tree plus the names and functions it uses."""

    text: str
    root: Node
    names: frozenset[str]


def _err(problem: str, text: str, node: ast.AST | None = None) -> ExprError:
    col = getattr(node, "col_offset", None)
    return ExprError(problem, text=text, col=None if col is None else col + 1)


def parse(text: str, limits: Limits = DEFAULT_LIMITS) -> Expr:
    """Parse expression text into an :class:`Expr`, or raise :class:`ExprError`.

    >>> parse("tr(inv(X) @ A)").names == {"X", "A"}
    True
    """
    if not isinstance(text, str):
        raise ExprError(f"an expression must be text, got {type(text).__name__}")
    if len(text) > limits.max_expr_chars:
        raise limits.refuse("max_expr_chars", len(text), "the expression length")
    # keyed by the check's own functions too: a name known under one set may be unknown
    try:
        return _parse_cached(text, limits, overlay.current())
    except ExprError as e:  # notation from elsewhere (x^T, trace(X), x') gets explained
        raise notation.explained(e, text) from None


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str, limits: Limits, functions: overlay.Overlay) -> Expr:
    stripped = text.strip()
    if not stripped:
        raise ExprError("the expression is empty", text=text)
    # A cheap bound on nesting before CPython's own parser sees the text (it can overflow
    # its stack on deeply nested input).
    depth = max_depth = 0
    for ch in stripped:
        if ch in "([{":
            depth += 1
            max_depth = max(max_depth, depth)
        elif ch in ")]}":
            depth -= 1
    if max_depth > limits.max_expr_depth:
        raise limits.refuse("max_expr_depth", max_depth, "the bracket nesting depth")
    try:
        with warnings.catch_warnings():
            # e.g. "invalid decimal literal" for `1if`: the text is refused below or parses
            # fine; either way Python's own warning must not reach the user's terminal.
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(stripped, mode="eval")
    except SyntaxError as e:
        col = e.offset
        msg = e.msg
        if msg.startswith("invalid syntax"):
            msg = "invalid syntax"
        hint = ""
        if "^" in stripped:
            hint = " (use ** for powers)"
        at = f" at column {col}" if col is not None else ""
        raise ExprError(f"syntax error{at}: {msg}{hint}", text=text, col=col) from None
    except (MemoryError, RecursionError, ValueError):
        raise ExprError("the expression is too complex to parse", text=text) from None
    counter = [0]
    names: set[str] = set()
    try:
        root = _convert(tree.body, stripped, names, counter, 1, limits)
    except RecursionError:  # only when max_expr_depth was raised beyond Python's stack
        raise ExprError("the expression is too complex to parse", text=text) from None
    return Expr(text=stripped, root=root, names=frozenset(names))


def _convert(
    node: ast.AST, src: str, names: set[str], counter: list[int], depth: int, limits: Limits
) -> Node:
    counter[0] += 1
    if counter[0] > limits.max_expr_nodes:
        raise limits.refuse("max_expr_nodes", f"more than {counter[0] - 1}", "the node count")
    if depth > limits.max_expr_depth:
        raise limits.refuse("max_expr_depth", f"more than {depth - 1}", "the nesting depth")
    seg = _segment(src, node)
    col = getattr(node, "col_offset", 0) + 1

    def sub(child: ast.AST) -> Node:
        return _convert(child, src, names, counter, depth + 1, limits)

    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or v is None:
            return Const(seg, col, v)
        if isinstance(v, str):
            if len(v) > MAX_STRING or not v.isascii() or not v.isprintable():
                raise _err(
                    f"a string argument must be at most {MAX_STRING} printable ASCII characters",
                    src,
                    node,
                )
            return Str(seg, col, v)
        if v is Ellipsis:
            return Dots(seg, col)
        if isinstance(v, complex):  # Python's literal is purely imaginary: 2j, 1.5e-3j
            if not math.isfinite(v.imag):
                raise _err(f"constant {seg} is not finite", src, node)
            return Imag(seg, col, float(v.imag))
        if not isinstance(v, (int, float)):
            raise _err(
                f"constant {_show_value(v)} is not allowed: only int, float and imaginary "
                f"(2j) numbers",
                src,
                node,
            )
        if isinstance(v, int) and abs(v) > 10**15:
            raise _err(f"integer constant {seg} is too large", src, node)
        if isinstance(v, float) and not math.isfinite(v):
            raise _err(f"constant {seg} is not finite", src, node)
        return Num(seg, col, float(v), isinstance(v, int))
    if isinstance(node, ast.Name):
        names.add(node.id)
        return Name(seg, col, node.id)
    if isinstance(node, ast.BinOp):
        op = BINOPS.get(type(node.op))
        if op is None:
            raise _err(f"operator {_op_symbol(node.op)} is not allowed", src, node)
        return BinOp(seg, col, op, sub(node.left), sub(node.right))
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            return Neg(seg, col, sub(node.operand))
        if isinstance(node.op, ast.UAdd):
            return sub(node.operand)
        raise _err(f"operator {_op_symbol(node.op)} is not allowed", src, node)
    if isinstance(node, ast.Attribute):
        if node.attr == "T":
            return Transpose(seg, col, sub(node.value))
        if node.attr in ATTRIBUTES:
            return Attr(seg, col, sub(node.value), node.attr)
        owner = node.value
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name):
            fn = overlay.lookup(owner.func.id)
            if fn is not None and fn.parts:
                if node.attr not in fn.parts:
                    raise _err(
                        f"{fn.name} has no result .{node.attr}: its results are "
                        f"{', '.join('.' + p for p in fn.parts)}",
                        src,
                        node,
                    )
                return Attr(seg, col, sub(owner), node.attr)
        raise _err(
            f"attribute .{node.attr} is not allowed: the attributes are .T, "
            f"{', '.join('.' + a for a in ATTRIBUTES)}, and the named results of a function "
            f"with several (such as qr(A).Q)",
            src,
            node,
        )
    if isinstance(node, ast.Subscript):
        inner = node.slice
        parts = inner.elts if isinstance(inner, ast.Tuple) else [inner]
        return Index(seg, col, sub(node.value), tuple(_index_item(p, sub) for p in parts))
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1:
            raise _err(
                "chained comparisons are not allowed: multiply masks, (a < x) * (x < b)",
                src,
                node,
            )
        cmp = COMPARISONS.get(type(node.ops[0]))
        if cmp is None:
            raise _err(
                "only <, <=, > and >= compare: == and != hold with probability zero on "
                "random draws (use where(...) with a comparison)",
                src,
                node,
            )
        return Compare(seg, col, cmp, sub(node.left), sub(node.comparators[0]))
    if isinstance(node, ast.List):
        return Literal(seg, col, tuple(sub(e) for e in node.elts))
    if isinstance(node, ast.Tuple) and depth > 1:
        return TupleLit(seg, col, tuple(sub(e) for e in node.elts))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise _err("only calls of listed functions by name are allowed", src, node)
        fname = node.func.id
        fn = overlay.lookup(fname)
        if fn is None:
            known = overlay.known()
            raise _err(f"unknown function {fname!r}{did_you_mean(fname, known)}", src, node)
        kwargs = []
        for kw in node.keywords:
            if kw.arg is None:
                raise _err(f"**arguments are not allowed (in {fname}(...))", src, node)
            if kw.arg not in fn.keywords:
                raise _err(_unknown_keyword(fn, kw.arg), src, kw)
            kwargs.append((kw.arg, sub(kw.value)))
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise _err(f"starred arguments are not allowed (in {fname}(...))", src, node)
        n = len(node.args)
        if not fn.min_args <= n <= fn.max_args:
            want = (
                str(fn.min_args)
                if fn.min_args == fn.max_args
                else f"{fn.min_args} to {fn.max_args}"
            )
            plural = "" if want == "1" else "s"
            raise _err(f"{fname} takes {want} argument{plural}, got {n}: {fn.signature}", src, node)
        return Call(seg, col, fname, tuple(sub(a) for a in node.args), tuple(kwargs))
    what = _NODE_NAMES.get(type(node), type(node).__name__)
    raise _err(f"{what} is not allowed in an expression", src, node)


def _index_item(item: ast.AST, sub: Callable[[ast.AST], Node]) -> Node:
    """One item of ``x[...]``: a slice, or what ``sub`` makes of it (a number, ``...``,
    ``None``, a list)."""
    if isinstance(item, ast.Slice):
        parts = (item.lower, item.upper, item.step)
        start, stop, step = (None if p is None else sub(p) for p in parts)
        # the slice's own text; Python gives a slice no position before 3.9's ast, so build it
        return Slice(
            _slice_text(start, stop, step), getattr(item, "col_offset", 0) + 1, start, stop, step
        )
    return sub(item)


def _slice_text(start: Node | None, stop: Node | None, step: Node | None) -> str:
    text = f"{'' if start is None else start.text}:{'' if stop is None else stop.text}"
    return text if step is None else f"{text}:{step.text}"


def _unknown_keyword(fn: Any, word: str) -> str:
    known = list(fn.keywords)
    if not known:
        return f"{fn.name} takes no options (keyword arguments): {fn.signature}"
    if word == "dim" and "axis" in known:
        hint = " (matgrad calls torch's dim= axis=)"
    else:
        hint = did_you_mean(word, known)
    return (
        f"{fn.name} has no option {word!r}{hint}; its options are "
        f"{', '.join(k + '=' for k in known)}"
    )


def _show_value(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _segment(src: str, node: ast.AST) -> str:
    """The source text of ``node``; linear time for the usual one-line ASCII expression
    (``ast.get_source_segment`` splits the whole text into lines on every call)."""
    start = getattr(node, "col_offset", None)
    end = getattr(node, "end_col_offset", None)
    if start is not None and end is not None and src.isascii() and "\n" not in src:
        return src[start:end] or src
    return ast.get_source_segment(src, node) or src


def _op_symbol(op: ast.AST) -> str:
    return {
        ast.Mod: "%",
        ast.FloorDiv: "//",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.BitOr: "|",
        ast.BitAnd: "&",
        ast.BitXor: "^ (use ** for powers)",
        ast.Not: "not",
        ast.Invert: "~",
    }.get(type(op), type(op).__name__)


# ---- binding: names, shapes and constants ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scope:
    """What names mean while binding: tensors with a shape, or integer dims."""

    shapes: Mapping[str, Shape]
    dims: Mapping[str, int]
    directions: frozenset[str] = frozenset()  # dVAR names usable here
    hidden: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> why not
    symmetric: frozenset[str] = frozenset()  # names of symmetric matrices (domains, lets)


@dataclasses.dataclass(frozen=True)
class Bound:
    """A sub-expression with its shape; ``static`` holds its value when it is a constant
    number, ``value`` when it is another constant (a list literal's entries, a function's
    option or static argument), ``options`` a call's options with defaults filled in, and
    ``parts`` the shapes of the results of a function with several (picked by an Attr)."""

    node: Node
    shape: Shape
    static: float | None
    args: tuple[Bound, ...] = ()
    max_numel: int = 1
    value: Any = None
    options: tuple[tuple[str, Any], ...] = ()
    parts: tuple[Shape, ...] = ()

    def evaluate(
        self,
        env: Mapping[str, Any],
        torch: Any,
        like: Any,
        memo: dict[str, Any] | None = None,
        perturb: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Evaluate on batched tensors; ``like`` gives batch size, dtype and device.

        With ``memo`` (a dict, fresh for each ``env``), a sub-expression written twice, such as
        ``inv(X)`` in ``inv(X).T @ A @ inv(X)``, is computed once: same text, same tree, same
        value. Pass it only where no autograd graph is recorded: a shared node sums the
        gradients flowing into it before its own backward, which rounds differently.

        With ``perturb``, every node's tensor output (variables and lets included, constants
        not) is passed through it: the engine's estimate of rounding noise (Monte Carlo
        arithmetic, see docs/decision-rule.md) moves each intermediate result by about an ulp.
        """
        return _evaluate(self, env, torch, like, memo, perturb)


def bind(expr: Expr, scope: Scope, limits: Limits = DEFAULT_LIMITS) -> Bound:
    """Resolve names and shapes of ``expr`` in ``scope``; raise :class:`ExprError`."""
    try:
        return _bind(expr.root, scope, limits)
    except RecursionError:  # only when max_expr_depth was raised beyond Python's stack
        raise ExprError(f"the expression {expr.text!r} is too deeply nested to bind") from None


def _bind(node: Node, scope: Scope, limits: Limits) -> Bound:
    b = _bind_node(node, scope, limits)
    if len(b.shape) > limits.max_rank:
        raise limits.refuse("max_rank", len(b.shape), f"the number of axes of {node.text!r}")
    return b


_NOT_A_TENSOR = (Str, Const, TupleLit, Dots, Slice)


def _bind_node(node: Node, scope: Scope, limits: Limits) -> Bound:
    if isinstance(node, Num):
        return Bound(node, (), node.value)
    if isinstance(node, Imag):  # a tensor at evaluation (complex), never folded
        return Bound(node, (), None)
    if isinstance(node, Name):
        if node.name in scope.shapes:
            shape = scope.shapes[node.name]
            return Bound(node, shape, None, max_numel=numel(shape))
        if node.name in scope.dims:
            return Bound(node, (), float(scope.dims[node.name]))
        if node.name in scope.hidden:
            raise ExprError(f"name {node.name!r} {scope.hidden[node.name]}")
        known = set(scope.shapes) | set(scope.dims)
        if node.name.lower() in ("inf", "infinity"):
            raise ExprError(
                f"unknown name {node.name!r}: an option that takes infinity spells it as the "
                f"string 'inf' (or '-inf'), quoted: norm(A, ord='inf')"
            )
        raise ExprError(
            f"unknown name {node.name!r}{did_you_mean(node.name, known)}; "
            f"declare it under vars or dims"
        )
    if isinstance(node, Neg):
        a = _bind(node.operand, scope, limits)
        static = -a.static if a.static is not None else None
        return Bound(node, a.shape, static, (a,), a.max_numel)
    if isinstance(node, Transpose):
        a = _bind(node.operand, scope, limits)
        if len(a.shape) > 2:
            raise ExprError(
                f"in {node.text!r}: .T transposes a matrix, but {node.operand.text!r} has shape "
                f"{fmt_shape(a.shape)}; use .mT (swap the last two axes) or "
                f"permute(x, ...) for more axes"
            )
        flipped: Shape = (a.shape[1], a.shape[0]) if len(a.shape) == 2 else a.shape
        return Bound(node, flipped, a.static, (a,), a.max_numel)
    if isinstance(node, Attr):
        return _bind_attr(node, scope, limits)
    if isinstance(node, BinOp):
        return _bind_binop(node, scope, limits)
    if isinstance(node, Compare):
        a = _bind(node.left, scope, limits)
        b = _bind(node.right, scope, limits)
        if a.static is not None and b.static is not None:  # constants compare at bind time
            return Bound(node, (), float(_COMPARE[node.op](a.static, b.static)), (a, b))
        shape = _elementwise_shape((a, b), node, node.op)
        return Bound(node, shape, None, (a, b), max(a.max_numel, b.max_numel, numel(shape)))
    if isinstance(node, Call):
        return _bind_call(node, scope, limits)
    if isinstance(node, Index):
        return _bind_index(node, scope, limits)
    if isinstance(node, Literal):
        values, shape = _literal(node, scope, limits)
        return Bound(node, shape, None, (), numel(shape), value=values)
    if isinstance(node, _NOT_A_TENSOR):
        raise ExprError(
            f"{node.text!r} is not a tensor: strings, True/False/None, tuples, slices and ... "
            f"are allowed only as function options (axis=(0, 1)), einsum's specification, or "
            f"inside x[...]"
        )
    raise AssertionError(f"unhandled node {type(node).__name__}")  # pragma: no cover


_PY_OPS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def _g(x: float) -> str:
    """A number for a message: 1000000000, not 1000000000.0."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _fold(op: str, a: float, b: float, node: Node, limits: Limits) -> float:
    try:
        if op == "**":
            if abs(b) > limits.max_power:
                raise limits.refuse("max_power", _g(abs(b)), f"the exponent in {node.text!r}")
            v: float = float(a) ** float(b)
            if isinstance(v, complex):
                raise ExprError(f"{node.text!r} is not a real number")
        else:
            v = _PY_OPS[op](a, b)
    except ZeroDivisionError:
        raise ExprError(f"division by zero in {node.text!r}") from None
    except OverflowError:
        raise ExprError(f"{node.text!r} overflows") from None
    if not math.isfinite(v):
        raise ExprError(f"{node.text!r} is not finite")
    return v


def _bind_binop(node: BinOp, scope: Scope, limits: Limits) -> Bound:
    a = _bind(node.left, scope, limits)
    b = _bind(node.right, scope, limits)
    biggest = max(a.max_numel, b.max_numel)
    if a.static is not None and b.static is not None and node.op != "@":
        return Bound(node, (), _fold(node.op, a.static, b.static, node, limits), (a, b))
    if node.op == "@":
        shape = _matmul_shape(a, b, node)
        return Bound(node, shape, None, (a, b), max(biggest, numel(shape)))
    if node.op == "**":
        if not is_scalar(b.shape):
            raise ExprError(
                f"in {node.text!r}: the exponent must be a scalar, got shape "
                f"{fmt_shape(b.shape)} (** is elementwise; use matpow(M, k) for matrix powers)"
            )
        if b.static is not None and abs(b.static) > limits.max_power:
            raise limits.refuse("max_power", _g(abs(b.static)), f"the exponent in {node.text!r}")
        return Bound(node, a.shape, None, (a, b), biggest)
    shape = _elementwise_shape((a, b), node, node.op)
    return Bound(node, shape, None, (a, b), max(biggest, numel(shape)))


def _elementwise_shape(args: Sequence[Bound], node: Node, what: str) -> Shape:
    """The shape of an elementwise operation (see :mod:`matgrad.lang.shapes`)."""
    shapes_ = [a.shape for a in args]
    try:
        return shapes.elementwise(shapes_)
    except shapes.RuleError as e:
        named = ", ".join(f"{a.node.text!r} is {fmt_shape(a.shape)}" for a in args)
        if str(e) == "two-sided":
            out = fmt_shape(shapes.broadcast(shapes_[0], shapes_[-1]) or ())
            raise ExprError(
                f"shape mismatch in {node.text!r}: {named}; broadcasting them would make "
                f"{out}, bigger than each of them (a silent outer product): use outer(x, y) "
                f"for an outer product, or give both sides the result's shape"
            ) from None
        hint = ""
        if len(args) == 2 and sorted(args[0].shape) == sorted(args[1].shape):
            hint = " (a transpose missing?)"
        raise ExprError(
            f"shape mismatch in {node.text!r}: {named}; elementwise {what} needs equal shapes, "
            f"a scalar side, or one side that broadcasts to the other's shape{hint}"
        ) from None


def _matmul_shape(a: Bound, b: Bound, node: BinOp) -> Shape:
    sa, sb = a.shape, b.shape
    try:
        return shapes.matmul(sa, sb)
    except shapes.RuleError as e:
        reason = str(e)
    if reason == "scalar":
        side = node.left if len(sa) == 0 else node.right
        raise ExprError(
            f"in {node.text!r}: {side.text!r} is a scalar; @ needs vectors or matrices "
            f"(use * to scale)"
        )
    if reason == "inner":
        inner_a = sa[-1]
        inner_b = sb[0] if len(sb) == 1 else sb[-2]
        raise ExprError(
            f"shape mismatch in {node.text!r}: {node.left.text!r} is {fmt_shape(sa)} and "
            f"{node.right.text!r} is {fmt_shape(sb)}; @ needs the inner sizes to agree "
            f"({inner_a} vs {inner_b})"
        )
    raise ExprError(
        f"shape mismatch in {node.text!r}: {node.left.text!r} is {fmt_shape(sa)} and "
        f"{node.right.text!r} is {fmt_shape(sb)}; the batch axes (all but the last two) must "
        f"be equal, or one side's must broadcast to the other's"
    )


def _bind_attr(node: Attr, scope: Scope, limits: Limits) -> Bound:
    if node.attr == "H":  # the shape rule of .T
        a = _bind(node.operand, scope, limits)
        if len(a.shape) > 2:
            raise ExprError(
                f"in {node.text!r}: .H conjugate-transposes a matrix, but {node.operand.text!r} "
                f"has shape {fmt_shape(a.shape)}"
            )
        flipped: Shape = (a.shape[1], a.shape[0]) if len(a.shape) == 2 else a.shape
        return Bound(node, flipped, a.static, (a,), a.max_numel)
    if node.attr == "mT":
        a = _bind(node.operand, scope, limits)
        if len(a.shape) < 2:
            raise ExprError(
                f"in {node.text!r}: .mT swaps the last two axes, but {node.operand.text!r} has "
                f"shape {fmt_shape(a.shape)}"
            )
        shape = (*a.shape[:-2], a.shape[-1], a.shape[-2])
        return Bound(node, shape, None, (a,), a.max_numel)
    call = node.operand
    assert isinstance(call, Call)
    c = _bind_call(call, scope, limits, whole=False)
    fn = overlay.get(call.fn)
    shape = c.parts[fn.parts.index(node.attr)]
    return Bound(node, shape, None, (c,), c.max_numel)


def _static_value(node: Node, scope: Scope, limits: Limits, what: str) -> Any:
    """The Python value of a constant: a number (int when integral), a string, True/False/None,
    or a tuple of such; raise ExprError naming ``what`` when ``node`` is not constant."""
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Const):
        return node.value
    if isinstance(node, (TupleLit, Literal)):
        return tuple(_static_value(i, scope, limits, what) for i in node.items)
    if not isinstance(node, (*_NOT_A_TENSOR, Index, Compare)):
        b = _bind(node, scope, limits)
        if b.static is not None:
            v = b.static
            return int(v) if float(v).is_integer() else v
    raise ExprError(
        f"{what} must be a constant (a number, a dim or a tuple of them), got {node.text!r}"
    )


def _bind_call(node: Call, scope: Scope, limits: Limits, whole: bool = True) -> Bound:
    fn = overlay.get(node.fn)
    args: list[Bound] = []
    for i, arg in enumerate(node.args):
        if i in fn.static_args:
            what = f"in {node.text!r}: argument {i + 1} of {fn.name}"
            try:
                v = _static_value(arg, scope, limits, what)
            except ExprError:
                kind = (
                    "a string"
                    if isinstance(_first_leaf(arg), Str)
                    else "an integer constant or dim"
                )
                raise ExprError(
                    f"in {node.text!r}: argument {i + 1} of {fn.name} must be {kind}, got "
                    f"{arg.text!r} ({fn.signature})"
                ) from None
            static = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
            args.append(Bound(arg, (), static, value=v))
        else:
            args.append(_bind(arg, scope, limits))
    if fn.symmetric_arg and args and not structure.is_symmetric(args[0], scope.symmetric):
        arg0 = node.args[0].text
        raise ExprError(
            f"in {node.text!r}: {fn.name} is defined for symmetric matrices, and {arg0!r} is "
            f"not symmetric by construction (its result would silently be that of the "
            f"symmetric part); declare the variable with domain symmetric or spd, or write "
            f"{fn.name}(sym({arg0})) if the symmetric part is what you mean"
        )
    options = dict(fn.keywords)
    for key, value in node.kwargs:
        options[key] = _static_value(value, scope, limits, f"in {node.text!r}: option {key}=")
    if fn.category == "constructor":
        for a in args:
            if a.static is not None and a.static > limits.max_dim:
                raise limits.refuse("max_dim", int(a.static), f"a size in {node.text!r}")
    if fn.name == "matpow":
        k = args[1].static
        if k is not None and k > limits.max_power:
            raise limits.refuse("max_power", int(k), f"the power in {node.text!r}")
    infer_args = [Arg(a.shape, a.static, a.value) for a in args]
    try:
        shape = fn.shape(infer_args, options)
    except ShapeError as e:
        shown = ", ".join(f"{a.node.text}: {fmt_shape(a.shape)}" for a in args if a.value is None)
        raise ExprError(f"in {node.text!r}: {fn.name} {e} ({shown})") from None
    parts: tuple[Shape, ...] = ()
    if fn.parts:
        if whole:
            raise ExprError(
                f"{node.text!r} has several results: pick one with "
                f"{' or '.join(node.text + '.' + p for p in fn.parts)}"
            )
        parts = tuple(shape)
        shape = ()
    sizes = [numel(s) for s in parts] or [numel(shape)]
    if fn.peak is not None:
        sizes.append(fn.peak(infer_args))
    biggest = max(sizes + [a.max_numel for a in args])
    if fn.category == "constructor":
        for d in shape:
            if d > limits.max_dim:
                raise limits.refuse("max_dim", d, f"a size of {node.text!r}")
    frozen = tuple(sorted(options.items())) if node.kwargs else tuple(options.items())
    return Bound(node, shape, None, tuple(args), biggest, options=frozen, parts=parts)


def _first_leaf(node: Node) -> Node:
    """The leftmost leaf of ``node`` (what a mistaken static argument was meant to be)."""
    while isinstance(node, (BinOp, Neg)):
        node = node.left if isinstance(node, BinOp) else node.operand
    return node


def _literal(node: Literal, scope: Scope, limits: Limits) -> tuple[Any, Shape]:
    """The entries (nested tuples of floats) and shape of a list literal."""
    if not node.items:
        raise ExprError(f"the list {node.text!r} is empty")
    if all(isinstance(i, Literal) for i in node.items):
        rows = [_literal(i, scope, limits) for i in node.items]  # type: ignore[arg-type]
        inner = rows[0][1]
        if any(r[1] != inner for r in rows):
            raise ExprError(
                f"the rows of {node.text!r} have different shapes: "
                f"{', '.join(fmt_shape(r[1]) for r in rows)}"
            )
        return tuple(r[0] for r in rows), (len(rows), *inner)
    values = []
    for item in node.items:
        if isinstance(item, Literal):
            raise ExprError(f"{node.text!r} mixes numbers and lists")
        v = _static_value(item, scope, limits, f"an entry of the list {node.text!r}")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ExprError(
                f"an entry of the list {node.text!r} must be a number, got {item.text!r}"
            )
        values.append(float(v))
    return tuple(values), (len(values),)


# ---- indexing ---------------------------------------------------------------------------------


def _bind_index(node: Index, scope: Scope, limits: Limits) -> Bound:
    """``x[...]`` with constant items: the result shape, and the key as ``value`` (one entry per
    item: ("int", i), ("slice", start, stop, step), ("list", indices), ("none",), ("dots",))."""
    a = _bind(node.operand, scope, limits)
    shape = a.shape
    where = f"in {node.text!r}"
    if not shape:
        raise ExprError(f"{where}: {node.operand.text!r} is a scalar and cannot be indexed")
    items = node.items
    if sum(isinstance(i, Dots) for i in items) > 1:
        raise ExprError(f"{where}: an index may use ... only once")
    consuming = [i for i in items if not isinstance(i, (Dots, Const))]
    if any(isinstance(i, Const) and i.value is not None for i in items):
        raise ExprError(f"{where}: an index item may be a number, a slice, ..., None or a list")
    if len(consuming) > len(shape):
        raise ExprError(
            f"{where}: {len(consuming)} indices for {node.operand.text!r} of shape "
            f"{fmt_shape(shape)}, which has {len(shape)} axes"
        )
    if sum(isinstance(i, Literal) for i in items) > 1:
        raise ExprError(f"{where}: at most one index list per index (gather one axis at a time)")
    spec: list[tuple[Any, ...]] = []
    out: list[int] = []
    axis = 0
    for item in items:
        if isinstance(item, Dots):
            skip = len(shape) - len(consuming)
            out.extend(shape[axis : axis + skip])
            axis += skip
            spec.append(("dots",))
            continue
        if isinstance(item, Const):  # None: a new axis of size 1
            out.append(1)
            spec.append(("none",))
            continue
        size = shape[axis]
        named = f"axis {axis} (size {size}) of {node.operand.text!r} {where}"
        if isinstance(item, Slice):
            start, stop, step = (
                None if p is None else _index_int(p, scope, limits, named)
                for p in (item.start, item.stop, item.step)
            )
            for bound_ in (start, stop):
                if bound_ is not None and not -size <= bound_ <= size:
                    raise ExprError(f"slice bound {bound_} is out of range for {named}")
            if step is not None and step < 1:
                raise ExprError(
                    f"the slice step must be a positive integer, got {step}, for {named}"
                )
            length = len(range(size)[slice(start, stop, step)])
            if length == 0:
                raise ExprError(f"the slice {item.text!r} is empty for {named}")
            out.append(length)
            spec.append(("slice", start, stop, step))
        elif isinstance(item, Literal):
            picks = []
            for entry in item.items:
                i = _index_int(entry, scope, limits, named)
                if not -size <= i < size:
                    raise ExprError(f"index {i} is out of range for {named}")
                picks.append(i % size)
            if not picks:
                raise ExprError(f"the index list {item.text!r} is empty for {named}")
            out.append(len(picks))
            spec.append(("list", tuple(picks)))
        else:
            i = _index_int(item, scope, limits, named)
            if not -size <= i < size:
                raise ExprError(f"index {i} is out of range for {named}")
            spec.append(("int", i))
        axis += 1
    out.extend(shape[axis:])
    result = tuple(out)
    return Bound(node, result, None, (a,), max(a.max_numel, numel(result)), value=tuple(spec))


def _index_int(node: Node, scope: Scope, limits: Limits, named: str) -> int:
    if isinstance(node, (*_NOT_A_TENSOR, Literal, Index, Compare)):
        raise ExprError(
            f"an index must be an integer constant or dim, got {node.text!r}, for {named}"
        )
    b = _bind(node, scope, limits)
    if b.static is None or not float(b.static).is_integer():
        raise ExprError(
            f"an index must be an integer constant or dim (indices are fixed before any draw), "
            f"got {node.text!r}, for {named}"
        )
    return int(b.static)


def _index_key(spec: tuple[tuple[Any, ...], ...], torch: Any, like: Any) -> tuple[Any, ...]:
    """The torch index for a bound ``x[...]``: every trial, then the items."""
    key: list[Any] = [slice(None)]
    for item in spec:
        kind = item[0]
        if kind == "int":
            key.append(item[1])
        elif kind == "slice":
            key.append(slice(item[1], item[2], item[3]))
        elif kind == "list":
            key.append(torch.tensor(item[1], dtype=torch.long, device=like.device))
        elif kind == "none":
            key.append(None)
        else:
            key.append(Ellipsis)
    return tuple(key)


# ---- evaluation -----------------------------------------------------------------------------


Perturb = Callable[[Any], Any] | None


def _evaluate(
    b: Bound,
    env: Mapping[str, Any],
    torch: Any,
    like: Any,
    memo: dict[str, Any] | None = None,
    perturb: Perturb = None,
) -> Any:
    if memo is None or not b.args or b.static is not None:
        return _perturbed(_evaluate_node(b, env, torch, like, memo, perturb), perturb)
    # The key is the node's source text: within one expression, equal text parses to an
    # equal tree, and so (same names, same env) to an equal value.
    out = memo.get(b.node.text)
    if out is None:
        out = memo[b.node.text] = _perturbed(
            _evaluate_node(b, env, torch, like, memo, perturb), perturb
        )
    return out


def _perturbed(out: Any, perturb: Perturb) -> Any:
    """A node's output through the perturbation hook (a tensor only: a constant stays exact)."""
    if perturb is None or isinstance(out, float):
        return out
    if isinstance(out, tuple):  # the results of a function with several
        return tuple(perturb(o) for o in out)
    return perturb(out)


def constant(b: Bound) -> Any:
    """The Python value a static argument is passed to an ``impl`` as."""
    v = b.static
    if v is None:  # a string, a tuple, None
        return b.value
    return int(v) if float(v).is_integer() else v


def _evaluate_node(
    b: Bound,
    env: Mapping[str, Any],
    torch: Any,
    like: Any,
    memo: dict[str, Any] | None,
    perturb: Perturb = None,
) -> Any:
    node = b.node
    if b.static is not None:
        return b.static

    def ev(a: Bound) -> Any:
        return _evaluate(a, env, torch, like, memo, perturb)

    if isinstance(node, Name):
        return env[node.name]
    if isinstance(node, Neg):
        return -ev(b.args[0])
    if isinstance(node, Transpose):
        x = ev(b.args[0])
        return x.transpose(-1, -2) if len(b.args[0].shape) == 2 else x
    if isinstance(node, Imag):
        return torch.full(
            (like.shape[0],), complex(0.0, node.value), dtype=complex_dtype(torch, like.dtype),
            device=like.device,
        )
    if isinstance(node, Attr):
        if node.attr == "mT":
            return as_tensor(ev(b.args[0]), b.args[0].shape, torch, like).transpose(-1, -2)
        if node.attr == "H":
            x = ev(b.args[0])
            return x.mH if len(b.args[0].shape) == 2 else x.conj()
        call = b.args[0]
        assert isinstance(call.node, Call)
        return ev(call)[overlay.get(call.node.fn).parts.index(node.attr)]
    if isinstance(node, BinOp):
        return _eval_binop(b, env, torch, like, memo, perturb)
    if isinstance(node, Compare):
        x, y = (_aligned(ev(a), a.shape, b.shape, torch, like) for a in b.args)
        refuse_complex(node.text, f"the comparison {node.op}", x, y)
        mask = _COMPARE[node.op](x, y)
        return mask.to(like.dtype)
    if isinstance(node, Index):
        x = as_tensor(ev(b.args[0]), b.args[0].shape, torch, like)
        return x[_index_key(b.value, torch, like)]
    if isinstance(node, Literal):
        out = torch.tensor(b.value, dtype=like.dtype, device=like.device)
        return out.expand(like.shape[0], *out.shape)
    if isinstance(node, Call):
        fn = overlay.get(node.fn)
        vals: list[Any] = []
        for i, a in enumerate(b.args):
            if i in fn.static_args:
                vals.append(constant(a))
            else:
                vals.append(as_tensor(ev(a), a.shape, torch, like))
        options = dict(b.options)
        if fn.category in REAL_ONLY:
            refuse_complex(node.text, fn.name, *vals)
        if fn.category == "constructor":
            out = fn.impl(torch, *vals, like=like, **options)
            return out.expand(like.shape[0], *out.shape)
        try:
            return fn.impl(torch, *vals, **options)
        except ValueTooLarge as e:
            raise EvalError(f"{node.text}: {e}") from None
        except (RuntimeError, NotImplementedError) as e:
            # torch refuses complex input for functions defined by the order of the reals
            # (relu, sign, clamp, max, softplus) and for a few others: said so, not an
            # internal error
            if any(getattr(v, "is_complex", lambda: False)() for v in vals):
                reason = str(e).split("\n")[0][:200]
                raise EvalError(
                    f"{node.text}: {fn.name} does not accept complex values here ({reason}); "
                    f"apply it to real(...), imag(...) or abs(...)"
                ) from None
            raise
    raise AssertionError(f"unhandled node {type(node).__name__}")  # pragma: no cover


def complex_dtype(torch: Any, dtype: Any) -> Any:
    """The complex dtype of the precision of ``dtype`` (complex128 for float64)."""
    if dtype.is_complex:
        return dtype
    return torch.complex64 if dtype in (torch.float32, torch.float16) else torch.complex128


# Function families defined by an order of the reals (kinks, ties, comparisons): refused on
# complex values, which have no order.
REAL_ONLY = frozenset({"order"})


def refuse_complex(text: str, what: str, *values: Any) -> None:
    """Raise :class:`EvalError` when a value given to ``what`` (defined by the order of the
    reals) is complex."""
    if any(getattr(v, "is_complex", lambda: False)() for v in values):
        raise EvalError(
            f"{text}: {what} needs real values, but an argument is complex (complex numbers "
            f"have no order); compare or clamp real(...), imag(...) or abs(...) instead"
        )


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def as_tensor(v: Any, shape: Shape, torch: Any, like: Any) -> Any:
    """A value as a batched tensor: a constant (a Python float, what a static expression
    evaluates to) is filled to ``[T, *shape]``, ``like`` giving ``T``, dtype and device."""
    if isinstance(v, float):
        return torch.full((like.shape[0], *shape), v, dtype=like.dtype, device=like.device)
    return v


def _aligned(x: Any, shape: Shape, out: Shape, torch: Any, like: Any) -> Any:
    """A batched operand of ``shape`` viewed so it broadcasts against a result of ``out``
    behind the trial axis: a one-entry operand as [T, 1, ...], a smaller one with 1s in
    front of its own axes (torch aligns shapes from the right, after the trial axis)."""
    if isinstance(x, float) or shape == out:
        return x
    if is_scalar(shape):
        return x.reshape(x.shape[0], *([1] * len(out)))
    return x.reshape(x.shape[0], *([1] * (len(out) - len(shape))), *shape)


def _scalar_view(x: Any, rank: int) -> Any:
    """A batched scalar-like tensor [T, 1...] reshaped to broadcast against rank ``rank``."""
    if isinstance(x, float):
        return x
    return x.reshape(x.shape[0], *([1] * rank))


def _eval_binop(
    b: Bound,
    env: Mapping[str, Any],
    torch: Any,
    like: Any,
    memo: dict[str, Any] | None,
    perturb: Perturb = None,
) -> Any:
    node = b.node
    assert isinstance(node, BinOp)
    la, rb = b.args
    x = _evaluate(la, env, torch, like, memo, perturb)
    y = _evaluate(rb, env, torch, like, memo, perturb)
    op = node.op
    if op == "@":
        return _matmul(x, y, la.shape, rb.shape, torch)
    if op == "**":
        y = _scalar_view(y, len(la.shape))
        if isinstance(x, float):
            x = torch.tensor(x, dtype=like.dtype, device=like.device)
        return x**y
    x = _aligned(x, la.shape, b.shape, torch, like)
    y = _aligned(y, rb.shape, b.shape, torch, like)
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        return x / y
    raise AssertionError(op)  # pragma: no cover


def _matmul(x: Any, y: Any, sa: Shape, sb: Shape, torch: Any) -> Any:
    """Batched ``torch.matmul`` behind the trial axis: vectors promoted (and the promoted axis
    removed), batch axes aligned from the right after the trial axis."""
    va, vb = len(sa) == 1, len(sb) == 1
    if x.dtype != y.dtype:  # a real and a complex operand (eig of a real matrix): promote
        common = torch.promote_types(x.dtype, y.dtype)
        x, y = x.to(common), y.to(common)
    if va and vb:
        return (x * y).sum(-1)
    xa = x.unsqueeze(-2) if va else x
    yb = y.unsqueeze(-1) if vb else y
    rank = max(xa.dim(), yb.dim())
    xa = xa.reshape(xa.shape[0], *([1] * (rank - xa.dim())), *xa.shape[1:])
    yb = yb.reshape(yb.shape[0], *([1] * (rank - yb.dim())), *yb.shape[1:])
    out = torch.matmul(xa, yb)
    if va:
        out = out.squeeze(-2)
    if vb:
        out = out.squeeze(-1)
    return out


def check_size(bound: Bound, trials: int, limits: Limits, what: str) -> None:
    """Refuse an expression whose largest intermediate would exceed the element budget."""
    total = bound.max_numel * trials
    if total > limits.max_elements:
        raise LimitError(
            f"{what}: its largest intermediate has {bound.max_numel} elements per trial, "
            f"{total} over {trials} trials, over the limit max_elements={limits.max_elements} "
            f"(raise it with --limit max_elements=N, or use fewer trials)"
        )
