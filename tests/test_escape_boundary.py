"""The escape boundary: user text leaves matgrad escaped for the sink it enters.

One hostile identity file (its title, source, latex, an unknown key of an invalid identity,
and its file name) goes through every command and every output format, and nothing that a
terminal, a CI log, a browser or GitHub would act on comes out. Then each sink of
:mod:`matgrad.report.escape` on its own, as tables.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

# Imported here once: in-process pytester runs drop the modules first imported inside them.
import matgrad.api
import matgrad.engine.core
import matgrad.report.table  # noqa: F401 - kept for the import itself (see above)
from matgrad.cli import app
from matgrad.report import FORMATS, escape

# Everything a terminal, a CI runner, a browser or GitHub's Markdown would act on.
HOSTILE = (
    "T \x1b]0;pwned\x07 \x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ \x1b[31mred\x1b[0m "
    "\x9b31m \x9d0;c1\x9c \x7f del \x08bs \r cr \u202eevil\u202c \u2066iso\u2069 z\u200bw "
    "[bold red]x[/] [link=https://evil.example]click[/link] <script>alert(1)</script>"
    "\n::error file=README.md::x\n  ##[error]legacy\n@org/team https://evil.example/x "
    "www.evil.example [md](https://evil.example) a@b.example"
)
# The file name: what a name can hold of the above (no "/", so no closing tag).
HOSTILE_NAME = (
    "h \x1b]0;pwned\x07\x1b[31m\u202e\u2066 [bold red]x <script>\n::error file=README.md::x "
    "@org.yaml"
)
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2066-\u2069]")
COMMAND_LINE = re.compile(r"^\s*(::|##\[)", re.MULTILINE)


def _yaml(text: str) -> str:
    """A YAML double-quoted scalar for ``text`` (JSON's escapes are YAML's; DEL is not raw)."""
    return json.dumps(text).replace("\x7f", "\\x7f")


def _hostile_file(folder: Path) -> Path:
    path = folder / HOSTILE_NAME
    path.write_text(
        f"""identities:
  - id: hostile-wrong
    title: {_yaml(HOSTILE)}
    source: {_yaml(HOSTILE)}
    latex: {_yaml(HOSTILE)}
    dims: {{n: 3}}
    vars: {{X: {{shape: [n, n], domain: invertible}}}}
    f: tr(inv(X))
    grad: {{X: "-inv(X) @ inv(X)"}}
  - id: hostile-invalid
    title: {_yaml(HOSTILE)}
    {_yaml(HOSTILE)}: 1
    vars: {{x: [2]}}
    f: sum(x)
    grad: {{x: x}}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    return _hostile_file(tmp_path)


def _no_raw_control(out: str) -> None:
    assert not RAW.findall(out), sorted(set(RAW.findall(out)))


def _no_command_line(out: str, *, own: bool = False) -> None:
    """No line a CI runner would execute; with ``own``, only matgrad's own commands."""
    for m in COMMAND_LINE.finditer(out):
        line = out[m.start() : out.index("\n", m.start()) if "\n" in out[m.start() :] else None]
        assert own, line
        assert re.match(r"::(group::matgrad: |endgroup::$|error file=)", line), line


def _markup_is_text(out: str) -> None:
    assert "[bold red]x[/]" in out  # printed as itself: rich read no style from it


def _no_live_markdown(out: str) -> None:
    assert not re.search(r"(?<!\\)<script", out, re.IGNORECASE)
    assert not re.search(r"@[A-Za-z0-9]", out)  # no mention, no e-mail link
    assert not re.search(r"(?i)(https?|ftp)://|\bwww\.", out)  # no bare URL
    assert not re.search(r"(?<!\\)\]\(", out)  # no [text](link)


def _no_live_html(out: str) -> None:
    assert not re.search(r"<script", out, re.IGNORECASE)
    assert not re.search(r"""href\s*=\s*(?!["']#)""", out)  # only links within the page


def _csv_safe(out: str) -> None:
    for row in csv.reader(io.StringIO(out)):
        assert not [c for c in row if c.startswith(("=", "+", "-", "@")) and not _number(c)]


