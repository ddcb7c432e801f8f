"""A claim as a sum of terms, and the small edits of one term that the diagnosis tries.

Torch-free: this module only reads bound trees (:class:`matgrad.lang.expr.Bound`) and writes
new expression text. The engine evaluates the edits (``matgrad.engine.repair``).

A claim ``T1 + T2 - T3`` has three additive terms; a term that is a ``let`` name whose
definition is itself a sum is opened up, so its terms are named as written in the let. Each
term is kept with its sign (a subtracted term, ``-T``), so that an edit changes one term and
leaves the others as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from matgrad.errors import ExprError, LimitError
from matgrad.lang.expr import (
    Attr,
    BinOp,
    Bound,
    Call,
    Compare,
    Expr,
    Name,
    Neg,
    Node,
    Num,
    Scope,
    Transpose,
    bind,
    parse,
)
from matgrad.lang.functions import Shape
from matgrad.limits import DEFAULT_LIMITS, Limits

# At most this many terms are split out of one claim (a longer sum is searched over its first
# MAX_TERMS terms only), and at most MAX_TREE_EDITS edits of one term that need the term
# evaluated again (swapped factors, a transpose removed or added, notation).
MAX_TERMS = 12
MAX_TREE_EDITS = 8


@dataclasses.dataclass(frozen=True)
class Term:
    """One additive term of a claim: its place (1-based), sign and bound tree; ``let`` names
    the let it was written in, when it came from opening one."""

    index: int
    sign: int
    bound: Bound
    let: str | None = None

    @property
    def text(self) -> str:
        return self.bound.node.text

    @property
    def label(self) -> str:
        where = f" (in let {self.let})" if self.let else ""
        return f"term {self.index} {self.text!r}{where}"


@dataclasses.dataclass(frozen=True)
class Edit:
    """A change of one term. ``op`` says how its value follows from the term's value:
    ``scale`` (by ``factor``; 0 drops the term), ``transpose``, ``sym`` ((T + T.T)/2), ``conj``
    (the complex conjugate), or ``expr`` (``bound``, a new expression, evaluated). ``text``
    is the new term as written."""

    term: Term
    what: str
    text: str
    op: str
    factor: float = 1.0
    bound: Bound | None = None

    def describe(self) -> str:
        if self.op == "scale" and self.factor == 0:
            return f"{self.term.label} {self.what}"
        return f"{self.term.label} {self.what}: {self.text!r}"


# ---- splitting ------------------------------------------------------------------------------


def split(claim: Bound, lets: Mapping[str, Bound]) -> list[Term]:
    """The additive terms of ``claim`` (through lets that are sums), in order; at most
    MAX_TERMS + 1 (one more than are searched, so a caller can tell the sum was longer)."""
    out: list[Term] = []

    def walk(b: Bound, sign: int, let: str | None, seen: frozenset[str]) -> None:
        if len(out) > MAX_TERMS:
            return
        node = b.node
        if isinstance(node, BinOp) and node.op in "+-" and b.static is None:
            walk(b.args[0], sign, let, seen)
            walk(b.args[1], -sign if node.op == "-" else sign, let, seen)
            return
        if isinstance(node, Neg) and b.static is None:
            walk(b.args[0], -sign, let, seen)
            return
        if isinstance(node, Name) and node.name in lets and node.name not in seen:
            inner = lets[node.name]
            if _is_sum(inner):
                walk(inner, sign, node.name, seen | {node.name})
                return
        out.append(Term(len(out) + 1, sign, b, let))

    walk(claim, 1, None, frozenset())
    return out


def _is_sum(b: Bound) -> bool:
    return (isinstance(b.node, BinOp) and b.node.op in "+-") or isinstance(b.node, Neg)


# ---- printing -------------------------------------------------------------------------------

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2, "**": 4}
_UNARY = 3
_ATOM = 5


def _prec(node: Node) -> int:
    if isinstance(node, BinOp):
        return _PREC[node.op]
    if isinstance(node, Neg):
        return _UNARY
    if isinstance(node, Num) and node.value < 0:
        return _UNARY
    if isinstance(node, Compare):
        return 0
    return _ATOM


def show(node: Node) -> str:
    """Expression text for ``node`` with the parentheses its structure needs."""
    if isinstance(node, Num):
        return node.text
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call):
        args = [show(a) for a in node.args] + [f"{k}={v.text}" for k, v in node.kwargs]
        return f"{node.fn}({', '.join(args)})"
    if isinstance(node, Transpose):
        return _wrap(node.operand, _prec(node.operand) < _ATOM) + ".T"
    if isinstance(node, Attr) and not node.text:  # made by an edit
        return _wrap(node.operand, _prec(node.operand) < _ATOM) + "." + node.attr
    if isinstance(node, Neg):
        return "-" + _wrap(node.operand, _prec(node.operand) < _UNARY)
    if isinstance(node, BinOp):
        p = _PREC[node.op]
        if node.op == "**":
            left = _wrap(node.left, _prec(node.left) <= p)
            right = _wrap(node.right, _prec(node.right) < _UNARY)
        else:
            left = _wrap(node.left, _prec(node.left) < p)
            # a matrix product is associative: A @ (B @ C) reads as A @ B @ C
            chained = node.op == "@" and isinstance(node.right, BinOp) and node.right.op == "@"
            right = _wrap(node.right, _prec(node.right) <= p and not chained)
        return f"{left} {node.op} {right}"
    # Indexing, attributes, literals, comparisons: no edit rewrites inside them, so their
    # own source text is exact.
    return node.text


def _wrap(node: Node, paren: bool) -> str:
    text = show(node)
    return f"({text})" if paren else text


def _bin(op: str, left: Node, right: Node) -> BinOp:
    return BinOp("", 0, op, left, right)


def transposed(b: Bound) -> Node:
    """``b`` transposed, the transpose pushed through products, sums and scalings:
    ``(A.T @ X @ B).T`` is ``B.T @ X.T @ A``."""
    node = b.node
    if len(b.shape) > 2:  # a batch of matrices: swap the last two axes
        if isinstance(node, Attr) and node.attr == "mT":
            return b.args[0].node
        return Attr("", 0, node, "mT")
    if len(b.shape) != 2:
        return node  # a scalar or a 1-D vector is its own transpose
    if isinstance(node, Transpose) and len(b.args[0].shape) == 2:
        return b.args[0].node
    if isinstance(node, Neg):
        return Neg("", 0, transposed(b.args[0]))
    if isinstance(node, BinOp):
        left, right = b.args
        if node.op == "@" and len(left.shape) == 2 and len(right.shape) == 2:
            return _bin("@", transposed(right), transposed(left))
        if node.op in "+-*/":
            return _bin(node.op, transposed(left), transposed(right))
        if node.op == "**":
            return _bin("**", transposed(left), right.node)
    if isinstance(node, Call) and node.fn == "sym":
        return node
    return Transpose("", 0, node)


# ---- the edits ------------------------------------------------------------------------------


def _square(shape: Shape) -> bool:
    """A square matrix, or a batch of them (the last two axes)."""
    return len(shape) >= 2 and shape[-1] == shape[-2] and shape[-1] > 1


def _swap(node: Node, shape: Shape) -> Node:
    """``node`` transposed: ``.T`` for a matrix, ``.mT`` for a batch of matrices."""
    return Transpose("", 0, node) if len(shape) == 2 else Attr("", 0, node, "mT")


def _is_swap(node: Node) -> bool:
    return isinstance(node, Transpose) or (isinstance(node, Attr) and node.attr == "mT")


def scope_of(*bounds: Bound) -> Scope:
    """A scope in which every name used by ``bounds`` means what it meant there (the edits
    only rearrange what a claim already uses)."""
    shapes: dict[str, Shape] = {}
    dims: dict[str, int] = {}
    stack = list(bounds)
    while stack:
        b = stack.pop()
        if isinstance(b.node, Name):
            if b.static is not None:
                dims[b.node.name] = int(b.static)
            else:
                shapes[b.node.name] = b.shape
        stack.extend(b.args)
    return Scope(shapes, dims)


def edits(
    terms: list[Term],
    scope: Scope,
    max_elements_per_trial: int,
    limits: Limits = DEFAULT_LIMITS,
    complex_values: bool = False,
) -> list[Edit]:
    """Every edit of one term that the diagnosis tries, in the order they are tried: notation
    slips of any term first (``X ** -1`` for ``inv(X)``, ``*`` for ``@``: they explain the
    most), then per term: transposing it, its product's factors in another order or commuted,
    a transpose moved on one (or every) occurrence of a square factor, its sign, dropping it,
    doubling or halving it, and symmetrising it. With ``complex_values`` (a claim about complex
    values), the complex slips come right after the notation ones: ``.T`` for ``.H`` and the
    reverse, ``real(...)`` that keeps the real part only (:func:`_conjugations`), and the term
    conjugated. An edit that needs its own evaluation and would hold more than
    ``max_elements_per_trial`` elements in one intermediate is left out."""
    notation: list[Edit] = []
    out: list[Edit] = []
    several = len(terms) > 1
    for term in terms[:MAX_TERMS]:
        b = term.bound
        if _square(b.shape):
            out.append(Edit(term, "should be transposed", show(transposed(b)), "transpose"))
        slips = _notation(b) + (_conjugations(b) if complex_values else [])
        tree = [*slips, *_orders(b), *_flips(b), *_transposes(b)]
        n_tree = 0
        for i, (what, node) in enumerate(tree):
            if n_tree >= MAX_TREE_EDITS:
                break
            edited = _bound(node, scope, limits)
            if edited is None or edited.shape != b.shape:
                continue
            if edited.max_numel > max_elements_per_trial:
                continue
            n_tree += 1
            edit = Edit(term, what, edited.node.text, "expr", bound=edited)
            (notation if i < len(slips) else out).append(edit)
        if complex_values:
            out.append(Edit(term, "should be conjugated", show(_conjugate(b)), "conj"))
        out.append(Edit(term, "has the wrong sign", show(Neg("", 0, b.node)), "scale", -1.0))
        if several:
            out.append(Edit(term, "should be dropped", "", "scale", 0.0))
        out.append(Edit(term, "should be doubled", show(_bin("*", _two(), b.node)), "scale", 2.0))
        out.append(Edit(term, "should be halved", show(_bin("/", b.node, _two())), "scale", 0.5))
        if _square(b.shape):
            out.append(Edit(term, "should be symmetrised", _symmetrised(b), "sym"))
    return notation + out


def _symmetrised(b: Bound) -> str:
    """``(T + T.T) / 2`` as written: ``P + P.T`` for a term ``2 * P``, else ``sym(T)``."""
    node = b.node
    if isinstance(node, BinOp) and node.op == "*" and b.args[0].static == 2.0:
        half = b.args[1]
        return show(_bin("+", half.node, transposed(half)))
    factors = _chain(b)
    first = factors[0]
    if (
        len(factors) > 1
        and isinstance(first.node, BinOp)
        and first.node.op == "*"
        and first.args[0].static == 2.0
    ):
        # 2 * P @ Q parses as (2 * P) @ Q
        rest = [first.args[1], *factors[1:]]
        back = [transposed(f) for f in rest[::-1]]
        return show(_bin("+", _product([f.node for f in rest]), _product(back)))
    return show(Call("", 0, "sym", (node,)))


def _two() -> Num:
    return Num("2", 0, 2.0, True)


def _bound(node: Node, scope: Scope, limits: Limits) -> Bound | None:
    text = show(node)
    try:
        expr = parse(text, limits)
        return bind(Expr(expr.text, expr.root, expr.names), scope, limits)
    except (ExprError, LimitError):
        return None


def _replace(root: Bound, target: Bound, new: Node) -> Node:
    """``root``'s tree with the subtree ``target`` (by identity) replaced by ``new``."""
    if root is target:
        return new
    if not root.args:
        return root.node
    return _rebuilt(root.node, [_replace(a, target, new) for a in root.args])


