"""Formulas for the reports, generated from the parsed expression (no ``latex:`` key needed).

:func:`mathml` turns expression text into Presentation MathML, which browsers render natively
(no script, no font: the HTML report stays offline); :func:`text` gives the plain form for
JSON, CSV and text sinks. Both start from :func:`matgrad.lang.expr.parse`, so what is shown is
what was checked.

The renderer knows the node types of the language; any other node (a construct added to the
parser later) is shown as its source text in an ``<mtext>``, never dropped and never raw.
Every piece of text from an identity file is escaped by :func:`matgrad.report.escape.html`.
"""

from __future__ import annotations

from collections.abc import Callable

from matgrad.claims import KINDS
from matgrad.errors import MatgradError
from matgrad.lang import expr as ex
from matgrad.report.escape import html as esc

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

# Python's binding strength: the higher binds tighter.
_SUM, _PRODUCT, _UNARY, _POWER, _ATOM = 1, 2, 3, 4, 5
_PRECEDENCE = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "@": _PRODUCT, "**": _POWER}

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "kappa": "κ", "lambda_": "λ", "lam": "λ", "mu": "μ", "nu": "ν",
    "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ", "chi": "χ",
    "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ",
    "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
_INVISIBLE_TIMES = "&#x2062;"
_APPLY = "&#x2061;"
_T = '<mi mathvariant="normal">T</mi>'


def _mo(op: str) -> str:
    """An operator of matgrad's own (never text from a file)."""
    return f"<mo>{op}</mo>"


def _row(*parts: str) -> str:
    return "<mrow>" + "".join(parts) + "</mrow>"


def _fenced(inner: str) -> str:
    return _row(_mo("("), inner, _mo(")"))


def _identifier(name: str) -> str:
    """A name: Greek names as letters, a trailing number or ``_part`` as a subscript."""
    base, _, sub = name.partition("_")
    if not sub:
        stripped = name.rstrip("0123456789")
        if stripped and stripped != name:
            base, sub = stripped, name[len(stripped):]
    shown = _GREEK.get(base, base)
    variant = ' mathvariant="normal"' if len(shown) > 1 else ""
    ident = f"<mi{variant}>{esc(shown)}</mi>"
    if sub:
        sub_el = f"<mn>{esc(sub)}</mn>" if sub.isdigit() else f"<mi>{esc(sub)}</mi>"
        return f"<msub>{ident}{sub_el}</msub>"
    return ident


def _fallback(node: ex.Node) -> str:
    return f"<mtext>{esc(node.text)}</mtext>"


