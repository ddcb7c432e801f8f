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
from collections.abc import Callable, Mapping
from typing import Any

from matgrad.errors import EvalError, ExprError, LimitError, did_you_mean
from matgrad.lang import notation
from matgrad.lang.functions import (
    CONSTRUCTORS,
    REGISTRY,
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
    ast.Subscript: "indexing (x[...])",
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "assignment (:=)",
    ast.Compare: "a comparison",
    ast.BoolOp: "and/or",
    ast.IfExp: "a conditional expression",
    ast.Starred: "a starred argument",
    ast.Tuple: "a tuple",
    ast.List: "a list",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.Slice: "a slice",
}


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
class Name(Node):
    name: str


@dataclasses.dataclass(frozen=True)
class Call(Node):
    fn: str
    args: tuple[Node, ...]


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
    try:
        return _parse_cached(text, limits)
    except ExprError as e:  # notation from elsewhere (x^T, trace(X), x') gets explained
        raise notation.explained(e, text) from None


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str, limits: Limits) -> Expr:
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
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _err(
                f"constant {v!r} is not allowed: only int and float numbers", src, node
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
        if node.attr != "T":
            raise _err(
                f"attribute .{node.attr} is not allowed: the only attribute is .T", src, node
            )
        return Transpose(seg, col, sub(node.value))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise _err("only calls of listed functions by name are allowed", src, node)
        fname = node.func.id
        fn = REGISTRY.get(fname)
        if fn is None:
            raise _err(f"unknown function {fname!r}{did_you_mean(fname, REGISTRY)}", src, node)
        if node.keywords:
            raise _err(f"keyword arguments are not allowed (in {fname}(...))", src, node)
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
            raise _err(
                f"{fname} takes {want} argument{plural}, got {n}: {fn.signature}", src, node
            )
        return Call(seg, col, fname, tuple(sub(a) for a in node.args))
    what = _NODE_NAMES.get(type(node), type(node).__name__)
    raise _err(f"{what} is not allowed in an expression", src, node)


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


@dataclasses.dataclass(frozen=True)
class Bound:
    """A sub-expression with its shape; ``static`` holds its value when it is a constant."""

    node: Node
    shape: Shape
    static: float | None
    args: tuple[Bound, ...] = ()
    max_numel: int = 1

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
    if isinstance(node, Num):
        return Bound(node, (), node.value)
    if isinstance(node, Name):
        if node.name in scope.shapes:
            shape = scope.shapes[node.name]
            return Bound(node, shape, None, max_numel=numel(shape))
        if node.name in scope.dims:
            return Bound(node, (), float(scope.dims[node.name]))
        if node.name in scope.hidden:
            raise ExprError(f"name {node.name!r} {scope.hidden[node.name]}")
        known = set(scope.shapes) | set(scope.dims)
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
        flipped: Shape = (a.shape[1], a.shape[0]) if len(a.shape) == 2 else a.shape
        return Bound(node, flipped, a.static, (a,), a.max_numel)
    if isinstance(node, BinOp):
        return _bind_binop(node, scope, limits)
    if isinstance(node, Call):
        return _bind_call(node, scope, limits)
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
    shape = _elementwise_shape(a, b, node)
    return Bound(node, shape, None, (a, b), max(biggest, numel(shape)))


def _elementwise_shape(a: Bound, b: Bound, node: BinOp) -> Shape:
    if a.shape == b.shape:
        return a.shape
    if is_scalar(a.shape) and is_scalar(b.shape):
        return a.shape if len(a.shape) >= len(b.shape) else b.shape
    if is_scalar(a.shape):
        return b.shape
    if is_scalar(b.shape):
        return a.shape
    hint = ""
    if sorted(a.shape) == sorted(b.shape):
        hint = " (a transpose missing?)"
    raise ExprError(
        f"shape mismatch in {node.text!r}: {node.left.text!r} is {fmt_shape(a.shape)} but "
        f"{node.right.text!r} is {fmt_shape(b.shape)}; elementwise {node.op} needs equal shapes "
        f"or a scalar side{hint}"
    )


def _matmul_shape(a: Bound, b: Bound, node: BinOp) -> Shape:
    sa, sb = a.shape, b.shape
    if len(sa) == 0 or len(sb) == 0:
        side = node.left if len(sa) == 0 else node.right
        raise ExprError(
            f"in {node.text!r}: {side.text!r} is a scalar; @ needs vectors or matrices "
            f"(use * to scale)"
        )
    inner_a = sa[-1]
    inner_b = sb[0]
    if inner_a != inner_b:
        raise ExprError(
            f"shape mismatch in {node.text!r}: {node.left.text!r} is {fmt_shape(sa)} and "
            f"{node.right.text!r} is {fmt_shape(sb)}; @ needs the inner sizes to agree "
            f"({inner_a} vs {inner_b})"
        )
    return sa[:-1] + sb[1:]


def _bind_call(node: Call, scope: Scope, limits: Limits) -> Bound:
    fn = REGISTRY[node.fn]
    args = tuple(_bind(a, scope, limits) for a in node.args)
    for i in fn.static_args:
        if i < len(args) and args[i].static is None:
            raise ExprError(
                f"in {node.text!r}: argument {i + 1} of {fn.name} must be an integer constant "
                f"or dim, got {node.args[i].text!r}"
            )
    if fn.name == "matpow":
        k = args[1].static
        if k is not None and k > limits.max_power:
            raise limits.refuse("max_power", int(k), f"the power in {node.text!r}")
    if fn.name in CONSTRUCTORS:
        for a in args:
            if a.static is not None and a.static > limits.max_dim:
                raise limits.refuse("max_dim", int(a.static), f"a size in {node.text!r}")
    try:
        shape = fn.infer([Arg(a.shape, a.static) for a in args])
    except ShapeError as e:
        shapes = ", ".join(f"{a.node.text}: {fmt_shape(a.shape)}" for a in args)
        raise ExprError(f"in {node.text!r}: {fn.name} {e} ({shapes})") from None
    biggest = max([numel(shape)] + [a.max_numel for a in args])
    return Bound(node, shape, None, args, biggest)


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
    return perturb(out)


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
    if isinstance(node, Name):
        return env[node.name]
    if isinstance(node, Neg):
        return -_evaluate(b.args[0], env, torch, like, memo, perturb)
    if isinstance(node, Transpose):
        x = _evaluate(b.args[0], env, torch, like, memo, perturb)
        return x.transpose(-1, -2) if len(b.args[0].shape) == 2 else x
    if isinstance(node, BinOp):
        return _eval_binop(b, env, torch, like, memo, perturb)
    if isinstance(node, Call):
        fn = REGISTRY[node.fn]
        vals: list[Any] = []
        for i, a in enumerate(b.args):
            if i in fn.static_args:
                vals.append(int(a.static))  # type: ignore[arg-type]
            else:
                v = _evaluate(a, env, torch, like, memo, perturb)
                vals.append(as_tensor(v, a.shape, torch, like))
        if fn.name in CONSTRUCTORS:
            out = fn.impl(torch, *vals, like=like)
            return out.expand(like.shape[0], *out.shape)
        try:
            return fn.impl(torch, *vals)
        except ValueTooLarge as e:
            raise EvalError(f"{node.text}: {e}") from None
    raise AssertionError(f"unhandled node {type(node).__name__}")  # pragma: no cover


def as_tensor(v: Any, shape: Shape, torch: Any, like: Any) -> Any:
    """A value as a batched tensor: a constant (a Python float, what a static expression
    evaluates to) is filled to ``[T, *shape]``, ``like`` giving ``T``, dtype and device."""
    if isinstance(v, float):
        return torch.full((like.shape[0], *shape), v, dtype=like.dtype, device=like.device)
    return v


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
        va, vb = len(la.shape) == 1, len(rb.shape) == 1
        if va and vb:
            return (x * y).sum(-1)
        if va:
            return torch.matmul(x.unsqueeze(-2), y).squeeze(-2)
        if vb:
            return torch.matmul(x, y.unsqueeze(-1)).squeeze(-1)
        return torch.matmul(x, y)
    if op == "**":
        y = _scalar_view(y, len(la.shape))
        if isinstance(x, float):
            x = torch.tensor(x, dtype=like.dtype, device=like.device)
        return x**y
    rank = len(b.shape)
    if la.shape != b.shape:
        x = _scalar_view(x, rank)
    if rb.shape != b.shape:
        y = _scalar_view(y, rank)
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        return x / y
    raise AssertionError(op)  # pragma: no cover


def check_size(bound: Bound, trials: int, limits: Limits, what: str) -> None:
    """Refuse an expression whose largest intermediate would exceed the element budget."""
    total = bound.max_numel * trials
    if total > limits.max_elements:
        raise LimitError(
            f"{what}: its largest intermediate has {bound.max_numel} elements per trial, "
            f"{total} over {trials} trials, over the limit max_elements={limits.max_elements} "
            f"(raise it with --limit max_elements=N, or use fewer trials)"
        )
