"""``matgrad new``: a commented identity file to start from. It validates and checks as
written, so a new user edits something that works. No torch."""

from __future__ import annotations

import keyword
import string
import textwrap

import yaml

from matgrad.claims import DEFAULT, KINDS
from matgrad.errors import MatgradError
from matgrad.lang.domains import DEFAULT as DEFAULT_DOMAIN
from matgrad.lang.domains import DOMAINS
from matgrad.spec import schema as spec


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
# Format: docs/format.md; functions: `matgrad functions`.
id: $id
title: "$title"  # one line, shown by `matgrad list` and in reports
# source: "Matrix Cookbook (2012) eq. ..."  # where the identity comes from
# latex: '$latex'
dims: {$dim: 3}  # named sizes, usable as integers in expressions
"""
    + _vars_comment()
)

_TAIL = """\
# expect: fail  # keep a known-wrong identity as a negative example
# tol: {rtol: 1.0e-6, atol: 0.0}  # per-identity tolerances (float64 defaults shown)
# trials: 100  # random draws of the variables (the default; a third each at scale 1, 0.1, 10)
"""

def template(
    ident_id: str, kind: str = DEFAULT.name, var: str | None = None, file: str | None = None
) -> str:
    """The text of a new identity file for ``kind`` of claim on variable ``var``.

    Raises :class:`MatgradError` when the id or the variable name cannot be used; the text
    returned always passes ``matgrad validate``.
    """
    if kind not in KINDS:
        raise MatgradError(f"unknown claim kind {kind!r}; use one of {', '.join(KINDS)}")
    claim = KINDS[kind]
    if not spec.ID_RE.fullmatch(ident_id):
        raise MatgradError(
            f"id {ident_id!r} must match [a-z0-9][a-z0-9._-]* (lowercase, no spaces)"
        )
    var = var or claim.template_var
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
    title, latex = (
        string.Template(t).substitute(values) for t in (claim.template_title, claim.template_latex)
    )
    values |= {"title": title, "latex": latex}
    text = "".join(
        string.Template(part).substitute(values) for part in (_HEAD, claim.template_body, _TAIL)
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
