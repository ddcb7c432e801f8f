"""Messages that teach the notation: foreign spellings (LaTeX, Matlab, NumPy/PyTorch methods)
get the matgrad spelling, noise suggestions are dropped, a trailing operator points at its
column, a YAML tab says tabs, and a report in a missing folder says the folder is missing."""

from __future__ import annotations

import pytest

from matgrad.errors import ExprError, closest
from matgrad.lang.expr import parse
from matgrad.lang.functions import REGISTRY
from matgrad.spec.schema import Invalid, load_text

LATEX = "; the typeset formula belongs under the identity's latex: key"

MESSAGES = [
    pytest.param(
        "x^T",
        "operator ^ is not allowed; '^T' at column 2 is LaTeX's transpose x^T (in Python ^ is "
        "bitwise xor): in matgrad write x.T" + LATEX,
        id="caret-T",
    ),
    pytest.param(
        "X^-1 @ b",
        "operator ^ is not allowed; '^-1' at column 2 is LaTeX's inverse X^-1 (in Python ^ is "
        "bitwise xor): in matgrad write inv(X)" + LATEX,
        id="caret-minus-one",
    ),
    pytest.param(
        "X^{-1}",
        "operator ^ is not allowed; '^{-1}' at column 2 is LaTeX's inverse X^-1 (in Python ^ is "
        "bitwise xor): in matgrad write inv(X)" + LATEX,
        id="caret-braced-minus-one",
    ),
    pytest.param(
        "x'",
        "syntax error at column 2: unterminated string literal (detected at line 1); \"x'\" at "
        "column 2 is Matlab's transpose x': in matgrad write x.T",
        id="matlab-quote",
    ),
    pytest.param(
        "A' * B'",
        "syntax error at column 2: invalid syntax; \"A'\" at column 2 is Matlab's transpose x': "
        "in matgrad write x.T",
        id="matlab-quotes",
    ),
    pytest.param(
        "\\mathrm{tr}(X)",
        "syntax error at column 2: unexpected character after line continuation character; "
        "'\\\\mathrm{tr}' at column 1 is LaTeX's trace \\mathrm{tr}: in matgrad write tr(X)"
        + LATEX,
        id="latex-trace",
    ),
    pytest.param(
        "trace(X)",
        "unknown function 'trace'; 'trace(' at column 1 is trace(...): in matgrad write tr(...)",
        id="trace",
    ),
    pytest.param(
        "transpose(A) @ x",
        "transpose takes 3 arguments, got 1: transpose(x, i, j); 'transpose(' at column 1 is "
        "transpose(A): in matgrad write A.T",
        id="transpose-function",
    ),
    pytest.param(
        "A.transpose() @ x",
        "only calls of listed functions by name are allowed; '.transpose()' at column 2 is the "
        "method call A.transpose(): in matgrad write A.T",
        id="transpose-method",
    ),
    pytest.param(
        "A @",
        "syntax error at column 3: the expression ends with the operator '@', an operand is "
        "missing after it",
        id="trailing-matmul",
    ),
    pytest.param(
        "tr(X) + 2 *",
        "syntax error at column 11: the expression ends with the operator '*', an operand is "
        "missing after it",
        id="trailing-times",
    ),
    # no foreign spelling: the message is the parser's own
    pytest.param("tr(X) ^ 2", "operator ^ (use ** for powers) is not allowed", id="caret-power"),
    pytest.param("b'x'",
                 "constant b'x' is not allowed: only int, float and imaginary (2j) numbers",
                 id="bytes-is-not-matlab"),
]


@pytest.mark.parametrize(("text", "message"), MESSAGES)
def test_foreign_notation_is_explained(text: str, message: str) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    assert str(info.value) == message


def test_trailing_operator_points_at_its_column() -> None:
    with pytest.raises(ExprError) as info:
        parse("A @ x +")
    assert info.value.col == 7


@pytest.mark.parametrize("text", ["x.T", "inv(X) @ b", "tr(X)", "A.T @ x", "X ** -1"])
def test_matgrad_notation_is_not_flagged(text: str) -> None:
    parse(text)


@pytest.mark.parametrize(("word", "expected"), [
    ("ldl", None), ("max", "amax"), ("sqrtt", "sqrt"), ("logdett", "logdet"), ("tarce", None),
])
def test_did_you_mean_drops_noise(word: str, expected: str | None) -> None:
    got = closest(word, REGISTRY)
    assert got == expected or (expected is None and got is None)


def test_unknown_function_without_a_noise_suggestion() -> None:
    with pytest.raises(ExprError) as info:
        parse("ldl(X)")
    assert str(info.value) == "unknown function 'ldl'"


def test_yaml_tab_says_tabs() -> None:
    (item,) = load_text("id: t\nvars:\n\tX: [3, 3]\nf: tr(X)\n", "t.yaml")
    assert isinstance(item, Invalid)
    assert str(item.error) == (
        "t.yaml:3:1: YAML syntax error: a tab character: YAML indents with spaces only "
        "(replace the tabs with spaces)"
    )


def test_report_in_a_missing_folder_says_the_folder_is_missing(tmp_path) -> None:
    from matgrad.report import writable_problem

    missing = tmp_path / "no-such-folder" / "r.json"
    assert writable_problem(missing) == (
        f"its folder {str(missing.parent)!r} does not exist (create it first)"
    )


def test_docs_table_rows_are_explained() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "format.md").read_text()
    section = doc.split("### Notation from elsewhere")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) == 6
    for row in rows:
        written, _, fix = (c.strip() for c in row.strip("|").split("|"))
        for example in written.split(", "):
            text = example.strip("`")
            if text in ("\\operatorname{tr}",):
                text += "(X)"
            with pytest.raises(ExprError) as info:
                parse(text)
            assert "in matgrad write " in str(info.value), text
        assert fix.strip("`").split("(")[0] in str(info.value)
    example = section.split("For example `x^T` reads: `")[1].split("`. An expression")[0]
    with pytest.raises(ExprError) as info:
        parse("x^T")
    assert str(info.value) == " ".join(example.split())
