"""Identity files -> immutable :class:`Identity` objects, with every error located.

Reading is in two layers: :func:`load_file` turns a file into identities (format errors are
reported per identity, so one broken identity does not hide its neighbours), and
:func:`compile_identity` parses and type-checks every expression of one identity. Neither
imports torch.
"""

from __future__ import annotations

import dataclasses
import keyword
import math
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from matgrad.claims import KINDS, kind_of
from matgrad.claims.grad import COMPLEX_CONVENTIONS, CONVENTIONS, DEFAULT_COMPLEX
from matgrad.errors import ExprError, LimitError, SpecError, closest, did_you_mean
from matgrad.lang import overlay
from matgrad.lang.domains import DEFAULT as DEFAULT_DOMAIN
from matgrad.lang.domains import DOMAINS, has_direction
from matgrad.lang.expr import Bound, Scope, bind, check_size, parse
from matgrad.lang.functions import (
    Shape,
    fmt_shape,
    numel,
)
from matgrad.lang.structure import is_symmetric
from matgrad.lang.user import UserFunction
from matgrad.lang.user import used as functions_called
from matgrad.limits import DEFAULT_LIMITS, Limits
from matgrad.spec import budget, yamlsafe
from matgrad.spec.yamlsafe import YMap, YNode, YScalar, YSeq

CLAIM_KINDS = tuple(KINDS)  # the YAML keys of the claims, from the registry
DIRECTIONS = ("free", "tangent")
WITNESSES = ("autograd", "fd", "taylor")
IDENTITY_KEYS = (
    "id",
    "title",
    "source",
    "latex",
    "notes",
    "dims",
    "vars",
    "let",
    "f",
    *CLAIM_KINDS,
    "expect",
    "tol",
    "trials",
    "convention",
    "directions",
    "witness",
)
VAR_KEYS = ("shape", "domain", "rank")
TOL_KEYS = ("rtol", "atol")
ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")  # whole text: use fullmatch
YAML_SUFFIXES = (".yaml", ".yml")
DEFAULT_TRIALS = 100  # random draws per identity unless the file or --trials says otherwise
CLAIMED_BY_AUTOGRAD = "autograd"  # the expression text of a claim whose value autograd gives


@dataclasses.dataclass(frozen=True)
class Var:
    name: str
    shape: Shape
    domain: str
    line: int
    rank: int | None = None  # ``rank: k`` of a ranked domain (matgrad.lang.domains)


@dataclasses.dataclass(frozen=True)
class Claim:
    kind: str  # a name in matgrad.claims.KINDS
    var: str
    text: str
    line: int
    col: int
    # the second variable of a claim about two (a mixed hessian, key "x, y"); None: one
    var2: str | None = None

    @property
    def vars(self) -> tuple[str, ...]:
        """The variables the claim is about: ``(var,)``, or ``(var, var2)``."""
        return (self.var,) if self.var2 is None else (self.var, self.var2)

    @property
    def subject(self) -> str:
        """The claim's key as written in the file, normalised: ``X`` or ``x, y``."""
        return ", ".join(self.vars)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.subject}"


@dataclasses.dataclass(frozen=True)
class Tolerance:
    rtol: float | None = None
    atol: float | None = None


@dataclasses.dataclass(frozen=True)
class Identity:
    id: str
    path: str
    line: int
    f: str
    f_line: int
    dims: dict[str, int]
    vars: dict[str, Var]
    claims: tuple[Claim, ...]
    lets: tuple[tuple[str, str, int], ...] = ()
    title: str | None = None
    source: str | None = None
    latex: str | None = None
    notes: str | None = None
    expect: str = "pass"
    tol: Tolerance = Tolerance()
    trials: int | None = None
    convention: str = "entrywise"
    directions: str = "free"
    witness: tuple[str, ...] | None = None  # None: autograd only, unless a run flag adds more


@dataclasses.dataclass(frozen=True)
class Invalid:
    """An identity (or a whole file) that could not be read; ``error`` says why."""

    path: str
    line: int | None
    id: str | None
    error: SpecError


@dataclasses.dataclass(frozen=True)
class Compiled:
    """An identity with every expression parsed and bound (shapes known)."""

    identity: Identity
    lets: tuple[tuple[str, Bound], ...]
    f: Bound
    claims: tuple[tuple[Claim, Bound], ...]
    # lets that use a variable's direction, by variable: evaluated with its differential claims
    direction_lets: dict[str, tuple[tuple[str, Bound], ...]] = dataclasses.field(
        default_factory=dict
    )
    # the cost measured while compiling, for the paths that evaluate f again
    estimate: budget.Estimate = dataclasses.field(default_factory=lambda: budget.Estimate(0, 0, 0))
    # the user functions that f and the lets call (see matgrad.lang.user)
    user_functions: tuple[UserFunction, ...] = ()

    @property
    def own_backward(self) -> bool:
        """Whether autograd's derivatives of f come (in part) from a user's own backward."""
        return any(fn.own_backward for fn in self.user_functions)


