"""The function registry owns every per-function fact: shape rule, evaluation, docs, cost and
sensitivity for the degeneracy guard. Budget and guard read the entry, nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from matgrad.engine import degeneracy
from matgrad.lang import functions
from matgrad.lang.domains import DOMAINS
from matgrad.lang.expr import Scope, bind, parse
from matgrad.lang.functions import REGISTRY, SENSITIVITIES, Arg, register
from matgrad.spec import budget
from matgrad.spec.schema import compile_identity, load_text


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_function_has_every_fact(name: str) -> None:
    fn = REGISTRY[name]
    assert fn.name == name
    assert fn.signature and fn.summary and fn.result and fn.category
    assert callable(fn.infer) and callable(fn.impl) and callable(fn.cost)
    assert fn.sensitive is None or fn.sensitive in SENSITIVITIES
    assert 0 < fn.min_args <= fn.max_args
    args = [Arg((3, 3), 2.0 if i in fn.static_args else None) for i in range(fn.min_args)]
    assert isinstance(fn.cost(args, (3, 3)), int)


def _register(**facts: object) -> None:
    register("made_up", "made_up(M)", "a test function", "[]", lambda a: (), **facts)(
        lambda torch, m: m
    )


@pytest.mark.parametrize(
    ("facts", "error"),
    [
        pytest.param({"sensitive": None}, TypeError, id="no cost"),
        pytest.param({"cost": functions.entrywise}, TypeError, id="no sensitivity"),
        pytest.param({"cost": 30, "sensitive": None}, TypeError, id="cost not callable"),
        pytest.param(
            {"cost": functions.entrywise, "sensitive": "singular"}, ValueError, id="unknown"
        ),
    ],
)
def test_register_refuses_a_function_that_leaves_out_a_fact(
    facts: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _register(**facts)
    assert "made_up" not in REGISTRY


def _work(text: str, **shapes: tuple[int, ...]) -> int:
    # S is symmetric, as eigvecsh needs
    return budget.expr_cost(bind(parse(text), Scope(shapes, {}, symmetric=frozenset("S")))).work


@pytest.mark.parametrize(
    ("text", "work"),
    [
        # the numbers the work budget always gave: a side table before, the entries now
        ("tr(S)", 30 * 25),
        ("inv(S)", 6 * 125 + 30 * 25),
        ("logdet(S)", 125 + 30 * 25),
        ("sinm(S)", 80 * 125 + 30 * 25),
        ("eigvecsh(S)", 30 * 125 + 30 * 25),
        ("pinv(R)", 5 * 3 * 7 * 3 + 30 * 21),
        ("matpow(S, 13)", 2 * 4 * 125),
        ("matpow(S, 0)", 2 * 1 * 125),
        ("S @ S", 125),
        ("S + S", 30 * 25),
        ("S.T", 0),
    ],
)
def test_work_comes_from_the_entry(text: str, work: int) -> None:
    assert _work(text, S=(5, 5), R=(3, 7)) == work


def test_budget_reads_the_cost_on_the_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = dataclasses.replace(REGISTRY["tr"], cost=lambda args, out: 12345)
    monkeypatch.setitem(REGISTRY, "tr", entry)
    assert _work("tr(S)", S=(5, 5)) == 12345


IDENT = """\
id: guarded
dims: {n: 3}
vars: {X: {shape: [n, n], domain: symmetric}, Q: {shape: [n, n], domain: invertible}}
f: "tr(expm(X)) + logdet(X) + logdet(Q) + tr(eigvecsh(X)) + tr(pinv(X))"
grad: {X: "X"}
"""


def _sites() -> list[tuple[str, str, str]]:
    (ident,) = load_text(IDENT, "<test>")
    compiled = compile_identity(ident, 4)
    return [(s.fn, s.sensitive, s.arg.node.text) for s in degeneracy.sites(compiled)]


def test_guard_measures_what_each_entry_says() -> None:
    # logdet(Q) is left out: Q's domain is conditioned by construction
    assert _sites() == [
        ("logdet", "cond", "X"),
        ("eigvecsh", "gap", "X"),
        ("pinv", "cond_nonzero", "X"),
    ]


def test_guard_reads_the_sensitivity_on_the_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "expm", dataclasses.replace(REGISTRY["expm"], sensitive="cond"))
    monkeypatch.setitem(REGISTRY, "pinv", dataclasses.replace(REGISTRY["pinv"], sensitive=None))
    assert _sites() == [("expm", "cond", "X"), ("logdet", "cond", "X"), ("eigvecsh", "gap", "X")]


def test_guard_reads_the_conditioning_on_the_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = dataclasses.replace(DOMAINS["invertible"], conditioned=False)
    monkeypatch.setitem(DOMAINS, "invertible", entry)
    assert ("logdet", "cond", "Q") in _sites()


@pytest.mark.parametrize(
    ("shape", "domain", "work"),
    [
        # the numbers the work budget always gave: a side table before, the entries now
        ((5, 5), "real", 2 * 30 * 25),
        ((5,), "positive", 2 * 30 * 5),
        ((5, 5), "spd", 2 * 30 * 25 + 60 * 125),
        ((5, 5), "orthogonal", 2 * 30 * 25 + 60 * 125),
        ((5, 5), "invertible", 2 * 30 * 25 + 60 * 2 * 125),
        ((3, 5), "fullrank", 2 * 30 * 15 + 60 * (27 + 125)),
        ((5, 5), "diagonal", 2 * 30 * 25),
    ],
)
def test_draw_work_comes_from_the_domain(shape: tuple[int, ...], domain: str, work: int) -> None:
    assert budget.sample_work(shape, domain) == work


def test_new_file_template_names_every_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    from matgrad.spec import scaffold

    text = scaffold.template("x")
    assert all(name in text for name in DOMAINS)
    monkeypatch.setitem(DOMAINS, "made-up", dataclasses.replace(DOMAINS["real"], name="made-up"))
    before = list(DOMAINS)[-2]  # the last registered domain before the made-up one
    assert scaffold._vars_comment().rstrip().endswith(f"{before}, made-up)")
