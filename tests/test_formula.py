"""Formulas in the reports: f and every claim, generated from the parsed expression (MathML in
HTML, text in JSON and CSV), with a fallback for node types the renderer does not know."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from reportdata import sample_report
from typer.testing import CliRunner

from matgrad.claims import KINDS
from matgrad.cli import app
from matgrad.lang import expr as ex
from matgrad.report import csv as csv_report
from matgrad.report import formula, html, markdown
from matgrad.results import ClaimResult, IdentityResult, RunReport

ROOT = Path(__file__).resolve().parent.parent
M = "{http://www.w3.org/1998/Math/MathML}"


def _tree(mathml: str) -> ET.Element:
    return ET.fromstring(mathml)


def _tags(mathml: str) -> list[str]:
    return [el.tag.removeprefix(M) for el in _tree(mathml).iter()]


def _text(mathml: str) -> str:
    return "".join(_tree(mathml).itertext())


@pytest.mark.parametrize(
    ("text", "tags", "shown"),
    [
        pytest.param("A / n", {"mfrac"}, "An", id="a fraction"),
        pytest.param("x ** 2", {"msup"}, "x2", id="a power"),
        pytest.param("inv(X)", {"msup"}, "X−1", id="inverse as X^-1"),
        pytest.param("inv(X).T", {"msup"}, "X−T", id="inverse transposed as X^-T"),
        pytest.param("A.T", {"msup"}, "AT", id="transpose"),
        pytest.param("sqrt(x)", {"msqrt"}, "x", id="square root"),
        pytest.param("W1 @ x", {"msub"}, "W1\u2062x", id="trailing digits as a subscript"),
        pytest.param("sigma * x", set(), "σ⊙x", id="greek name, elementwise product"),
        pytest.param("2 * x", set(), "2\u2062x", id="a number times"),
        pytest.param("tr(A @ X)", set(), "tr\u2061(A\u2062X)", id="a function call"),
        pytest.param("(a + b) @ c", set(), "(a+b)\u2062c", id="brackets kept where needed"),
        pytest.param("a - (b - c)", set(), "a−(b−c)", id="right operand of minus"),
        pytest.param("-x", set(), "−x", id="negation"),
    ],
)
def test_expressions_render_as_mathml(text: str, tags: set[str], shown: str) -> None:
    m = formula.math(formula.expression(text))
    assert tags <= set(_tags(m))
    assert _text(m) == shown


def test_every_claim_kind_has_a_symbol_that_renders() -> None:
    for name, kind in KINDS.items():
        m = formula.claim(name, "X", "A")
        assert _tags(m)[0] == "math"
        assert _text(m).endswith("=A")
        assert formula.claim_text(name, "X", "A").endswith(" = A")
        assert "{var}" not in kind.symbol_mathml.replace("{var}", "", 1)


def test_a_parsed_node_the_renderer_does_not_know_is_its_source_text() -> None:
    # indexing is parsed (a node type of its own) but not drawn: its text stands in
    m = formula.math(formula.expression("X[0] @ A"))
    assert "<mtext>X[0]</mtext>" in m and "<mi>A</mi>" in m


def test_a_differential_shows_the_direction_as_dX() -> None:
    m = formula.claim("differential", "X", "tr(A @ dX)")
    assert "d</mi><mi>X</mi>" in m


def test_unknown_node_types_fall_back_to_their_escaped_source() -> None:
    # The parser grows new node types (indexing, keyword arguments, ...): the renderer shows
    # what it does not know as the node's source text, escaped, inside <mtext>.
    @dataclasses.dataclass(frozen=True)
    class Unknown(ex.Node):
        pass

    node = ex.BinOp("x + <b>&q[0]", 1, "+", ex.Name("x", 1, "x"), Unknown("<b>&q[0]", 5))
    out, _ = formula._Renderer(frozenset()).render(node)
    assert out == "<mrow><mi>x</mi><mo>+</mo><mtext>&lt;b&gt;&amp;q[0]</mtext></mrow>"
    _tree(formula.math(out))  # well-formed


@pytest.mark.parametrize(
    "text", ["<script>alert(1)</script>", "X @@ A", "tr(X, dim=0)", "\x1b[31mred"]
)
def test_text_that_does_not_parse_is_shown_escaped(text: str) -> None:
    m = formula.math(formula.expression(text))
    assert _tags(m) == ["math", "mtext"]
    assert "<script" not in m and "\x1b" not in m


def _one_pass_one_fail() -> RunReport:
    ident = IdentityResult(
        id="attention", file="a.yaml", line=1, expect="pass", status="failed", trials=10,
        f="tr(Q @ K.T)",
        claims=[
            ClaimResult("grad", "Q", "passed", line=3, max_abs_err=0.0, max_ratio=0.0,
                        expr="K", rtol=1e-6, atol=0.0),
            ClaimResult("grad", "K", "failed", line=4, max_abs_err=1.0, max_ratio=1e6,
                        message="grad K mismatched", expr="Q.T", rtol=1e-6, atol=0.0),
        ],
    )
    return RunReport(matgrad="0", torch=None, seed=0, device="cpu", dtype="float64",
                     results=[ident])


def test_html_claim_rows_show_the_claims_verdict() -> None:
    page = html.render(_one_pass_one_fail())
    assert 'data-claim="grad Q" data-verdict="PASS"' in page
    assert 'data-claim="grad K" data-verdict="FAIL"' in page
    row_q = page.split('data-claim="grad Q"')[1].split("</tr>")[0]
    assert '<span class="badge passed">PASS</span>' in row_q


def test_markdown_claim_rows_show_the_claims_verdict() -> None:
    text = markdown.render(_one_pass_one_fail())
    cells = [line.split(" | ") for line in text.splitlines()]
    rows = [c[1:3] for c in cells if len(c) > 2 and c[1] in ("grad Q", "grad K")]
    assert rows == [["grad Q", "PASS"], ["grad K", "FAIL"]]


def test_html_shows_f_and_every_claim_as_mathml_without_latex() -> None:
    report = _one_pass_one_fail()
    page = html.render(report)
    article = page.split('id="identity-0"')[1].split("</article>")[0]
    blocks = article.split('<div class="formulas">')[1].split("</div>")[0]
    maths = [m + "</math>" for m in blocks.split("</math>") if m]
    assert len(maths) == 3
    assert [_text(m) for m in maths] == [
        "f=tr\u2061(Q\u2062KT)", "∂f∂Q=K", "∂f∂K=QT"
    ]


def test_sample_report_formulas_are_escaped() -> None:
    page = html.render(sample_report())
    assert "<mtext>x &lt;script&gt;" in page


def test_a_real_run_carries_f_and_claims_into_json_and_csv(tmp_path: Path) -> None:
    data, table = tmp_path / "r.json", tmp_path / "r.csv"
    seed = str(ROOT / "identities" / "seed.yaml")
    r = CliRunner().invoke(app, ["check", seed, "-qq", "--report", str(data),
                                 "--report", str(table)])
    assert r.exit_code == 0, r.output
    first = json.loads(data.read_text())["results"][0]
    assert first["f"] == "a.T @ x"
    assert [(c["kind"], c["var"], c["expr"]) for c in first["claims"]] == [
        ("grad", "a", "x"), ("grad", "x", "a")
    ]
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert (rows[0]["f"], rows[0]["claim.expr"], rows[1]["claim.expr"]) == ("a.T @ x", "x", "a")
    assert csv_report.COLUMNS.index("f") < csv_report.COLUMNS.index("claim.expr")


def test_markdown_shows_f_and_the_claimed_expressions() -> None:
    text = markdown.render(_one_pass_one_fail())
    cells = [line.split(" | ") for line in text.splitlines()]
    rows = [c for c in cells if len(c) > 2 and c[1] in ("grad Q", "grad K")]
    assert [row[6:8] for row in rows] == [
        ["f = tr\\(Q @&#8288; K.T\\)", "∂f/∂Q = K |"], ["", "∂f/∂K = Q.T |"]
    ]
