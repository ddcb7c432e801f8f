"""The renderers: golden output, schema validity, and user text escaped in every format."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
import xmlschema
from markdown_it import MarkdownIt
from reportdata import (
    HOSTILE,
    HOSTILE_VISIBLE,
    RAW_CONTROL,
    passing_report,
    sample_report,
)

from matgrad.report import (
    FORMATS,
    github,
    html,
    junit,
    markdown,
    parse_target,
    renderer,
)
from matgrad.report import csv as csv_report
from matgrad.report.escape import visible

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = xmlschema.XMLSchema10(str(ROOT / "tests" / "junit-10.xsd"))
GOLDEN = {
    "table": "sample.txt",
    "json": "sample.json",
    "junit": "sample.xml",
    "github": "sample.github.txt",
    "markdown": "sample.md",
    "html": "sample.html",
    "csv": "sample.csv",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden(fmt: str, golden) -> None:
    golden(GOLDEN[fmt], renderer(fmt)(sample_report()))


def test_golden_all_passing_markdown(golden) -> None:
    golden("passing.md", markdown.render(passing_report()))


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_raw_control_characters_in_any_format(fmt: str) -> None:
    out = renderer(fmt)(sample_report())
    assert RAW_CONTROL.search(out) is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_renderers_are_deterministic(fmt: str) -> None:
    assert renderer(fmt)(sample_report()) == renderer(fmt)(sample_report())


def test_visible_writes_out_control_characters() -> None:
    assert visible(HOSTILE) == HOSTILE_VISIBLE
    assert visible("a\tb\nc") == "a\tb\nc"
    assert visible("a\nb", newlines=False) == "a\\nb"
    assert visible("\ud800\ufffe") == "\\ud800\\ufffe"


# ---- JSON ---------------------------------------------------------------------------------


def test_json_keeps_user_text_exactly() -> None:
    data = json.loads(renderer("json")(sample_report()))
    hostile = data["results"][6]
    assert hostile["title"] == HOSTILE and hostile["claims"][0]["hint"] == HOSTILE
    assert hostile["claims"][0]["max_ratio"] is None  # inf is not JSON
    assert data["results"][0]["claims"][0]["max_ratio"] == 2.2e-6


# ---- JUnit --------------------------------------------------------------------------------


def _validated(text: str) -> ET.Element:
    SCHEMA.validate(text)
    return ET.fromstring(text)


def test_junit_validates_against_the_schema() -> None:
    SCHEMA.validate(junit.render(sample_report()))
    SCHEMA.validate(junit.render(passing_report()))
    empty = sample_report()
    empty.results = []
    SCHEMA.validate(junit.render(empty))


def test_junit_structure() -> None:
    tree = _validated(junit.render(sample_report()))
    suites = tree.findall("testsuite")
    assert [s.get("file") for s in suites] == [
        "identities/traces.yaml",
        "identities/mistakes.yaml",
        "identities/broken.yaml",
        "identities/odd <dir>/a&b|c.yaml",
        HOSTILE_VISIBLE,
    ]
    assert tree.get("tests") == "8" and tree.get("failures") == "3" and tree.get("errors") == "3"
    assert tree.get("time") == "1.500"
    traces = suites[0]
    assert (traces.get("tests"), traces.get("failures"), traces.get("errors")) == ("2", "1", "0")
    props = {p.get("name"): p.get("value") for p in traces.find("properties")}
    assert props == {"matgrad": "9.9.9", "torch": "2.0.0-test", "device": "cpu",
                     "dtype": "float64", "seed": "7", "draws": "37"}
    cases = {c.get("name"): c for s in suites for c in s.findall("testcase")}
    ok = cases["trace-inverse"]
    assert ok.get("time") == "0.012" and ok.get("classname") == "identities.traces"
    assert ok.find("failure") is None
    assert ok.find("system-out").text.startswith("passed\ngrad X: passed, max abs err 2.20e-15")
    failure = cases["wrong-transpose"].find("failure")
    assert failure.get("type") == "mismatch"
    assert failure.get("message") == (
        "grad X mismatched on trial 3: max abs err 1.5 at [0, 1] (claimed 0.25, autograd "
        "-1.25); tol rtol=1e-06 atol=1e-09"
    )
    assert "(claimed 0.25, autograd -1.25)" in failure.text
    assert "reproduce: matgrad check identities/traces.yaml -k wrong-transpose --seed 7" in (
        failure.text
    )
    xfailed = cases["known-wrong"]
    assert xfailed.find("failure") is None and xfailed.find("error") is None
    assert xfailed.find("system-out").text.startswith(
        "xfailed\nexpected to fail (expect: fail), and it did"
    )
    xpassed = cases["not-so-wrong"].find("failure")
    assert xpassed.get("type") == "unexpected-pass"
    assert xpassed.get("message").startswith("expected to fail (expect: fail), but every claim")
    assert cases["log-of-negative"].find("error").get("type") == "invalid"
    invalid = cases["broken.yaml"].find("error")
    assert invalid.get("message") == "identities/broken.yaml:2:4: key f: syntax error"


def test_junit_escapes_user_text() -> None:
    tree = _validated(junit.render(sample_report()))
    hostile = next(c for c in tree.iter("testcase") if c.get("name") == "hostile")
    failure = hostile.find("failure")
    # every character survives, made visible
    assert failure.get("message") == (
        HOSTILE_VISIBLE + "; worst entry: trial 1, index [0]: autograd 1, claimed inf"
    )
    assert HOSTILE_VISIBLE in failure.text
    assert tree.findall(".//script") == []
    (named,) = [c for c in tree.iter("testcase") if c.get("name") == HOSTILE_VISIBLE]
    assert named.find("error").text == HOSTILE_VISIBLE


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0.000"), (0.0004, "0.000"), (0.0125, "0.013"), (1234.5678, "1234.568"), (-1, "0.000")],
)
def test_junit_times_have_at_most_3_decimals(seconds: float, text: str) -> None:
    assert junit.seconds(seconds) == text


# ---- GitHub -------------------------------------------------------------------------------

_COMMAND = re.compile(r"^::(\w+)(?: ([^:]*))?::(.*)$")


def _unescape(text: str) -> str:
    return (
        text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",")
        .replace("%25", "%")
    )


def _commands(out: str) -> list[tuple[str, dict[str, str], str]]:
    cmds = []
    for line in out.splitlines():
        if line.startswith("::"):
            m = _COMMAND.match(line)
            assert m, line
            props = {}
            for pair in (m.group(2) or "").split(","):
                if pair:
                    k, _, v = pair.partition("=")
                    props[k] = _unescape(v)
            cmds.append((m.group(1), props, _unescape(m.group(3))))
    return cmds


def test_github_annotations_point_at_the_claim_line() -> None:
    cmds = _commands(github.render(sample_report()))
    names = [c[0] for c in cmds]
    # A warning of an identity that met its expect is a ::warning, not an ::error.
    assert names == ["group", "endgroup", "warning"] + ["error"] * 6
    (warning,) = [c for c in cmds if c[0] == "warning"]
    assert warning[1] == {"file": "identities/traces.yaml", "line": "3",
                          "title": "matgrad warning: trace-inverse"}
    assert warning[2].startswith("f gives NaN/Inf on 2 of 10 draws (20%); those draws")
    errors = [c for c in cmds if c[0] == "error"]
    _, props, message = errors[0]
    assert props == {
        "file": "identities/traces.yaml",
        "line": "27",
        "title": "matgrad FAIL: wrong-transpose (grad X)",
    }
    assert message == (
        "grad X mismatched on trial 3: max abs err 1.5 at [0, 1] (claimed 0.25, autograd "
        "-1.25); tol rtol=1e-06 atol=1e-09\n"
        "  hint: claim equals autograd transposed: did you mean .T?\n"
        "reproduce: matgrad check identities/traces.yaml -k wrong-transpose --seed 7"
    )
    xpass = errors[1]
    assert xpass[1]["line"] == "10" and xpass[1]["title"] == "matgrad XPASS: not-so-wrong"
    assert errors[3][1] == {
        "file": "identities/broken.yaml", "line": "2", "title": "matgrad ERROR: broken.yaml"
    }


def test_github_escapes_user_text() -> None:
    out = github.render(sample_report())
    for line in out.splitlines():
        # only our own commands start with "::": user text cannot inject one
        assert not line.startswith("::") or _COMMAND.match(line).group(1) in (
            "group", "endgroup", "error", "warning"
        )
    errors = [c for c in _commands(out) if c[0] == "error"]
    hostile = next(e for e in errors if e[1]["title"].startswith("matgrad FAIL: hostile"))
    assert hostile[1]["file"] == "identities/odd <dir>/a&b|c.yaml"
    assert hostile[2].startswith(HOSTILE_VISIBLE)
    named = next(e for e in errors if e[1]["file"] == HOSTILE_VISIBLE)
    assert named[1]["title"] == f"matgrad ERROR: {HOSTILE_VISIBLE}"
    assert "line" not in named[1]


def test_github_summary_line_last() -> None:
    out = github.render(sample_report())
    assert out.splitlines()[-1] == (
        "1 passed, 2 failed, 1 xfailed, 1 xpassed, 3 errors in 1.50s (37 draws, 3 drawn again)"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"GITHUB_ACTIONS": "true"}, True), ({"GITHUB_ACTIONS": "false"}, False), ({}, False)],
)
def test_github_detection(env: dict[str, str], expected: bool) -> None:
    assert github.enabled(env) is expected


def test_step_summary_is_appended_within_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    n = github.append_step_summary(path, sample_report())
    assert n == len(markdown.render(sample_report()).encode()) and n == path.stat().st_size
    github.append_step_summary(path, sample_report())
    assert path.read_text().count("## ❌ matgrad") == 2
    # Nearly full: what is appended shrinks to fit, and never passes 1 MiB.
    path.write_bytes(b"x" * (github.STEP_SUMMARY_LIMIT - 1500))
    github.append_step_summary(path, sample_report())
    assert path.stat().st_size <= github.STEP_SUMMARY_LIMIT
    assert "more not shown" in path.read_text()
    path.write_bytes(b"x" * (github.STEP_SUMMARY_LIMIT - 10))
    assert github.append_step_summary(path, sample_report()) == 0


# ---- Markdown -----------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _tags(html_text: str) -> _Tags:
    p = _Tags()
    p.feed(html_text)
    p.close()
    return p


def _md_to_html(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").enable("strikethrough").render(text)


def test_markdown_renders_to_tables_without_user_markup() -> None:
    out = markdown.render(sample_report())
    page = _tags(_md_to_html(out))
    assert {t for t, _ in page.tags} <= {
        "h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td", "br", "details",
        "summary", "blockquote", "em", "strong",
    }
    # every row of each table has as many cells as its header
    for block in out.split("\n\n"):
        rows = [r for r in block.splitlines() if r.startswith("|")]
        if rows:
            widths = {len(re.split(r"(?<!\\)\|", r)) for r in rows}
            assert len(widths) == 1, block
    text = "".join(page.text)
    assert 'x <script>alert("&amp;")</script> | pipe `tick` *em* [link](javascript:alert(1))' in (
        text
    )


def test_markdown_cell_escaping() -> None:
    assert markdown.md("a|b") == r"a\|b"
    assert markdown.md("<b>&amp;</b>") == r"\<b\>\&amp;\</b\>"
    assert markdown.md("one\ntwo\r") == r"one<br>two\\x0d"
    assert markdown.md("[x](y) *z* `q` _u_ ~s~ #h !i") == (
        r"\[x\]\(y\) \*z\* \`q\` \_u\_ \~s\~ \#h \!i"
    )


def test_markdown_size_cap() -> None:
    big = sample_report()
    big.results = [big.results[1]] * 3000
    full = markdown.render(big)
    assert len(full.encode()) > 100_000 and "<details>" in full
    capped = markdown.render(big, max_bytes=20_000)
    assert len(capped.encode()) <= 20_000
    assert "<details>" not in capped
    m = re.search(r"_(\d+) more not shown; the full list of claims is in the JSON or HTML report_",
                  capped)
    assert m, capped[-300:]
    shown = capped.count("| wrong-transpose |")
    assert shown + int(m.group(1)) == 3000
    assert markdown.render(big, max_bytes=10) == ""
    head_only = markdown.render(big, max_bytes=400)
    assert head_only.startswith("## ❌ matgrad: 3000 of 3000 identities") and len(head_only) <= 400


# ---- HTML ---------------------------------------------------------------------------------


def test_html_is_self_contained_and_escaped() -> None:
    out = html.render(sample_report())
    page = _tags(out)
    tags = {t for t, _ in page.tags}
    assert "script" not in tags and "link" not in tags and "img" not in tags
    assert "iframe" not in tags and "object" not in tags
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src"):
                assert value is not None and value.startswith("#"), (tag, name, value)
    assert not re.search(r"https?://(?!www\.w3\.org/)", out)  # nothing fetched at view time
    text = "".join(page.text)
    assert HOSTILE_VISIBLE.replace("\n", "") in text.replace("\n", "")


def test_html_rows_and_status_classes() -> None:
    page = _tags(html.render(sample_report()))
    rows = [a for t, a in page.tags if t == "tr" and "data-identity" in a]
    assert len(rows) == 9  # one per claim, one per identity without claims
    assert [(r["data-identity"], r.get("data-claim"), r["class"]) for r in rows[:3]] == [
        ("trace-inverse", "grad X", "passed"),
        ("trace-inverse", "differential X", "passed"),
        ("wrong-transpose", "grad X", "failed"),
    ]


def test_html_latex_as_mathml() -> None:
    out = html.mathml(r"\frac{\partial}{\partial X} \operatorname{tr}(X^{-1} A)")
    assert out is not None
    assert out.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">')
    assert "<mfrac>" in out and "<msup>" in out


@pytest.mark.parametrize(
    "latex",
    [
        pytest.param(r"\href{javascript:alert(1)}{x}", id="href"),
        pytest.param(r"\text{<script>alert(1)</script>}", id="raw-markup-in-text"),
        pytest.param(r"\style{background:url(http://example.invalid)}{x}", id="style"),
        pytest.param(r"\mathrm{a&b}", id="bare-ampersand"),
    ],
)
def test_html_unsafe_latex_is_shown_as_text(latex: str) -> None:
    assert html.mathml(latex) is None
    block = html.math_block(latex)
    assert block.startswith('<pre class="latex"')
    assert "<script" not in block and "href=" not in block and "style=" not in block


def test_html_latex_markup_is_escaped_inside_math() -> None:
    out = html.mathml("x < y")
    assert out is not None and "<mo>&lt;</mo>" in out


def test_every_identity_latex_of_the_library_renders() -> None:
    from matgrad.spec.schema import Identity, load_all

    items = [it for it in load_all([str(ROOT / "identities")]) if isinstance(it, Identity)]
    failed = [it.id for it in items if it.latex and html.mathml(it.latex) is None]
    assert failed == []


@pytest.mark.parametrize(
    ("ratio", "x"),
    [(0.0, 5.0), (1e-12, 5.0), (1.0, 75.0), (1e12, 145.0), (float("inf"), 145.0), (1e-3, 57.5)],
)
def test_claim_plot_log_scale(ratio: float, x: float) -> None:
    c = sample_report().results[0].claims[0]
    c.max_ratio = ratio
    svg = html.claim_plot(c)
    assert f'<circle cx="{x}"' in svg
    assert '<line x1="75.0" y1="1" x2="75.0"' in svg  # the tolerance


def test_claim_plot_without_numbers() -> None:
    c = sample_report().results[2].claims[0]  # a shape mismatch: nothing to plot
    assert html.claim_plot(c) == '<span class="noplot">—</span>'


# ---- CSV ----------------------------------------------------------------------------------


def test_csv_one_row_per_claim() -> None:
    rows = list(csv.DictReader(io.StringIO(csv_report.render(sample_report()))))
    assert len(rows) == 9
    assert list(rows[0]) == csv_report.COLUMNS
    first = rows[0]
    assert first["id"] == "trace-inverse" and first["claim.kind"] == "grad"
    assert first["claim.max_abs_err"] == "2.2e-15" and first["claim.worst.index"] == "[1, 2]"
    assert first["claim.worst.claimed"] == "0.5000000000000022"  # full precision
    assert first["seconds"] == "0.012346" and first["internal"] == "false"
    assert rows[1]["claim.kind"] == "differential" and rows[1]["title"] == first["title"]
    invalid = rows[6]
    assert invalid["id"] == "broken.yaml" and invalid["claim.kind"] == ""
    hostile = rows[7]
    logged = HOSTILE_VISIBLE.replace("\n::", "\n\\x3a:")  # no line a CI log would run
    assert hostile["title"] == logged and hostile["claim.hint"] == logged
    assert hostile["claim.max_abs_err"] == "inf" and hostile["claim.max_rel_err"] == ""


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("+1", "'+1"),
        ("-(X^{-1})^T", "'-(X^{-1})^T"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("a = b", "a = b"),
    ],
)
def test_csv_formula_injection(text: str, cell: str) -> None:
    assert csv_report.cell(text) == cell


def test_csv_numbers_are_not_quoted_as_formulas() -> None:
    assert csv_report.cell(-1.25) == "-1.25" and csv_report.cell(-3) == "-3"


# ---- report targets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fmt", "path"),
    [
        ("out.json", "json", "out.json"),
        ("reports/matgrad.xml", "junit", "reports/matgrad.xml"),
        ("summary.md", "markdown", "summary.md"),
        ("r.HTML", "html", "r.HTML"),
        ("claims.csv", "csv", "claims.csv"),
        ("log.txt", "table", "log.txt"),
        ("junit:out.junit", "junit", "out.junit"),
        ("md:notes", "markdown", "notes"),
        ("github:annotations.log", "github", "annotations.log"),
        ("JSON:a:b.json", "json", "a:b.json"),
        ("c:/x/report.xml", "junit", "c:/x/report.xml"),
    ],
)
def test_parse_target(spec: str, fmt: str, path: str) -> None:
    assert parse_target(spec) == (fmt, Path(path))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("out.pdf", "'out.pdf': unknown report format '.pdf': name the file .csv, .html, .json, "
         ".md, .txt, .xml, or write FORMAT:FILE with FORMAT one of table, json, junit, github, "
         "markdown, html, csv"),
        ("report", "'report': unknown report format '(no extension)': name the file .csv, "
         ".html, .json, .md, .txt, .xml, or write FORMAT:FILE with FORMAT one of table, json, "
         "junit, github, markdown, html, csv"),
        ("junit:", "'junit:': no file after junit:"),
    ],
)
def test_parse_target_refuses(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_target(spec)
    assert str(e.value) == message


def test_renderers_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nsys.path.insert(0, 'tests')\n"
        "from reportdata import sample_report\nfrom matgrad.report import FORMATS, renderer\n"
        "for fmt in FORMATS:\n    renderer(fmt)(sample_report())\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "NO-TORCH", r.stderr