# What each report format must also hold to, beyond no raw control character and no CI command
# line. A new format must add its entry here (test_every_format_has_a_sink_check).
SINK_CHECKS = {
    "table": _markup_is_text,
    "json": json.loads,
    "junit": lambda out: ET.fromstring(out.encode("utf-8")),  # still well-formed XML
    "github": lambda out: None,  # its own command lines are checked in _no_command_line
    "markdown": _no_live_markdown,
    "html": _no_live_html,
    "csv": _csv_safe,
}


def _check_sink(fmt: str, out: str) -> None:
    """The assertions for what ``fmt`` produced."""
    _no_raw_control(out)
    _no_command_line(out, own=fmt == "github")
    SINK_CHECKS[fmt](out)


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def test_every_format_has_a_sink_check() -> None:
    assert set(SINK_CHECKS) == set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_prints_hostile_text_escaped(hostile: Path, fmt: str) -> None:
    r = _invoke("check", str(hostile), "--format", fmt, "-v")
    assert r.exit_code == 3, r.output  # the invalid one is an error, the wrong one a FAIL
    _check_sink(fmt, r.stdout)
    _no_raw_control(r.stderr)
    _no_command_line(r.stderr)


def test_check_reports_and_step_summary_are_escaped(hostile: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    summary = out / "summary.md"
    args = ["check", str(hostile), "--format", "json"]
    for fmt in FORMATS:
        args += ["--report", f"{fmt}:{out / fmt}"]
    r = _invoke(*args, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == 3, r.output
    for fmt in FORMATS:
        _check_sink(fmt, (out / fmt).read_text(encoding="utf-8"))
    _check_sink("markdown", summary.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["validate"], id="validate"),
        pytest.param(["list"], id="list"),
        pytest.param(["list", "--format", "json"], id="list-json"),
        pytest.param(["check", "--collect-only"], id="collect-only"),
        pytest.param(["check", "--collect-only", "--format", "json"], id="collect-only-json"),
    ],
)
def test_commands_print_hostile_text_escaped(hostile: Path, args: list[str]) -> None:
    r = _invoke(*args, str(hostile))
    assert r.exit_code == 3, r.output  # the invalid identity
    for out in (r.stdout, r.stderr):
        _no_raw_control(out)
        _no_command_line(out)
    if "json" in args:
        json.loads(r.stdout)
    else:
        _markup_is_text(r.stdout + r.stderr)


def test_show_prints_hostile_text_escaped(hostile: Path) -> None:
    r = _invoke("show", "hostile-wrong", str(hostile))
    assert r.exit_code == 0, r.output
    _no_raw_control(r.output)
    _no_command_line(r.output)
    _markup_is_text(r.output)
    assert "\\x1b]0;pwned\\x07" in r.output  # written out, and still there to read


def test_show_of_the_invalid_identity_prints_its_error_escaped(hostile: Path) -> None:
    r = _invoke("show", "hostile-invalid", str(hostile))
    assert r.exit_code == 3, r.output
    assert "unknown key" in r.stderr
    _no_raw_control(r.output)
    _no_command_line(r.output)
    _markup_is_text(r.stderr)


@pytest.mark.parametrize("command", ["show", "list"])
def test_osc_and_csi_in_a_title_never_reach_the_terminal(tmp_path: Path, command: str) -> None:
    # Bug: `show` and `list` printed the title raw, so a file could set the terminal's title
    # (OSC 0) or its colours (CSI); the run reports already wrote them out.
    path = tmp_path / "t.yaml"
    path.write_text(
        'id: t\ntitle: "a \\e]0;pwned\\a \\e[31mred"\ndims: {n: 2}\nvars: {X: [n, n]}\n'
        "f: tr(X)\ngrad: {X: eye(n)}\n"
    )
    args = ["show", "t", str(path)] if command == "show" else ["list", str(path)]
    r = _invoke(*args)
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "\x07" not in r.output
    assert "a \\x1b]0;pwned\\x07 \\x1b[31mred" in r.output


def test_functions_table_shows_shapes_in_brackets() -> None:
    # Bug: rich read "[n, n]" in the function reference as markup and printed nothing.
    r = _invoke("functions")
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if "inv(" in line and "pinv" not in line)
    assert "[n, n]" in row
    assert "pseudo-inverse of ;" not in r.stdout