# ---- finding files ----------------------------------------------------------------------


def discover(paths: list[str]) -> Iterator[str]:
    """Files to read: each given file, and every *.yaml/*.yml below each given folder."""
    for _, path in _discover(paths):
        yield path


def _discover(paths: list[str]) -> Iterator[tuple[Path | None, str]]:
    """Like :func:`discover`, with the folder each file was found in (None: named itself)."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(
                q for q in path.rglob("*") if q.suffix in YAML_SUFFIXES and q.is_file()
            )
            for q in found:
                if not any(part.startswith(".") for part in q.relative_to(path).parts):
                    yield path, str(q)
        else:
            yield None, str(path)


def _outside(path: str, folder: Path) -> bool:
    """Does ``path``, found in ``folder``, lead out of it (through a symbolic link)?"""
    try:
        return not Path(path).resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a broken or looping link
        return True


# ---- reading one file -------------------------------------------------------------------


def load_file(path: str, limits: Limits = DEFAULT_LIMITS) -> list[Identity | Invalid]:
    """Read one identity file. Errors become :class:`Invalid` entries, never exceptions."""
    try:
        st = Path(path).stat()
        if not stat.S_ISREG(st.st_mode):
            # A pipe or a device (/dev/zero, a FIFO) could block or never end.
            return [Invalid(path, None, None, SpecError("not a regular file", path=path))]
        size = st.st_size
        if size > limits.max_file_bytes:
            raise limits.refuse("max_file_bytes", size, "the file size")
        with open(path, "rb") as fh:
            data = fh.read(limits.max_file_bytes + 1)
        if len(data) > limits.max_file_bytes:  # it grew after stat()
            raise limits.refuse("max_file_bytes", f"more than {len(data) - 1}", "the file size")
        text = data.decode("utf-8")
    except LimitError as e:
        return [Invalid(path, None, None, SpecError(str(e), path=path))]
    except UnicodeDecodeError as e:
        return [Invalid(path, None, None, SpecError(f"not UTF-8 text ({e.reason})", path=path))]
    except OSError as e:
        why = e.strerror or str(e)
        return [Invalid(path, None, None, SpecError(f"cannot read the file: {why}", path=path))]
    return load_text(text, path, limits)


def load_text(text: str, path: str, limits: Limits = DEFAULT_LIMITS) -> list[Identity | Invalid]:
    """Read identities from YAML text (``path`` is used in messages)."""
    try:
        root = yamlsafe.load(text, path, limits)
    except SpecError as e:
        return [Invalid(path, e.line, None, e)]
    if root is None:
        return [Invalid(path, 1, None, SpecError("the file is empty", path=path, line=1))]
    if not isinstance(root, YMap):
        err = SpecError(
            f"expected a mapping (one identity) or an `identities:` list, got "
            f"{yamlsafe.KIND[type(root)]}",
            path=path,
            line=root.line,
            col=root.col,
        )
        return [Invalid(path, root.line, None, err)]
    if "identities" in root.items:
        extra = [k for k in root.items if k != "identities"]
        if extra:
            line, col = root.keys[extra[0]]
            err = SpecError(
                f"unknown top-level key {extra[0]!r} next to `identities:`; put it inside an "
                f"identity",
                path=path,
                line=line,
                col=col,
            )
            return [Invalid(path, line, None, err)]
        seq = root.items["identities"]
        if not isinstance(seq, YSeq) or not seq.items:
            err = SpecError(
                "`identities` must be a non-empty list of identities",
                path=path,
                line=seq.line,
                col=seq.col,
                key="identities",
            )
            return [Invalid(path, seq.line, None, err)]
        if len(seq.items) > limits.max_identities_per_file:
            refused = limits.refuse(
                "max_identities_per_file", len(seq.items), "the number of identities"
            )
            err = SpecError(str(refused), path=path, line=seq.line)
            return [Invalid(path, seq.line, None, err)]
        nodes = [(item, f"identities[{i}].") for i, item in enumerate(seq.items)]
    else:
        nodes = [(root, "")]
    out: list[Identity | Invalid] = []
    for node, prefix in nodes:
        ident_id = _peek_id(node)
        try:
            out.append(_identity(node, path, prefix, limits))
        except SpecError as e:
            if ident_id is not None and e.key and e.key.startswith(prefix):
                e = SpecError(e.problem, line=e.line, col=e.col, key=e.key[len(prefix) :] or None)
            located = e.located(path=path, identity=ident_id)
            out.append(Invalid(path, node.line, ident_id, located))
    return out


def _peek_id(node: YNode) -> str | None:
    if isinstance(node, YMap):
        v = node.items.get("id")
        if isinstance(v, YScalar) and isinstance(v.value, str):
            return v.value
    return None


class _Fields:
    """Typed access to one mapping's fields, each error pointing at its key."""

    def __init__(self, node: YMap, keypath: str) -> None:
        self.node = node
        self.keypath = keypath

    def err(self, key: str | None, problem: str, at: YNode | None = None) -> SpecError:
        full = self.keypath + key if key is not None else self.keypath.rstrip(".") or None
        if at is not None:
            line, col = at.line, at.col
        elif key is not None and key in self.node.keys:
            line, col = self.node.keys[key]
        else:
            line, col = self.node.line, self.node.col
        return SpecError(problem, line=line, col=col, key=full)

    def check_keys(self, allowed: tuple[str, ...], what: str) -> None:
        for key in self.node.items:
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                raise self.err(
                    key,
                    f"unknown key {key!r} in {what}{hint}; known keys: {', '.join(allowed)}"
                    f"{_flow_hint(key)}",
                )

    def get(self, key: str) -> YNode | None:
        return self.node.items.get(key)

    def text(self, key: str, required: bool = False) -> str | None:
        v = self.get(key)
        if v is None:
            if required:
                raise self.err(None, f"missing required key {key!r}")
            return None
        if not isinstance(v, YScalar) or v.tag == "null":
            raise self.err(key, f"{key} must be text, got {_kind(v)}; quote it", v)
        return v.raw

    def number(self, key: str, node: YNode | None = None) -> float:
        v = node if node is not None else self.get(key)
        if isinstance(v, YScalar) and v.tag in ("int", "float", "str"):
            try:
                x = float(v.raw)
            except ValueError:
                pass
            else:
                if not math.isfinite(x) or x < 0:
                    raise self.err(key, f"{key} must be a finite number >= 0, got {v.raw}", v)
                return x
        raise self.err(key, f"{key} must be a number such as 1.0e-6, got {_show(v)}", v)


