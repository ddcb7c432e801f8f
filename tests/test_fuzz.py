"""Property-based tests: whatever the text, matgrad answers with a result or a clean error.

Random expression texts (token soup, arbitrary Unicode, and well-formed trees over the whole
function table) and random YAML documents (valid, then mutated) go through the same path as
`matgrad check`. The property: every answer is a value (an ``Identity``, an ``Invalid``, a
result), or a :class:`MatgradError`; never another exception, never an internal error.

Quick by default; `make fuzz` runs the long profile (see conftest.py).
"""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from matgrad.engine.core import Settings, check_identity
from matgrad.errors import MatgradError
from matgrad.lang.domains import DOMAINS
from matgrad.lang.expr import Scope, bind, check_size, parse
from matgrad.lang.functions import REGISTRY
from matgrad.limits import DEFAULT_LIMITS
from matgrad.results import IDENTITY_STATUSES
from matgrad.spec.schema import IDENTITY_KEYS, Identity, Invalid, load_text, validate

# The recursive strategies have long reprs; hypothesis warns when it prints one.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

SHAPES = {"X": (3, 3), "A": (3, 3), "B": (3, 2), "x": (3, 1), "v": (3,), "c": ()}
VARS_YAML = (
    "{X: [n, n], A: {shape: [n, n], domain: invertible}, B: [n, 2], x: [n, 1], v: [n], c: []}"
)
SCOPE = Scope(SHAPES, {"n": 3})

# ---- expression texts -----------------------------------------------------------------------

NUMBERS = ["0", "1", "2", "3", "-1", "0.5", "1e-3", "1.0e300", "1e999", "10**9", "9**9**9",
           "1000", "2**10", "0.0", "-0.0"]
TOKENS = [
    *SHAPES, "n", "dX", "foo", "torch", "__import__", "__class__", "os", *REGISTRY,
    *NUMBERS, "+", "-", "*", "/", "@", "**", "//", "%", "^", "~", "<", "==", "and", "not",
    "(", ")", "[", "]", "{", "}", ",", ".", ".T", ".__class__", ":", ":=", "=", ";", "lambda",
    "if", "else", "for", "in", "'s'", "f'{X}'", "*", " ", "\n", "\\", "#", "\x00", "é",
    "...", "axis=", "keepdim=True", "None", "True", "'ij->ji'", "'ii'", ".mT", ">", ">=",
    "[[1, 2], [3, 4]]", "[0, 2]", "::2", "-1:", "(0, 1)",
]
token_soup = st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)
any_text = st.text(max_size=60)


