"""``matgrad new``: a commented identity file to start from. It validates and checks as
written, so a new user edits something that works. No torch."""

from __future__ import annotations

import keyword
import string
import textwrap

import yaml

from matgrad.errors import MatgradError
from matgrad.lang.domains import DEFAULT as DEFAULT_DOMAIN
from matgrad.lang.domains import DOMAINS
from matgrad.spec import schema as spec

KINDS = ("grad", "differential", "hessian")
DEFAULT_VAR = {"grad": "X", "differential": "X", "hessian": "x"}


def _vars_comment() -> str:
    """The comment on ``vars:``: every domain, as the domain registry lists them."""
    others = ", ".join(d for d in DOMAINS if d != DEFAULT_DOMAIN)
    text = f"shape, and domain: how values are drawn ({DEFAULT_DOMAIN} by default; also {others})"
    lines = textwrap.wrap(text, width=88, initial_indent="vars:  # ", subsequent_indent="       # ")
    return "\n".join(lines) + "\n"


_HEAD = (
    """\
# $id: a matrix-calculus identity for matgrad, started by `matgrad new`.
# Edit it, then check it with:  matgrad check $file
# Format: docs/identity-format.md; functions: `matgrad functions`.
id: $id
title: "$title"  # one line, shown by `matgrad list` and in reports
# source: "Matrix Cookbook (2012) eq. ..."  # where the identity comes from
# latex: '$latex'
dims: {$dim: 3}  # named sizes, usable as integers in expressions
"""
    + _vars_comment()
)

_BODY = {
    "grad": """\
  $key: {shape: [$dim, $dim]}
  $other: {shape: [$dim, $dim]}
f: "tr($other @ $var)"  # a scalar (quote expressions)
grad:  # d f / d $var, with the shape of $var: entry (i, j) is d f / d $var[i, j]
  $key: "$other.T"
""",
    "differential": """\
  $key: {shape: [$dim, $dim], domain: invertible}  # well-conditioned, so inv($var) is safe
f: "inv($var)"  # any shape: a differential claim does not need a scalar f
differential:  # the change of f along a random direction d$var (the shape of $var)
  $key: "-inv($var) @ d$var @ inv($var)"
""",
    "hessian": """\
  $key: {shape: [$dim, 1]}  # a column vector; [$dim] is a plain vector
  $other: {shape: [$dim, $dim]}
f: "$var.T @ $other @ $var"  # a scalar ([1, 1] counts as one)
hessian:  # the $dim x $dim matrix of second derivatives of f with respect to $var
  $key: "$other + $other.T"
""",
}

_TAIL = """\
# expect: fail  # keep a known-wrong identity as a negative example
# tol: {rtol: 1.0e-6, atol: 1.0e-9}  # per-identity tolerances (float64 defaults shown)
# trials: 10  # random draws of the variables
"""

_TITLE = {  # kind -> (title, latex)
    "grad": (
        "Gradient of tr($other $var) with respect to $var",
        r"\frac{\partial}{\partial $var}\operatorname{tr}($other$var) = $other^T",
    ),
    "differential": (
        "Differential of the inverse of $var",
        r"d($var^{-1}) = -$var^{-1}(d$var)$var^{-1}",
    ),
    "hessian": (
        "Hessian of the quadratic form $var^T $other $var",
        r"\frac{\partial^2 $var^T$other$var}{\partial $var\,\partial $var^T} = $other + $other^T",
    ),
}


def template(
    ident_id: str, kind: str = "grad", var: str | None = None, file: str | None = None
) -> str:
    """The text of a new identity file for ``kind`` of claim on variable ``var``.

    Raises :class:`MatgradError` when the id or the variable name cannot be used; the text
    returned always passes ``matgrad validate``.
    """
    if kind not in KINDS:
        raise MatgradError(f"unknown claim kind {kind!r}; use one of {', '.join(KINDS)}")
    if not spec.ID_RE.match(ident_id):
        raise MatgradError(
            f"id {ident_id!r} must match [a-z0-9][a-z0-9._-]* (lowercase, no spaces)"
        )
    var = var or DEFAULT_VAR[kind]
    if not var.isidentifier() or not var.isascii() or keyword.iskeyword(var):
        raise MatgradError(
            f"variable name {var!r} is not a valid name (ASCII letters, digits and _, not "
            f"starting with a digit)"
        )
    taken = {var, "d" + var}
    other = next(c for c in ("A", "B", "C") if c not in taken and "d" + c != var)
    dim = next(c for c in ("n", "m", "k") if c not in (var, other))
    values = {
        "id": ident_id,
        "file": file or f"{ident_id}.yaml",
        "var": var,
        "key": _yaml_key(var),
        "other": other,
        "dim": dim,
    }
    title, latex = (string.Template(t).substitute(values) for t in _TITLE[kind])
    values |= {"title": title, "latex": latex}
    text = "".join(
        string.Template(part).substitute(values) for part in (_HEAD, _BODY[kind], _TAIL)
    )
    problem = _problem(text)
    if problem is not None:
        raise MatgradError(f"cannot make a template for variable {var!r}: {problem}")
    return text


def _yaml_key(name: str) -> str:
    """``name`` as a mapping key, quoted where YAML 1.1 would read it as something else
    (``on``, ``off``, ``yes``, ``null``, ...)."""
    return name if yaml.safe_load(f"{name}: 0") == {name: 0} else f"'{name}'"


def _problem(text: str) -> str | None:
    items = spec.load_text(text, "<new>")
    for _, err in spec.validate(items):
        if err is not None:
            return err.problem
    return None