def _kind(v: YNode) -> str:
    if isinstance(v, YScalar):
        return {"bool": "a boolean", "null": "nothing (null)", "int": "a number"}.get(
            v.tag, f"{v.tag} {v.raw!r}"
        )
    return yamlsafe.KIND[type(v)]


def _show(v: YNode | None) -> str:
    if isinstance(v, YScalar):
        return repr(v.raw) if v.tag == "str" else v.raw or "nothing"
    return "nothing" if v is None else yamlsafe.KIND[type(v)]


def _expr_text(fields: _Fields, key: str, v: YNode) -> str:
    if isinstance(v, YScalar) and v.tag in ("str", "int", "float"):
        if not v.raw.strip():
            raise fields.err(key, "the expression is empty", v)
        return v.raw
    why = _kind(v)
    if isinstance(v, YScalar) and v.tag == "bool":
        why = f"the boolean {v.raw!r}"
    raise fields.err(
        key,
        f"expected an expression, but YAML read {why}; put the expression in quotes "
        f"(e.g. \"- x\" or \"*\" at the start, ' #' or ': ' inside)",
        v,
    )


def _flow_hint(key: str) -> str:
    if any(ch in key for ch in "()[]*+-/@ "):
        return (
            "; this looks like a piece of an expression: inside {...} a comma starts a new "
            "entry, so quote expressions that contain commas, e.g. {X: \"ones(m, n)\"}"
        )
    return ""


def _check_name(fields: _Fields, key: str, name: str, what: str, taken: dict[str, str]) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise fields.err(
            key, f"{what} name {name!r} is not a valid name (letters, digits, _){_flow_hint(name)}"
        )
    if name in overlay.known():
        raise fields.err(key, f"{what} name {name!r} shadows the function {name}(); rename it")
    if name in taken:
        raise fields.err(key, f"{what} name {name!r} is already used as {taken[name]}")


