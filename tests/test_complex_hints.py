"""The classic complex mistakes each get their hint: the convention's factor 2, conjugated,
.T where .H belongs (and the reverse), the real part only; as a whole claim and as one term of
a claim (the per-term repairs)."""

from __future__ import annotations

import textwrap

import pytest

from matgrad.engine.core import Settings, check_identity
from matgrad.lang import terms
from matgrad.lang.expr import Scope, bind, parse
from matgrad.spec.schema import Identity, load_text

VARS = """\
vars:
  Z: {shape: [3, 2], domain: complex}
  S: {shape: [3, 3], domain: complex}
  A: {shape: [3, 3], domain: hermitian}
  C: {shape: [3, 3], domain: complex}
  B: {shape: [3, 2], domain: complex}
"""
QUAD = "real(tr(Z.H @ A @ Z)) + real(tr(B.H @ Z))"  # df/dconj(Z) = A Z + B / 2


def hint(body: str, seed: int = 0) -> str:
    text = f"id: t\n{VARS}{textwrap.dedent(body)}"
    (ident,) = load_text(text, "t.yaml")
    assert isinstance(ident, Identity), ident
    r = check_identity(ident, Settings(seed=seed), "cpu")
    assert r.status == "failed", r.message
    (claim,) = r.claims
    assert claim.hint is not None, claim.message
    return claim.hint


CASES = [
    # the convention: the factor 2 between .grad and the conjugate Wirtinger derivative
    pytest.param(
        f'f: "{QUAD}"\ngrad: {{Z: "2 * A @ Z + B"}}\n',
        "convention pytorch: ", id="factor-2-whole",
    ),
    pytest.param(
        f'f: "{QUAD}"\nconvention: pytorch\ngrad: {{Z: "A @ Z + B / 2"}}\n',
        "convention conjugate-wirtinger: ", id="half-whole",
    ),
    # conjugated: the Wirtinger derivative where the conjugate one was meant
    pytest.param(
        f'f: "{QUAD}"\nconvention: pytorch\ngrad: {{Z: "2 * conj(A @ Z) + conj(B)"}}\n',
        "conjugated: ", id="conjugated-whole",
    ),
    pytest.param(
        f'f: "{QUAD}"\ngrad: {{Z: "A @ Z + conj(B) / 2"}}\n',
        "term 2 'conj(B) / 2' has 'conj(B)' where 'B' belongs (conjugated): 'B / 2'",
        id="conj-extra-term",
    ),
    pytest.param(
        f'f: "{QUAD}"\ngrad: {{Z: "conj(A) @ conj(Z) + B / 2"}}\n',
        "term 1 'conj(A) @ conj(Z)' should be conjugated: 'A @ Z'", id="conjugated-term",
    ),
    # .T for .H, .H for .T
    pytest.param(
        'f: "real(tr(Z.H @ C @ Z))"\ngrad: {Z: "(C + C.T) @ Z / 2"}\n',
        "has 'C.T' where 'C.H' belongs (a plain transpose where the conjugate transpose was "
        "meant): '(C + C.H) @ Z / 2'", id="T-for-H-term",
    ),
    pytest.param(
        'f: "Z.H @ C @ Z"\ndifferential: {Z: "dZ.T @ C @ Z + Z.H @ C @ dZ"}\n',
        "term 1 'dZ.T @ C @ Z' has 'dZ.T' where 'dZ.H' belongs", id="T-for-H-differential",
    ),
    pytest.param(
        'f: "S.T @ C"\ndifferential: {S: "dS.H @ C"}\n',
        "term 1 'dS.H @ C' has 'dS.H' where 'dS.T' belongs (a conjugate transpose where the "
        "plain one was meant)", id="H-for-T-term",
    ),
    pytest.param(
        'f: "S.H"\ndifferential: {S: "dS.T"}\n',
        "conjugated: ", id="T-for-H-whole",
    ),
    # the real part only
    pytest.param(
        f'f: "{QUAD}"\ngrad: {{Z: "real(A @ Z + B / 2)"}}\n',
        "real part only: ", id="real-part-whole",
    ),
    pytest.param(
        f'f: "{QUAD}"\ngrad: {{Z: "A @ Z + real(B) / 2"}}\n',
        "term 2 'real(B) / 2' has 'real(B)' where 'B' belongs (the real part only)",
        id="real-part-term",
    ),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_each_complex_mistake_gets_its_hint(body: str, expected: str) -> None:
    for seed in range(3):
        got = hint(body, seed)
        assert expected in got, (seed, got)


SCOPE = Scope({"Z": (3, 2), "C": (3, 3), "X": (3, 3)}, {})


def _edit_texts(text: str, complex_values: bool) -> list[str]:
    b = bind(parse(text), SCOPE)
    found = terms.edits(terms.split(b, {}), SCOPE, 10**6, complex_values=complex_values)
    return [e.text for e in found]


@pytest.mark.parametrize(
    ("text", "edit"),
    [
        pytest.param("C.T @ Z", "C.H @ Z", id="T-to-H"),
        pytest.param("C.H @ Z", "C.T @ Z", id="H-to-T"),
        pytest.param("real(C) @ Z", "C @ Z", id="real-dropped"),
        pytest.param("conj(C) @ Z", "C @ Z", id="conj-dropped"),
        pytest.param("C @ Z / 2", "conj(C) @ conj(Z) / 2", id="conjugated"),
    ],
)
def test_the_complex_term_edits(text: str, edit: str) -> None:
    assert edit in _edit_texts(text, complex_values=True)


@pytest.mark.parametrize("text", ["X.T @ X", "X @ X.T"])
def test_a_real_claim_gets_no_complex_edits(text: str) -> None:
    texts = _edit_texts(text, complex_values=False)
    assert not any(".H" in t or "conj(" in t for t in texts), texts