def test_new_prints_the_file_name_escaped(tmp_path: Path) -> None:
    # The name goes into the template too, which refuses control characters (a clean error).
    refused = _invoke("new", "fresh", "-o", str(tmp_path / HOSTILE_NAME))
    assert refused.exit_code == 2 and "control characters" in refused.stderr
    target = tmp_path / "[bold red]x \u202e @org.yaml"
    r = _invoke("new", "fresh", "-o", str(target))
    assert r.exit_code == 0 and target.exists(), r.output
    for out in (refused.output, r.output):
        _no_raw_control(out)
        _no_command_line(out)
    assert "[bold red]x \\u202e @org.yaml" in r.stderr


def test_pytest_plugin_failure_text_is_escaped(pytester: pytest.Pytester) -> None:
    _hostile_file(pytester.path)
    result = pytester.runpytest(
        "-p", "matgrad.pytest_plugin", "-p", "no:hypothesispytest", "--matgrad", "."
    )
    out = result.stdout.str()
    assert "unknown key" in out and "mismatch" in out.lower()
    failures = out[out.index("= FAILURES =") : out.index("short test summary")]
    _no_raw_control(failures)
    _no_command_line(failures)


def test_completion_titles_are_one_escaped_line(hostile: Path) -> None:
    from matgrad.cli import completion

    (title,) = [t for i, t in completion.ids([str(hostile)]) if i == "hostile-wrong"]
    assert "\n" not in title
    _no_raw_control(title)


# ---- each sink -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain text", "plain text", id="plain"),
        pytest.param("\x1b]0;t\x07", "\\x1b]0;t\\x07", id="osc"),
        pytest.param("\x1b[31m", "\\x1b[31m", id="csi"),
        pytest.param("\x9b31m\x9d", "\\x9b31m\\x9d", id="c1"),
        pytest.param("\x7f\x00\r", "\\x7f\\x00\\x0d", id="del-nul-cr"),
        pytest.param("\u202ea\u202c\u2066b\u2069", "\\u202ea\\u202c\\u2066b\\u2069", id="bidi"),
        pytest.param("a\u200bb\ufeff\u2060", "a\\u200bb\\ufeff\\u2060", id="zero-width"),
        pytest.param("\u200d\u200c é ∂", "\u200d\u200c é ∂", id="joiners-and-letters-stay"),
        pytest.param("a\nb", "a\\nb", id="newline"),
        pytest.param("::error::x", "\\x3a:error::x", id="workflow-command"),
        pytest.param("  ##[error]x", "  \\x23#[error]x", id="legacy-command"),
        pytest.param("a ::x", "a ::x", id="colons-inside-a-line"),
        pytest.param("[bold]x[/]", "[bold]x[/]", id="markup-is-not-escaped-here"),
    ],
)
def test_terminal(text: str, expected: str) -> None:
    assert escape.terminal(text) == expected


def test_terminal_keeps_newlines_when_asked_but_no_command_line() -> None:
    assert escape.terminal("a\n::error::x\n \t::b", newlines=True) == (
        "a\n\\x3a:error::x\n \t\\x3a:b"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[bold red]x[/]", "\\[bold red]x\\[/]", id="markup"),
        pytest.param("\x1b[31m[link=x]", "\\x1b[31m\\[link=x]", id="escape-then-markup"),
        pytest.param("[n, n]", "\\[n, n]", id="shape"),
    ],
)
def test_markup(text: str, expected: str) -> None:
    from rich.text import Text

    assert escape.markup(text) == expected
    assert Text.from_markup(escape.markup(text)).plain == escape.terminal(text)