def _identity(node: YNode, path: str, prefix: str, limits: Limits) -> Identity:
    if not isinstance(node, YMap):
        raise SpecError(
            f"an identity must be a mapping, got {yamlsafe.KIND[type(node)]}",
            line=node.line,
            col=node.col,
            key=prefix.rstrip(".") or None,
        )
    fs = _Fields(node, prefix)
    fs.check_keys(IDENTITY_KEYS, "an identity")
    ident = fs.text("id", required=True)
    assert ident is not None
    if not ID_RE.fullmatch(ident):
        raise fs.err("id", f"id {ident!r} must match [a-z0-9][a-z0-9._-]* (lowercase, no spaces)")

    taken: dict[str, str] = {}
    dims = _dims(fs, limits, taken)
    vars_ = _vars(fs, dims, taken, limits)
    for v in vars_:
        d = "d" + v
        if d in taken:
            raise fs.err("vars", f"name {d!r} clashes with the direction of variable {v!r}")
        taken[d] = f"the direction of {v}"
    lets = _lets(fs, taken, limits)
    f_node = fs.get("f")
    if f_node is None:
        raise fs.err(None, "missing required key 'f' (the expression to differentiate)")
    f_text = _expr_text(fs, "f", f_node)

    claims: list[Claim] = []
    for kind in CLAIM_KINDS:
        c = fs.get(kind)
        if c is None:
            continue
        if KINDS[kind].claimed_by_autograd:
            claims += _listed_claims(fs, kind, c, vars_)
            continue
        if not isinstance(c, YMap) or not c.items:
            raise fs.err(kind, f"{kind} must map variable names to expressions, e.g. {{X: ...}}", c)
        cf = _Fields(c, prefix + kind + ".")
        seen: dict[tuple[str, str | None], str] = {}
        for key, expr_node in c.items.items():
            var, var2 = _claim_key(cf, kind, key, expr_node, vars_)
            if (var, var2) in seen:
                raise cf.err(
                    key,
                    f"{kind} claims {', '.join(dict.fromkeys((var, var2 or var)))!r} twice "
                    f"(keys {seen[var, var2]!r} and {key!r}); keep one",
                )
            seen[var, var2] = key
            text = _expr_text(cf, key, expr_node)
            claims.append(Claim(kind, var, text, expr_node.line, expr_node.col, var2))
    if not claims:
        with_expr = [k + ":" for k in CLAIM_KINDS if not KINDS[k].claimed_by_autograd]
        listed = [k + ": [VAR]" for k in CLAIM_KINDS if KINDS[k].claimed_by_autograd]
        raise fs.err(
            None,
            f"no claim: add at least one of {', '.join(with_expr)} (VAR: EXPR)"
            + "".join(f" or {k}" for k in listed),
        )

    expect = fs.text("expect") or "pass"
    if expect not in ("pass", "fail"):
        raise fs.err("expect", f"expect must be pass or fail, got {expect!r}")
    complex_vars = [v for v in vars_.values() if DOMAINS[v.domain].complex]
    convention = fs.text("convention") or (DEFAULT_COMPLEX if complex_vars else "entrywise")
    if convention not in (*CONVENTIONS, *COMPLEX_CONVENTIONS):
        raise fs.err(
            "convention",
            f"convention must be one of {', '.join(CONVENTIONS)} (symmetric variables) or "
            f"{', '.join(COMPLEX_CONVENTIONS)} (complex variables), got {convention!r}",
        )
    if convention in COMPLEX_CONVENTIONS and not complex_vars:
        raise fs.err(
            "convention",
            f"convention {convention} is a gradient convention for complex variables, and this "
            f"identity has none (give a variable a complex domain, e.g. domain: complex, or use "
            f"{', '.join(CONVENTIONS)} for symmetric variables)",
        )
    directions = fs.text("directions") or "free"
    if directions not in DIRECTIONS:
        raise fs.err(
            "directions", f"directions must be one of {', '.join(DIRECTIONS)}, got {directions!r}"
        )
    if directions == "tangent":
        _refuse_tangent_without_directions(fs, claims)
    return Identity(
        id=ident,
        path=path,
        line=node.line,
        f=f_text,
        f_line=f_node.line,
        dims=dims,
        vars=vars_,
        claims=tuple(claims),
        lets=lets,
        title=fs.text("title"),
        source=fs.text("source"),
        latex=fs.text("latex"),
        notes=fs.text("notes"),
        expect=expect,
        tol=_tol(fs, limits),
        trials=_trials(fs, limits),
        convention=convention,
        directions=directions,
        witness=_witness(fs),
    )


def _refuse_tangent_without_directions(fs: _Fields, claims: list[Claim]) -> None:
    """``directions: tangent`` shapes the directions dVAR, which only the kinds that use a
    direction draw (differential claims). Any other claim (a gradient, a Hessian, a Jacobian) is
    about every entry of its variable: tangent directions would be ignored for it, silently."""
    for claim in claims:
        if not KINDS[claim.kind].uses_direction:
            users = [k for k, kind in KINDS.items() if kind.uses_direction]
            raise fs.err(
                "directions",
                f"directions: tangent shapes only the directions of {' and '.join(users)} "
                f"claims, but the {claim.label} claim (line {claim.line}) has no direction: a "
                f"{KINDS[claim.kind].noun} is about every entry of {claim.var}, and tangent "
                f"directions would be ignored for it. Remove directions: tangent, or write the "
                f"claim as a {' or '.join(users)} claim along d{claim.var} (in an identity of "
                f"its own if the others need free directions)",
            )