def _call(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def args_for(name: str) -> st.SearchStrategy[str]:
        fn = REGISTRY[name]
        return st.lists(children, min_size=fn.min_args, max_size=fn.max_args).map(
            lambda args: f"{name}({', '.join(args)})"
        )

    return st.sampled_from(sorted(REGISTRY)).flatmap(args_for)


# Every function of the decomposition family with each of its parts and options: a function
# with several results binds only with a part (qr(A).Q), so the plain call above is refused and
# these are the texts that reach its evaluation.
DECOMP_MODULES = ("fn_decomp", "fn_lu", "fn_eig", "fn_norm")
DECOMP_OPTIONS = {
    "upper": ["True", "False"],
    "left": ["False"],
    "adjoint": ["True"],
    "unitriangular": ["True"],
    "ord": ["'nuc'", "2", "-2", "1", "'inf'", "'-inf'", "'fro'"],
}


def decomp_functions() -> list[str]:
    return sorted(
        name
        for name, fn in REGISTRY.items()
        if fn.impl.__module__.rsplit(".", 1)[-1] in DECOMP_MODULES
    )


def decomp_templates() -> list[str]:
    """Call templates ({} for each argument) of every decomposition function, part and option."""
    out = []
    for name in decomp_functions():
        fn = REGISTRY[name]
        args = ", ".join(["{}"] * fn.min_args)
        options = [""] + [
            f", {key}={value}" for key in fn.keywords for value in DECOMP_OPTIONS.get(key, [])
        ]
        for option in options:
            for part in fn.parts or ("",):
                out.append(f"{name}({args}{option})" + (f".{part}" if part else ""))
    return out


DECOMP_TEMPLATES = decomp_templates()


def _decomp(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def fill(template: str) -> st.SearchStrategy[str]:
        n = template.count("{}")
        return st.lists(children, min_size=n, max_size=n).map(lambda a: template.format(*a))

    return st.sampled_from(DECOMP_TEMPLATES).flatmap(fill)


def test_the_decomposition_templates_cover_every_function_part_and_option() -> None:
    names = decomp_functions()
    assert {"lu", "lu_solve", "eig", "eigvals", "cholesky_inverse", "norm", "qr"} <= set(names)
    for name in names:
        fn = REGISTRY[name]
        mine = [t for t in DECOMP_TEMPLATES if t.startswith(name + "(")]
        for part in fn.parts:
            assert any(t.endswith(f").{part}") for t in mine), (name, part)
        for key in fn.keywords:
            if key in DECOMP_OPTIONS:
                assert any(f"{key}=" in t for t in mine), (name, key)


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binop = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "@", "**"]), children)
    compare = st.tuples(children, st.sampled_from(["<", "<=", ">", ">="]), children)
    index = st.sampled_from(["[0]", "[..., -1]", "[:, 1:]", "[[0, 2]]", "[None]", "[::2, 0]"])
    option = st.sampled_from(
        ["sum({}, axis=0)", "softmax({}, axis=-1)", "amax({}, axis=(0, 1), keepdim=True)",
         "mean({}, axis=-1, keepdim=True)", "einsum('ij->ji', {})", "einsum('ii', {})",
         "topk({}, 2)", "sort({}, axis=0)", "cumsum({}, axis=1)", "reshape({}, -1)",
         "max_pool1d({}, 2)", "clamp({}, -1, 1)", "var({}, axis=0, correction=0)"]
    )
    return st.one_of(
        binop.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        compare.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        children.map(lambda c: f"-{c}"),
        children.map(lambda c: f"({c}).T"),
        children.map(lambda c: f"({c}).mT"),
        st.tuples(children, index).map(lambda t: f"({t[0]}){t[1]}"),
        st.tuples(option, children).map(lambda t: t[0].format(t[1])),
        st.tuples(children, children).map(lambda t: f"einsum('ij,jk->ik', {t[0]}, {t[1]})"),
        st.tuples(children, children).map(lambda t: f"where({t[0]} > 0, {t[0]}, {t[1]})"),
        _call(children),
        _decomp(children),
    )


def trees(leaves: list[str], max_leaves: int = 10) -> st.SearchStrategy[str]:
    """Well-formed expressions over ``leaves`` and the whole function table."""
    return st.recursive(st.sampled_from(leaves), _extend, max_leaves=max_leaves)


well_formed = trees([*SHAPES, "n", *NUMBERS, "[[1, 2, 3], [4, 5, 6], [7, 8, 9]]"])
expression_text = st.one_of(well_formed, token_soup, any_text)


@given(expression_text)
def test_any_expression_text_parses_and_binds_or_is_a_clean_error(text: str) -> None:
    try:
        bound = bind(parse(text), SCOPE)
        check_size(bound, 10, DEFAULT_LIMITS, "fuzz")
    except MatgradError:
        pass


def _identity(f: str, claim: str, kind: str) -> str:
    return (
        f"id: fuzz\ndims: {{n: 3}}\nvars: {VARS_YAML}\nf: {json.dumps(f)}\n"
        f"{kind}: {{X: {json.dumps(claim)}}}\ntrials: 2\n"
    )


def _check(text: str) -> None:
    (item,) = load_text(text, "fuzz.yaml")
    result = check_identity(item, Settings(), "cpu")
    assert result.status in IDENTITY_STATUSES
    assert not result.internal, result.message