def test_text_is_never_markup() -> None:
    assert escape.text("[bold]x[/] \x1b").plain == "[bold]x[/] \\x1b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("<script>&\"'", "&lt;script&gt;&amp;&quot;&#x27;", id="markup"),
        pytest.param("\x1b\u202e", "\\x1b\\u202e", id="controls"),
        pytest.param("a\n::error::x", "a\n&#58;:error::x", id="workflow-command"),
    ],
)
def test_html(text: str, expected: str) -> None:
    assert escape.html(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a|b", r"a\|b", id="pipe"),
        pytest.param("`code`", r"\`code\`", id="backticks"),
        pytest.param("# h", r"\# h", id="heading"),
        pytest.param("<b>&amp;", r"\<b\>\&amp;", id="html-and-entity"),
        pytest.param("one\ntwo\r", r"one<br>two\\x0d", id="newlines"),
        pytest.param("[x](y) *z*", r"\[x\]\(y\) \*z\*", id="link-and-emphasis"),
        pytest.param("https://e.x/p", "https&#8288;://e.x/p", id="autolink-url"),
        pytest.param("see www.e.x", "see www&#8288;.e.x", id="autolink-www"),
        pytest.param("@org/team", "@&#8288;org/team", id="team-mention"),
        pytest.param("a@b.example", "a@&#8288;b.example", id="email"),
        pytest.param("\x1b", "\\\\x1b", id="controls"),
    ],
)
def test_markdown(text: str, expected: str) -> None:
    assert escape.markdown(text) == expected


def test_xml() -> None:
    assert escape.xml("a\x00\x1b\ufffe") == "a\\x00\\x1b\\ufffe"
    doc = escape.xml_document("<a>x\n::error::y\n  ::z</a>")
    assert doc == "<a>x\n&#58;:error::y\n  &#58;:z</a>"
    assert ET.fromstring(doc).text == "x\n::error::y\n  ::z"  # the same document


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("=1+2", "'=1+2", id="formula"),
        pytest.param("+1", "'+1", id="plus"),
        pytest.param("-1", "'-1", id="minus"),
        pytest.param("@SUM(A1)", "'@SUM(A1)", id="at"),
        pytest.param("\tx", "'\tx", id="tab"),
        pytest.param("\rx", "\\x0dx", id="cr-written-out"),
        pytest.param("a=1", "a=1", id="inside"),
        pytest.param("x\n::error::y", "x\n\\x3a:error::y", id="workflow-command"),
    ],
)
def test_csv_cell(text: str, expected: str) -> None:
    assert escape.csv_cell(text) == expected


def test_csv_numbers_are_never_prefixed() -> None:
    from matgrad.report.csv import cell

    assert cell(-1.5) == "-1.5" and cell(-3) == "-3" and cell("-3") == "'-3"


def test_json_text_is_the_same_data_without_raw_controls() -> None:
    data = {"t": "\x9b\u202e\x7f é \x1b"}
    out = escape.json_text(data, ensure_ascii=False)
    _no_raw_control(out)
    assert "é" in out and json.loads(out) == data


@pytest.mark.parametrize(
    ("text", "data", "prop"),
    [
        pytest.param("50%", "50%25", "50%25", id="percent"),
        pytest.param("a\r\nb", "a\\x0d%0Ab", "a\\x0d%0Ab", id="newlines"),
        pytest.param("a:b,c", "a:b,c", "a%3Ab%2Cc", id="property-separators"),
        pytest.param("x\n::error::y", "x%0A::error::y", "x%0A%3A%3Aerror%3A%3Ay", id="command"),
    ],
)
def test_workflow_command(text: str, data: str, prop: str) -> None:
    assert escape.workflow_data(text) == data
    assert escape.workflow_property(text) == prop


# ---- one owner -------------------------------------------------------------------------

OUTPUT_CODE = ["matgrad/report", "matgrad/cli", "matgrad/pytest_plugin.py"]
# Escaping done anywhere but escape.py: rich's markup escape, the stdlib's HTML escape,
# control-character classes, workflow-command escapes, the CSV formula guard.
BYPASS = re.compile(
    r"rich\.markup|^\s*import html\b|html\.escape|\\x00-|\\x1b|%0[AD]|%25|FORMULA|\.replace\(\"\|\""
)


def test_escaping_lives_in_one_module() -> None:
    root = Path(__file__).resolve().parent.parent
    files = [
        f
        for p in OUTPUT_CODE
        for f in ((root / p).rglob("*.py") if (root / p).is_dir() else [root / p])
        if f.name != "escape.py"
    ]
    assert len(files) > 20
    found = [
        f"{f.relative_to(root)}:{n}: {line.strip()}"
        for f in files
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
        if BYPASS.search(line)
    ]
    assert found == []