def _claim_key(
    cf: _Fields, kind: str, key: str, node: YNode, vars_: dict[str, Var]
) -> tuple[str, str | None]:
    """The variable (or the two, for a key ``"x, y"``) that a claim's key names."""
    names = [n.strip() for n in key.split(",")] if "," in key else [key]
    if len(names) > 2:
        raise cf.err(
            key,
            f"{kind} claim key {key!r} names {len(names)} variables; a key names one variable, "
            f"or two for mixed second derivatives, e.g. \"x, y\"",
        )
    if len(names) == 2 and "" in names:
        raise cf.err(
            key,
            f"{kind} claim key {key!r} has an empty name beside its comma; a key names one "
            f"variable, or two for mixed second derivatives, e.g. \"x, y\"",
        )
    for name in names:
        if name not in vars_:
            hint = did_you_mean(name, vars_)
            raise cf.err(
                key,
                f"{kind} claim for {name!r}, which is not declared in vars{hint}"
                f"{_flow_hint(key) if len(names) == 1 else ''}",
            )
    if len(names) == 1 or names[0] == names[1]:
        if isinstance(node, YScalar) and node.tag == "null" and len(cf.node.items) > 1:
            # {x, y: EXPR} in a flow mapping is two keys, x (empty) and y
            raise cf.err(
                key,
                f"{kind} claim for {key!r} has no expression; inside {{...}} a comma starts a new "
                f"entry: quote a key that names two variables, e.g. {{\"x, y\": ...}}",
                node,
            )
        return names[0], None
    first, second = names
    paired = KINDS[kind].paired(second, vars_[second].shape)
    if paired is None:
        takes = [k for k, obj in KINDS.items() if obj.paired(second, ()) is not None]
        raise cf.err(
            key,
            f"a {kind} claim is about one variable, and {key!r} names two; only "
            f"{' and '.join(takes)} claims take two (mixed second derivatives)",
        )
    for name in names:
        domain = DOMAINS[vars_[name].domain]
        refusal = KINDS[kind].complex_problem(name, domain.name) if domain.complex else None
        if refusal is not None:
            raise cf.err(key, refusal)
        if not has_direction(domain.name):
            raise cf.err(
                key,
                f"{name} cannot move (domain {domain.name}: its tangent direction is zero), so "
                f"f has no second derivatives with respect to it; claim them for variables "
                f"with a continuous domain",
            )
    return first, second


def _listed_claims(fs: _Fields, kind: str, node: YNode, vars_: dict[str, Var]) -> list[Claim]:
    """The claims of a kind written as a list of variables (no expression): ``[X, Y]``."""
    items = node.items if isinstance(node, YSeq) else (node,)
    out: list[Claim] = []
    for item in items:
        var = item.raw if isinstance(item, YScalar) and item.tag == "str" else None
        if var is None or var not in vars_:
            what = f"{var!r}, which is not declared in vars{did_you_mean(var, vars_)}" if var else (
                _show(item)
            )
            raise fs.err(kind, f"{kind} must list declared variables, e.g. [X]; got {what}", item)
        if any(c.var == var for c in out):
            raise fs.err(kind, f"{kind} lists {var!r} twice", item)
        out.append(Claim(kind, var, CLAIMED_BY_AUTOGRAD, item.line, item.col))
    if not out:
        raise fs.err(kind, f"{kind} must list declared variables, e.g. [X]", node)
    return out


def _witness(fs: _Fields) -> tuple[str, ...] | None:
    node = fs.get("witness")
    if node is None:
        return None
    items = node.items if isinstance(node, YSeq) else [node]
    names: list[str] = []
    for item in items:
        name = item.raw if isinstance(item, YScalar) and item.tag == "str" else None
        if name not in WITNESSES:
            hint = did_you_mean(str(name), WITNESSES) if name else ""
            raise fs.err(
                "witness",
                f"witness must be a list of {', '.join(WITNESSES)}, got {_show(item)}{hint}",
                item,
            )
        if name in names:
            raise fs.err("witness", f"witness {name!r} is listed twice", item)
        names.append(name)
    if not names:
        raise fs.err("witness", f"witness must name at least one of {', '.join(WITNESSES)}", node)
    return tuple(names)


def _int_value(v: YNode | None) -> int | None:
    if isinstance(v, YScalar) and v.tag == "int" and isinstance(v.value, int):
        return v.value
    return None


def _dims(fs: _Fields, limits: Limits, taken: dict[str, str]) -> dict[str, int]:
    node = fs.get("dims")
    if node is None:
        return {}
    if not isinstance(node, YMap):
        raise fs.err("dims", f"dims must be a mapping like {{n: 5}}, got {_kind(node)}", node)
    df = _Fields(node, fs.keypath + "dims.")
    dims: dict[str, int] = {}
    for name, v in node.items.items():
        _check_name(df, name, name, "dim", taken)
        n = _int_value(v)
        if n is None or n < 1:
            raise df.err(name, f"dim {name} must be a positive integer, got {_show(v)}", v)
        if n > limits.max_dim:
            raise df.err(name, str(limits.refuse("max_dim", n, f"dim {name}")), v)
        dims[name] = n
        taken[name] = "a dim"
    return dims