def _rebuilt(node: Node, args: list[Node]) -> Node:
    """``node`` over the (edited) children ``args``."""
    if isinstance(node, BinOp):
        return _bin(node.op, args[0], args[1])
    if isinstance(node, Neg):
        return Neg("", 0, args[0])
    if isinstance(node, Transpose):
        return Transpose("", 0, args[0])
    if isinstance(node, Call):  # its options unchanged: an edit never drops axis= and the like
        return Call("", 0, node.fn, tuple(args), node.kwargs)
    if isinstance(node, Attr) and node.attr in ("mT", "H"):
        return Attr("", 0, args[0], node.attr)
    return node  # indexing and the like: no edit reaches inside them


def _subtrees(b: Bound) -> list[Bound]:
    out = [b]
    for a in b.args:
        out += _subtrees(a)
    return out


def _notation(b: Bound) -> list[tuple[str, Node]]:
    """``M ** -1`` (an elementwise reciprocal) meant as ``inv(M)``; ``A * B`` (elementwise)
    meant as ``A @ B``, for square matrices."""
    out: list[tuple[str, Node]] = []
    for s in _subtrees(b):
        node = s.node
        if not isinstance(node, BinOp) or s.static is not None:
            continue
        left, right = s.args
        if node.op == "**" and _square(left.shape) and right.static == -1:
            inv = Call("", 0, "inv", (left.node,))
            out.append((
                f"uses {node.text!r}, an elementwise reciprocal (1/x per entry), for the matrix "
                f"inverse {show(inv)}", _replace(b, s, inv)
            ))
        if node.op == "*" and _square(left.shape) and _square(right.shape):
            out.append((
                f"uses {node.text!r}, an elementwise product, for the matrix product @",
                _replace(b, s, _bin("@", left.node, right.node)),
            ))
    return out