@given(well_formed, well_formed)
def test_any_well_formed_identity_checks_to_a_result(f: str, claim: str) -> None:
    # A scalar f lets grad claims through to autograd; otherwise differential claims.
    _check(_identity(f"sum({f})", claim, "grad"))
    _check(_identity(f, claim, "differential"))
    _check(_identity(f, claim, "jacobian"))
    _check(_identity(f"sum({f})", claim, "hessian"))


@given(expression_text, expression_text)
def test_any_expression_in_an_identity_checks_to_a_result(f: str, claim: str) -> None:
    _check(_identity(f, claim, "differential"))


# ---- YAML documents -------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True),
    st.text(max_size=12), well_formed,
)
any_value = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
dims = st.dictionaries(st.sampled_from(["n", "m", "k"]), st.integers(-1, 5), max_size=3)
shape = st.lists(st.one_of(st.sampled_from(["n", "m", "k"]), st.integers(-1, 4)), max_size=3)
# every registered domain (the structured, ranked and complex ones too), and unknown names
domain = st.sampled_from([*sorted(DOMAINS), "fullrank", "posdef"])
rank = st.one_of(st.integers(-2, 6), st.sampled_from(["n", "m", "k", "x", "1.5"]), st.none())
var = st.one_of(
    shape,
    st.fixed_dictionaries({"shape": shape}, optional={"domain": domain, "rank": rank}),
)
var_names = st.sampled_from(["X", "Y", "x", "v", "c", "tr", "dX", "1x"])
# a claim's key: one variable, or two for mixed second derivatives ("x, y"), spaced or not
pair_keys = st.builds(
    lambda names, sep: sep.join(names),
    st.lists(var_names, min_size=2, max_size=3),
    st.sampled_from([", ", ",", " , ", ",  "]),
)
claim_keys = st.one_of(var_names, pair_keys)
claims = st.dictionaries(claim_keys, well_formed, min_size=1, max_size=2)
identity = st.fixed_dictionaries(
    {"id": st.one_of(st.just("fuzz"), st.text(max_size=6)), "f": well_formed},
    optional={
        "dims": dims,
        "vars": st.dictionaries(var_names, var, max_size=3),
        "let": st.dictionaries(st.sampled_from(["L", "M", "X"]), well_formed, max_size=2),
        "grad": claims,
        "differential": claims,
        "hessian": claims,
        "jacobian": claims,
        "implementation": st.one_of(st.lists(var_names, max_size=3), any_value),
        "expect": st.sampled_from(["pass", "fail", "maybe"]),
        "tol": st.fixed_dictionaries({}, optional={"rtol": st.floats(), "atol": any_value}),
        "trials": st.one_of(st.integers(-1, 3), any_value),
        "convention": st.sampled_from(["entrywise", "frobenius", "free", "other"]),
        "directions": st.sampled_from(["free", "tangent", "other"]),
        "title": any_value,
        "oops": any_value,
    },
)
# Closer to real files: declared names, plausible shapes, so many reach the engine.
@st.composite
def plausible_identity(draw: st.DrawFn) -> dict[str, object]:
    names = draw(st.lists(st.sampled_from(list(SHAPES)), min_size=1, max_size=3, unique=True))
    vars_ = {}
    for name in names:
        shape = draw(st.sampled_from([["n", "n"], ["n", "n"], ["n", "m"], ["n", 1], ["n"], []]))
        vars_[name] = {"shape": list(shape), "domain": draw(st.one_of(st.just("real"), domain))}
    exprs = trees([*names, "n", "m", "1", "2", "0.5"], max_leaves=6)
    f = draw(exprs)
    doc: dict[str, object] = {
        "id": "fuzz",
        "dims": {"n": draw(st.integers(1, 3)), "m": draw(st.integers(1, 3))},
        "vars": vars_,
        "f": draw(st.sampled_from([f, f"sum({f})"])),
    }
    kinds = draw(st.lists(st.sampled_from(["grad", "differential", "hessian", "jacobian"]), min_size=1,
                          max_size=3, unique=True))
    for kind in kinds:
        key = draw(st.sampled_from(names))
        if kind == "hessian" and draw(st.booleans()):  # mixed: d^2 f / (d vec x d (vec y)^T)
            key += ", " + draw(st.sampled_from(names))
        doc[kind] = {key: draw(exprs)}
    if draw(st.booleans()):
        doc["implementation"] = [draw(st.sampled_from(names))]
    if draw(st.booleans()):
        doc["let"] = {"L": draw(exprs)}
    doc["expect"] = draw(st.sampled_from(["pass", "fail"]))
    doc["trials"] = draw(st.integers(1, 3))
    doc["convention"] = draw(st.sampled_from(["entrywise", "frobenius", "free"]))
    doc["directions"] = draw(st.sampled_from(["free", "tangent"]))
    return doc


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:  # write shared values out, no &anchors
        return True