def _vars(
    fs: _Fields, dims: dict[str, int], taken: dict[str, str], limits: Limits
) -> dict[str, Var]:
    node = fs.get("vars")
    if node is None:
        raise fs.err(None, "missing required key 'vars' (the variables and their shapes)")
    if not isinstance(node, YMap) or not node.items:
        raise fs.err("vars", "vars must map names to {shape: [...], domain: ...}", node)
    vf = _Fields(node, fs.keypath + "vars.")
    out: dict[str, Var] = {}
    for name, v in node.items.items():
        _check_name(vf, name, name, "variable", taken)
        if isinstance(v, YSeq):  # shorthand: X: [n, n]
            shape_node: YNode = v
            domain = DEFAULT_DOMAIN
            keypath = name
        elif isinstance(v, YMap):
            one = _Fields(v, vf.keypath + name + ".")
            one.check_keys(VAR_KEYS, f"variable {name}")
            given = v.items.get("shape")
            if given is None:
                raise one.err(None, "missing required key 'shape', e.g. shape: [n, n]")
            shape_node = given
            domain = one.text("domain") or DEFAULT_DOMAIN
            if domain not in DOMAINS:
                hint = did_you_mean(domain, DOMAINS)
                raise one.err(
                    "domain",
                    f"unknown domain {domain!r}{hint}; known: {', '.join(DOMAINS)}",
                )
            keypath = name + ".shape"
        else:
            raise vf.err(name, f"variable {name} must be a mapping like {{shape: [n, n]}}", v)
        shape = _shape(vf, keypath, shape_node, dims, limits)
        dom = DOMAINS[domain]
        if not dom.fits(shape):
            raise vf.err(
                name,
                f"domain {domain} needs a {dom.shapes} shape, but {name} has shape "
                f"{fmt_shape(shape)}",
            )
        rank = _rank(vf, name, v, domain, shape, dims)
        out[name] = Var(name, shape, domain, v.line, rank)
        taken[name] = "a variable"
    return out


def _rank(
    vf: _Fields, name: str, v: YNode, domain: str, shape: Shape, dims: dict[str, int]
) -> int | None:
    """A variable's ``rank: k`` (an integer or a dim): only for a ranked domain, 1 <= k <=
    min(m, n); None when not given."""
    node = v.items.get("rank") if isinstance(v, YMap) else None
    if node is None:
        return None
    key = name + ".rank"
    if not DOMAINS[domain].ranked:
        ranked = ", ".join(d for d, dom in DOMAINS.items() if dom.ranked)
        raise vf.err(
            key, f"rank: applies to domain {ranked} only; {name} has domain {domain}", node
        )
    k = _int_value(node)
    if k is None and isinstance(node, YScalar) and node.raw in dims:
        k = dims[node.raw]
    if k is None:
        raise vf.err(key, f"rank must be an integer or a dim, got {_show(node)}", node)
    top = min(shape)
    if not 1 <= k <= top:
        raise vf.err(
            key,
            f"rank must be between 1 and min(m, n) = {top} for {name} of shape "
            f"{fmt_shape(shape)}, got {k}",
            node,
        )
    return k


def _shape(
    vf: _Fields, key: str, node: YNode, dims: dict[str, int], limits: Limits = DEFAULT_LIMITS
) -> Shape:
    if not isinstance(node, YSeq):
        raise vf.err(
            key, f"shape must be a list of dims or integers like [n, 3], got {_show(node)}"
        )
    if len(node.items) > limits.max_rank:
        raise vf.err(
            key, str(limits.refuse("max_rank", len(node.items), "the number of axes")), node
        )
    out: list[int] = []
    for item in node.items:
        if isinstance(item, YScalar) and item.tag == "str":
            if item.value not in dims:
                known = ", ".join(dims) or "none declared"
                close = closest(item.value, dims)
                hint = f"; did you mean {close!r}?" if close else ""
                raise vf.err(key, f"unknown dim {item.value!r} (known: {known}){hint}", item)
            out.append(dims[item.value])
            continue
        n = _int_value(item)
        if n is None or n < 1:
            raise vf.err(
                key,
                f"shape entries must be dim names or positive integers, got {_show(item)}",
                item,
            )
        if n > limits.max_dim:
            raise vf.err(key, str(limits.refuse("max_dim", n, "a size")), item)
        out.append(n)
    return tuple(out)


def _lets(fs: _Fields, taken: dict[str, str], limits: Limits) -> tuple[tuple[str, str, int], ...]:
    node = fs.get("let")
    if node is None:
        return ()
    if not isinstance(node, YMap):
        raise fs.err("let", "let must map names to expressions", node)
    if len(node.items) > limits.max_lets:
        raise fs.err("let", str(limits.refuse("max_lets", len(node.items), "the number of lets")))
    lf = _Fields(node, fs.keypath + "let.")
    out = []
    for name, v in node.items.items():
        _check_name(lf, name, name, "let", taken)
        out.append((name, _expr_text(lf, name, v), v.line))
        taken[name] = "a let name"
    return tuple(out)


def _tol(fs: _Fields, limits: Limits) -> Tolerance:
    node = fs.get("tol")
    if node is None:
        return Tolerance()
    if not isinstance(node, YMap):
        raise fs.err("tol", "tol must be a mapping like {rtol: 1.0e-6, atol: 1.0e-9}", node)
    tf = _Fields(node, fs.keypath + "tol.")
    tf.check_keys(TOL_KEYS, "tol")
    values: dict[str, float | None] = {}
    for key in TOL_KEYS:
        value = tf.number(key) if key in node.items else None
        if value is not None and value > limits.max_tol:
            problem = limits.refuse("max_tol", f"{value:g}", f"tol.{key}")
            raise tf.err(key, str(problem), node.items[key])
        values[key] = value
    return Tolerance(values["rtol"], values["atol"])