def _chain(b: Bound) -> list[Bound]:
    """The factors of a matrix product ``F1 @ F2 @ ...`` (however parenthesised)."""
    if isinstance(b.node, BinOp) and b.node.op == "@" and b.static is None:
        return _chain(b.args[0]) + _chain(b.args[1])
    return [b]


def _product(factors: list[Node]) -> Node:
    out = factors[0]
    for f in factors[1:]:
        out = _bin("@", out, f)
    return out


def _orders(b: Bound) -> list[tuple[str, Node]]:
    """The term's largest matrix product with its factors reversed, with two neighbours
    swapped, or (two factors, weight 2) commuted: ``2 * P @ Q`` as ``P @ Q + Q @ P``."""
    products = [s for s in _subtrees(b) if isinstance(s.node, BinOp) and s.node.op == "@"]
    if not products:
        return []
    top = products[0]
    factors = _chain(top)
    nodes = [f.node for f in factors]
    out: list[tuple[str, Node]] = []
    if len(factors) >= 2:
        out.append((
            "has its factors in the wrong order", _replace(b, top, _product(nodes[::-1]))
        ))
    if len(factors) >= 3:
        for i in range(len(factors) - 1):
            swapped = [*nodes[:i], nodes[i + 1], nodes[i], *nodes[i + 2 :]]
            out.append(("has two factors in the wrong order", _replace(b, top, _product(swapped))))
    if len(factors) == 2:
        p, q = factors
        weight = _coefficient(b, top) if b is not top else None
        if weight is None and b is top and isinstance(p.node, BinOp) and p.node.op == "*":
            # 2 * X @ dX parses as (2 * X) @ dX
            if p.args[0].static is not None:
                weight, p = p.args[0].static, p.args[1]
        if weight == 2.0:
            both = _bin("+", _product([p.node, q.node]), _product([q.node, p.node]))
            out.append((
                f"treats {p.node.text!r} and {q.node.text!r} as if they commuted (the scalar "
                f"rule 2ab)", both,
            ))
    return out