def dump(doc: object) -> str:
    return yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False)


document = st.one_of(
    plausible_identity(),
    identity,
    st.fixed_dictionaries({"identities": st.lists(identity, max_size=3)}),
    any_value,
)

PUNCTUATION = ":-[]{}&*!|>'\"#%@`,?\n\t \x00\\<"


@st.composite
def yaml_text(draw: st.DrawFn) -> str:
    text = dump(draw(document))
    for _ in range(draw(st.integers(0, 3))):  # break it in a few places
        if not text:
            break
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "truncate", "duplicate-line"]))
        if op == "insert":
            text = text[:i] + draw(st.sampled_from(PUNCTUATION)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "truncate":
            text = text[:i]
        else:
            lines = text.splitlines(keepends=True)
            j = draw(st.integers(0, max(len(lines) - 1, 0)))
            text = "".join(lines[: j + 1] + lines[j:])
    return text


@given(st.one_of(yaml_text(), st.text(max_size=200)))
def test_any_yaml_document_loads_to_identities_or_clean_errors(text: str) -> None:
    items = load_text(text, "fuzz.yaml")
    assert items and all(isinstance(i, (Identity, Invalid)) for i in items)
    checked = validate(items)
    assert len(checked) == len(items)
    for item, err in checked:
        if isinstance(item, Invalid):
            assert err is item.error
        assert err is None or isinstance(err, MatgradError)


@given(st.one_of(plausible_identity().map(dump), yaml_text()))
def test_any_yaml_document_checks_to_results(text: str) -> None:
    for item in load_text(text, "fuzz.yaml"):
        result = check_identity(item, Settings(trials=2), "cpu")
        assert result.status in IDENTITY_STATUSES
        assert not result.internal, result.message


def test_identity_keys_are_all_generated() -> None:
    # The document strategy covers every key of the format (plus an unknown one).
    generated = {"id", "f", "dims", "vars", "let", "grad", "differential", "hessian", "jacobian",
                 "implementation", "expect", "tol", "trials", "convention", "directions", "title"}
    assert set(IDENTITY_KEYS) - generated == {"source", "latex", "notes", "witness"}


@given(well_formed, well_formed)
def test_a_memo_gives_the_very_same_value(a: str, b: str) -> None:
    # Claims are evaluated with a memo, so that a sub-expression written twice is computed
    # once: the value must be exactly the one computed without it, NaN and errors alike.
    import torch

    gen = torch.Generator().manual_seed(0)
    env = {k: torch.randn((2, *s), generator=gen, dtype=torch.float64) for k, s in SHAPES.items()}
    like = torch.zeros(2, dtype=torch.float64)
    for text in (f"({a}) + ({a})", f"({a}) * ({b}) + ({b}) * ({a})"):
        try:
            bound = bind(parse(text), SCOPE)
            check_size(bound, 2, DEFAULT_LIMITS, "fuzz")
        except MatgradError:
            continue
        outcomes = []
        for memo in (None, {}):
            try:
                with torch.no_grad():
                    outcomes.append(bound.evaluate(env, torch, like, memo))
            except Exception as e:  # the same failure either way is fine
                outcomes.append(type(e))
        plain, memoised = outcomes
        if isinstance(plain, torch.Tensor):
            torch.testing.assert_close(memoised, plain, rtol=0, atol=0, equal_nan=True)
        else:
            assert memoised == plain