def _trials(fs: _Fields, limits: Limits) -> int | None:
    node = fs.get("trials")
    if node is None:
        return None
    n = _int_value(node)
    if n is None or n < 1:
        raise fs.err("trials", f"trials must be a positive integer, got {_show(node)}", node)
    if n > limits.max_trials:
        raise fs.err("trials", str(limits.refuse("max_trials", n, "trials")), node)
    return n


# ---- expressions of one identity ----------------------------------------------------------


def compile_identity(ident: Identity, trials: int, limits: Limits = DEFAULT_LIMITS) -> Compiled:
    """Parse and bind every expression of ``ident``; raise a located :class:`SpecError`."""
    shapes: dict[str, Shape] = {v.name: v.shape for v in ident.vars.values()}
    hidden = {
        "d" + v: "is a direction: it can only be used in a differential claim"
        for v in ident.vars
    }

    def located(err: Exception | str, key: str, line: int) -> SpecError:
        return SpecError(str(err), path=ident.path, line=line, identity=ident.id, key=key)

    try:
        budget.check_variables(shapes.values(), trials, limits)
    except LimitError as e:
        first = next(iter(ident.vars.values()))
        raise located(e, "vars", first.line) from None

    def compile_one(text: str, scope: Scope, key: str, line: int) -> Bound:
        try:
            bound = bind(parse(text, limits), scope, limits)
            check_size(bound, trials, limits, f"the expression {text!r}")
        except (ExprError, LimitError) as e:
            raise located(e, key, line) from None
        return bound

    # A let may use one variable's direction dV; it is then usable only in differential
    # claims for V, and is evaluated with them.
    directions = {"d" + v: v for v in ident.vars}
    lets: list[tuple[str, Bound]] = []
    direction_lets: dict[str, list[tuple[str, Bound]]] = {}
    let_direction: dict[str, str] = {}  # let name -> the variable whose direction it uses
    symmetric = {
        v.name
        for v in ident.vars.values()
        if DOMAINS[v.domain].hermitian
    }
    for name, text, line in ident.lets:
        let_shapes = {**shapes, **{d: ident.vars[v].shape for d, v in directions.items()}}
        let_scope = Scope(let_shapes, ident.dims, symmetric=frozenset(symmetric))
        b = compile_one(text, let_scope, f"let.{name}", line)
        if is_symmetric(b, frozenset(symmetric)):
            symmetric.add(name)
        names = parse(text, limits).names
        used = {directions[n] for n in names if n in directions}
        used |= {let_direction[n] for n in names if n in let_direction}
        if len(used) > 1:
            raise located(
                f"let {name!r} uses the directions of {', '.join(sorted(used))}; a let may use "
                f"the direction of one variable only",
                f"let.{name}",
                line,
            )
        if used:
            (var_name,) = used
            let_direction[name] = var_name
            direction_lets.setdefault(var_name, []).append((name, b))
        else:
            lets.append((name, b))
        shapes[name] = b.shape
    for name, v in let_direction.items():
        hidden[name] = f"uses d{v}: it can only be used in a differential claim for {v}"
    let_shapes = shapes
    shapes = {k: v for k, v in shapes.items() if k not in let_direction}
    scope = Scope(shapes, ident.dims, hidden=hidden, symmetric=frozenset(symmetric))
    f = compile_one(ident.f, scope, "f", ident.f_line)
    all_let_bounds = [*lets, *(x for ls in direction_lets.values() for x in ls)]
    nodes = [f.node, *(b.node for _, b in all_let_bounds)]
    user_functions = tuple(functions_called(nodes, overlay.lookup))
    claims: list[tuple[Claim, Bound]] = []
    for claim in (*ident.claims, *_implicit_claims(ident, f, user_functions, limits)):
        key = f"{claim.kind}.{claim.subject}"
        var = ident.vars[claim.var]
        problem = kind_of(claim, ident).shape_problem(var.name, var.shape, f.shape)
        if problem is not None:
            message, where = problem
            raise located(message, where, claim.line)
        if DOMAINS[var.domain].complex:
            refusal = KINDS[claim.kind].complex_problem(var.name, var.domain)
            if refusal is not None:
                raise located(refusal, key, claim.line)
        if KINDS[claim.kind].uses_direction:
            d = "d" + claim.var
            own = {k: let_shapes[k] for k, v in let_direction.items() if v == claim.var}
            cscope = Scope(
                {**shapes, **own, d: var.shape},
                ident.dims,
                symmetric=frozenset(symmetric),
                hidden={
                    k: v
                    for k, v in hidden.items()
                    if k != d and let_direction.get(k) != claim.var
                }
                | {
                    "d" + o: f"is the direction of {o}; this claim perturbs {claim.var} only"
                    for o in ident.vars
                    if o != claim.var
                },
            )
        else:
            cscope = scope
        if KINDS[claim.kind].claimed_by_autograd:
            claims.append((claim, f))  # its value is autograd's derivative of f itself
            continue
        claims.append((claim, compile_one(claim.text, cscope, key, claim.line)))
    all_lets = [*lets, *(x for ls in direction_lets.values() for x in ls)]
    let_costs = [budget.expr_cost(b) for _, b in all_lets]
    f_cost = budget.expr_cost(f)
    claim_costs = [budget.expr_cost(b) for _, b in claims]
    per_trial = (
        budget.variables_elements(v.shape for v in ident.vars.values())
        + sum(c.elements for c in [*let_costs, f_cost, *claim_costs])
        + sum(
            budget.truth_elements(kind_of(c, ident), ident.vars[c.var].shape, f.shape)
            for c, _ in claims
        )
    )
    work = budget.identity_work(
        ((v.shape, v.domain) for v in ident.vars.values()),
        let_costs,
        f_cost,
        (
            (kind_of(c, ident), ident.vars[c.var].shape, cost)
            for (c, _), cost in zip(claims, claim_costs, strict=True)
        ),
        trials,
        f.shape,
    )
    f_work = sum(c.work for c in let_costs) + f_cost.work
    bounds = [f, *(b for _, b in all_lets), *(b for _, b in claims)]
    guard = budget.guard_work(bounds, f_work, trials)
    try:
        budget.check_total(per_trial, trials, limits)
        budget.check_work(work + guard, limits)
    except LimitError as e:
        raise SpecError(str(e), path=ident.path, line=ident.line, identity=ident.id) from None
    return Compiled(
        ident,
        tuple(lets),
        f,
        tuple(claims),
        {v: tuple(ls) for v, ls in direction_lets.items()},
        budget.Estimate(
            f_work=f_work,
            f_calls=sum(c.calls for c in let_costs) + f_cost.calls,
            total=work,
            guard=guard,
        ),
        user_functions,
    )