class _Renderer:
    """Node -> (MathML, precedence); a dispatch table that refuses nothing: unknown node
    types are shown as their source text."""

    def __init__(self, directions: frozenset[str]) -> None:
        self.directions = directions
        self.handlers: dict[type, Callable[[ex.Node], tuple[str, int]]] = {
            ex.Num: self._num,
            ex.Name: self._name,
            ex.Neg: self._neg,
            ex.Transpose: self._transpose,
            ex.BinOp: self._binop,
            ex.Call: self._call,
        }

    def render(self, node: ex.Node) -> tuple[str, int]:
        handler = self.handlers.get(type(node))
        if handler is None:
            return _fallback(node), _ATOM
        return handler(node)

    def operand(self, node: ex.Node, least: int) -> str:
        out, prec = self.render(node)
        return _fenced(out) if prec < least else out

    def _num(self, node: ex.Node) -> tuple[str, int]:
        assert isinstance(node, ex.Num)
        return f"<mn>{esc(node.text)}</mn>", _ATOM

    def _name(self, node: ex.Node) -> tuple[str, int]:
        assert isinstance(node, ex.Name)
        name = node.name
        if name in self.directions:  # dX: the direction of X
            return _row('<mi mathvariant="normal">d</mi>', _identifier(name[1:])), _ATOM
        return _identifier(name), _ATOM

    def _neg(self, node: ex.Node) -> tuple[str, int]:
        assert isinstance(node, ex.Neg)
        return _row(_mo("−"), self.operand(node.operand, _UNARY)), _UNARY

    def _transpose(self, node: ex.Node) -> tuple[str, int]:
        assert isinstance(node, ex.Transpose)
        inner = node.operand
        if isinstance(inner, ex.Call) and inner.fn == "inv" and len(inner.args) == 1:
            base = self.operand(inner.args[0], _ATOM)  # X^{-T}
            return f"<msup>{base}{_row(_mo('−'), _T)}</msup>", _ATOM
        base = self.operand(inner, _ATOM)
        return f"<msup>{base}{_T}</msup>", _ATOM

    def _binop(self, node: ex.Node) -> tuple[str, int]:
        assert isinstance(node, ex.BinOp)
        op = node.op
        prec = _PRECEDENCE.get(op)
        if prec is None:
            return _fallback(node), _ATOM
        if op == "/":
            left, _ = self.render(node.left)
            right, _ = self.render(node.right)
            return f"<mfrac>{_row(left)}{_row(right)}</mfrac>", _ATOM
        if op == "**":
            base = self.operand(node.left, _ATOM)
            power, _ = self.render(node.right)
            return f"<msup>{base}{_row(power)}</msup>", _POWER
        left = self.operand(node.left, prec)
        # a - (b + c), a @ (b * c): the right operand binds at the same level only in brackets
        right = self.operand(node.right, prec + 1)
        if op == "@" or (op == "*" and isinstance(node.left, ex.Num)):
            sign = _mo(_INVISIBLE_TIMES)  # a matrix product or a number times: side by side
        else:
            sign = _mo({"+": "+", "-": "−", "*": "⊙"}[op])  # * is elementwise
        return _row(left, sign, right), prec

    def _call(self, node: ex.Node) -> tuple[str, int]:
        assert isinstance(node, ex.Call)
        args = node.args
        if node.fn == "inv" and len(args) == 1:
            base = self.operand(args[0], _ATOM)
            return f"<msup>{base}{_row(_mo('−'), '<mn>1</mn>')}</msup>", _ATOM
        if node.fn == "sqrt" and len(args) == 1:
            return f"<msqrt>{self.render(args[0])[0]}</msqrt>", _ATOM
        if node.fn == "abs" and len(args) == 1:
            bar = '<mo stretchy="false">|</mo>'
            return _row(bar, self.render(args[0])[0], bar), _ATOM
        inner: list[str] = []
        for i, a in enumerate(args):
            if i:
                inner.append(_mo(","))
            inner.append(self.render(a)[0])
        name = f'<mi mathvariant="normal">{esc(node.fn)}</mi>'
        return _row(name, _mo(_APPLY), _fenced(_row(*inner))), _ATOM


def expression(text: str, directions: frozenset[str] = frozenset()) -> str:
    """``text`` as MathML content (no ``<math>`` element): the parsed tree, or the text itself
    in an ``<mtext>`` when it does not parse. ``directions`` are names shown as ``dX``."""
    try:
        parsed = ex.parse(text)
    except MatgradError:
        return f"<mtext>{esc(text)}</mtext>"
    return _Renderer(directions).render(parsed.root)[0]


def math(content: str) -> str:
    """MathML content in a block ``<math>`` element."""
    return f'<math xmlns="{MATHML_NS}" display="block">{content}</math>'


def function(f: str) -> str:
    """``f = …`` as a MathML block."""
    return math(_row("<mi>f</mi>", _mo("="), expression(f)))


def claim(kind: str, var: str, claimed: str) -> str:
    """A claim as a MathML block: its kind's symbol (``∂f/∂X``, ``df``, …) ``=`` the claimed
    expression (in a differential, ``dX`` is the direction of ``X``)."""
    k = KINDS.get(kind)
    directions = frozenset({f"d{var}"}) if k is not None and k.uses_direction else frozenset()
    pair = _pair(k, var)
    if pair is not None and k is not None:
        lhs = k.symbol2_mathml.replace("{var}", _identifier(pair[0])).replace(
            "{var2}", _identifier(pair[1])
        )
    elif k is not None:
        lhs = k.symbol_mathml.replace("{var}", _identifier(var))
    else:
        lhs = f"<mtext>{esc(f'{kind} {var}')}</mtext>"
    return math(_row(lhs, _mo("="), expression(claimed, directions)))


def _pair(k: object, var: str) -> tuple[str, str] | None:
    """The two variables of a claim about two (its ``var`` is the key ``x, y``), where its
    kind has their symbol; None otherwise."""
    first, sep, second = var.partition(", ")
    if not sep or not getattr(k, "symbol2", ""):
        return None
    return first, second


def claim_text(kind: str, var: str, claimed: str) -> str:
    """A claim in plain text: ``∂f/∂X = A.T`` (not escaped: each sink escapes it)."""
    k = KINDS.get(kind)
    pair = _pair(k, var)
    if pair is not None and k is not None:
        lhs = k.symbol2.replace("{var}", pair[0]).replace("{var2}", pair[1])
    else:
        lhs = k.symbol.replace("{var}", var) if k is not None else f"{kind} {var}"
    return f"{lhs} = {claimed}"