def _coefficient(b: Bound, product: Bound) -> float | None:
    """c when ``b`` is ``c * product`` or ``product * c`` with a constant c."""
    node = b.node
    if isinstance(node, BinOp) and node.op == "*":
        left, right = b.args
        if right is product and left.static is not None:
            return left.static
        if left is product and right.static is not None:
            return right.static
    return None


def _flips(b: Bound) -> list[tuple[str, Node]]:
    """Every occurrence of one square variable transposed at once (X for X.T and X.T for X),
    for a variable the term uses more than once: -inv(X) @ a @ b.T @ inv(X) for
    -inv(X.T) @ a @ b.T @ inv(X.T)."""
    counts: dict[str, int] = {}
    for s in _subtrees(b):
        if isinstance(s.node, Name) and _square(s.shape) and s.static is None:
            counts[s.node.name] = counts.get(s.node.name, 0) + 1
    return [
        (f"has {name!r} where {name + '.T'!r} belongs (each of its {n})", _flip(b, name))
        for name, n in counts.items()
        if n > 1
    ]


def _flip(b: Bound, name: str) -> Node:
    node = b.node
    if _is_swap(node) and isinstance(b.args[0].node, Name):
        if b.args[0].node.name == name:
            return b.args[0].node
        return node
    if isinstance(node, Name):
        return _swap(node, b.shape) if node.name == name else node
    if not b.args:
        return node
    return _rebuilt(node, [_flip(a, name) for a in b.args])