def _implicit_claims(
    ident: Identity, f: Bound, user_functions: tuple[UserFunction, ...], limits: Limits
) -> list[Claim]:
    """With a user function that has its own backward, autograd is the implementation
    under test: one claim of the autograd-claimed kind for every variable that f reads (through
    the lets too), unless the file lists it already. None when f is not a scalar."""
    if not any(fn.own_backward for fn in user_functions) or numel(f.shape) != 1:
        return []
    kind = next(k for k in KINDS.values() if k.claimed_by_autograd)
    listed = {c.var for c in ident.claims if c.kind == kind.name}
    read = set(parse(ident.f, limits).names)
    for name, text, _ in reversed(ident.lets):
        if name in read:
            read |= parse(text, limits).names
    return [
        Claim(kind.name, v, CLAIMED_BY_AUTOGRAD, ident.f_line, 1)
        for v in ident.vars
        if v in read and v not in listed
    ]


def load_all(paths: list[str], limits: Limits = DEFAULT_LIMITS) -> list[Identity | Invalid]:
    """Read every file under ``paths``; a repeated id is an :class:`Invalid` for the repeat."""
    out: list[Identity | Invalid] = []
    seen: dict[str, Identity] = {}
    for folder, path in _discover(paths):
        if folder is not None and _outside(path, folder):
            # A file of a pull request must not make matgrad read what lies outside the tree.
            err = SpecError(
                f"a symbolic link that leads outside {str(folder)!r}: not read (name the file "
                f"itself to check it)",
                path=path,
            )
            out.append(Invalid(path, None, None, err))
            continue
        for item in load_file(path, limits):
            if isinstance(item, Identity):
                first = seen.get(item.id)
                if first is not None:
                    item = Invalid(
                        item.path,
                        item.line,
                        item.id,
                        SpecError(
                            f"duplicate id {item.id!r} (first defined at "
                            f"{first.path}:{first.line}); ids must be unique",
                            path=item.path,
                            line=item.line,
                            identity=item.id,
                            key="id",
                        ),
                    )
                else:
                    seen[item.id] = item
            out.append(item)
    return out


def validate(
    items: list[Identity | Invalid], limits: Limits = DEFAULT_LIMITS, trials: int | None = None
) -> list[tuple[Identity | Invalid, SpecError | None]]:
    """Format, expression and shape checks of every item, without any tensor maths."""
    out: list[tuple[Identity | Invalid, SpecError | None]] = []
    for item in items:
        if isinstance(item, Invalid):
            out.append((item, item.error))
            continue
        n = trials or item.trials or DEFAULT_TRIALS
        try:
            if n > limits.max_trials:
                raise SpecError(str(limits.refuse("max_trials", n, "trials")), key="trials")
            compile_identity(item, n, limits)
        except SpecError as e:
            out.append((item, e.located(path=item.path, identity=item.id, line=item.line)))
        else:
            out.append((item, None))
    return out