def _transposes(b: Bound) -> list[tuple[str, Node]]:
    """A transpose removed from one square factor (Xᵀ written for X, X⁻ᵀ for X⁻¹), or added
    to a square variable or inverse that has none."""
    out: list[tuple[str, Node]] = []
    parents: dict[int, Bound] = {}
    for s in _subtrees(b):
        for a in s.args:
            parents[id(a)] = s
    for s in _subtrees(b)[1:]:  # the whole term transposed is an edit of its own
        node = s.node
        if _is_swap(node) and _square(s.shape):
            inner = s.args[0].node
            out.append((
                f"has {node.text!r} where {show(inner)!r} belongs", _replace(b, s, inner)
            ))
        elif (
            _square(s.shape)
            and s.static is None
            and (isinstance(node, Name) or (isinstance(node, Call) and node.fn == "inv"))
            and not _is_swap(parents.get(id(s), b).node)
        ):
            t = _swap(node, s.shape)
            out.append((f"has {node.text!r} where {show(t)!r} belongs", _replace(b, s, t)))
        if isinstance(node, Call) and node.fn == "inv" and isinstance(node.args[0], Transpose):
            plain = Call("", 0, "inv", (s.args[0].args[0].node,))
            out.append((
                f"has {node.text!r} where {show(plain)!r} belongs", _replace(b, s, plain)
            ))
    return out



def _conjugations(b: Bound) -> list[tuple[str, Node]]:
    """The complex slips of one term: a plain transpose ``M.T`` where the conjugate transpose
    ``M.H`` belongs (the classic one: the real habit carried over), ``M.H`` where ``M.T``
    belongs, and ``real(M)`` or ``conj(M)`` where ``M`` belongs (the real part only, a
    conjugate too many)."""
    out: list[tuple[str, Node]] = []
    for s in _subtrees(b):
        node = s.node
        if isinstance(node, Transpose) and len(s.args[0].shape) == 2:
            h = Attr("", 0, s.args[0].node, "H")
            out.append((
                f"has {node.text!r} where {show(h)!r} belongs (a plain transpose where the "
                f"conjugate transpose was meant)", _replace(b, s, h),
            ))
        elif isinstance(node, Attr) and node.attr == "H" and len(s.args[0].shape) == 2:
            t = Transpose("", 0, s.args[0].node)
            out.append((
                f"has {node.text!r} where {show(t)!r} belongs (a conjugate transpose where "
                f"the plain one was meant)", _replace(b, s, t),
            ))
        elif isinstance(node, Call) and node.fn in ("real", "conj") and len(s.args) == 1:
            whole = s.args[0].node
            why = "the real part only" if node.fn == "real" else "conjugated"
            out.append((
                f"has {node.text!r} where {show(whole)!r} belongs ({why})",
                _replace(b, s, whole),
            ))
    return out


def _conjugate(b: Bound) -> Node:
    """``conj`` of ``b`` as written most simply: pushed through sums and products (a real
    constant factor stays as it is), and ``conj(M)`` loses its conj."""
    node = b.node
    if isinstance(node, Call) and node.fn == "conj" and len(b.args) == 1:
        return b.args[0].node
    if b.static is not None:
        return node
    if isinstance(node, BinOp) and node.op in "+-*/@":
        left, right = b.args
        return _bin(node.op, _conjugate(left), _conjugate(right))
    if isinstance(node, Neg):
        return Neg("", 0, _conjugate(b.args[0]))
    return Call("", 0, "conj", (node,))
