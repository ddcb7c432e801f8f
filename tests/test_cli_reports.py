"""`matgrad check` as a CI gate: report formats and files, GitHub Actions, shards, stopping
early, verbosity, --collect-only."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from reportdata import RAW_CONTROL
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.report import write_atomic

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "identities" / "seed.yaml")
SCHEMA = xmlschema.XMLSchema10(str(ROOT / "tests" / "junit-10.xsd"))
SEED_IDS = [
    "seed-linear-form",
    "seed-linear-form-transposed",
    "seed-bilinear-affine",
    "seed-bilinear-affine-no-transpose",
    "seed-trace-inverse",
    "seed-trace-inverse-sign",
    "seed-trace-inverse-untransposed",
]

BODY = "dims: {{n: 2}}, vars: {{X: [n, n]}}, f: tr(X)"
RIGHT = "  - {{id: right-{i}, " + BODY + ", grad: {{X: eye(n)}}}}\n"
WRONG = "  - {{id: wrong-{i}, " + BODY + ", grad: {{X: 2 * eye(n)}}}}\n"
XFAIL = (
    "  - {{id: xfail-{i}, dims: {{n: 2}}, vars: {{X: [n, n]}}, f: tr(X), grad: {{X: X}}, "
    "expect: fail}}\n"
)


def ids_yaml(*parts: str) -> str:
    return "identities:\n" + "".join(p.format(i=i) for i, p in enumerate(parts))


def invoke(*args: str, env: dict[str, str] | None = None):
    base = {"GITHUB_ACTIONS": "", "GITHUB_STEP_SUMMARY": ""}
    return CliRunner().invoke(app, list(args), env={**base, **(env or {})})


# ---- formats on stdout --------------------------------------------------------------------


def _parse(fmt: str, out: str) -> list[str]:
    """The identity ids a report names, read back with a real parser for its format."""
    if fmt == "json":
        return [r["id"] for r in json.loads(out)["results"]]
    if fmt == "junit":
        SCHEMA.validate(out)
        return [c.get("name") for c in ET.fromstring(out).iter("testcase")]
    if fmt == "csv":
        return list(dict.fromkeys(r["id"] for r in csv.DictReader(io.StringIO(out))))
    if fmt == "html":
        return list(dict.fromkeys(re.findall(r'<tr class="\w+" data-identity="([^"]+)"', out)))
    if fmt == "markdown":
        return re.findall(r"^\| ([\w\\-]+) \| grad", out, re.M)
    if fmt == "github":
        return re.findall(r"^(?:PASS|XFAIL) +(\S+) \(", out, re.M)
    return [i for i in SEED_IDS if i in out]


@pytest.mark.parametrize("fmt", ["table", "json", "junit", "github", "markdown", "html", "csv"])
def test_format_on_stdout(fmt: str) -> None:
    r = invoke("check", SEED, "--format", fmt)
    assert r.exit_code == 0, r.output
    ids = _parse(fmt, r.stdout)
    assert [i.replace("\\", "") for i in ids] == SEED_IDS


# One file per report format, named by its extension (github has none of its own).
REPORT_FILES = {
    "json": "r.json",
    "junit": "r.xml",
    "markdown": "r.md",
    "html": "r.html",
    "csv": "r.csv",
    "table": "r.txt",
}


def test_reports_by_extension_and_by_name(tmp_path: Path) -> None:
    names = REPORT_FILES
    args = [a for n in names.values() for a in ("--report", str(tmp_path / n))]
    args += ["--report", f"github:{tmp_path / 'gh.log'}", "--report", f"junit:{tmp_path / 'j'}"]
    r = invoke("check", SEED, *args)
    assert r.exit_code == 0, r.output
    assert "seed-trace-inverse" in r.stdout and "┃ id" in r.stdout  # the table stays on stdout
    for fmt, name in names.items():
        assert _parse(fmt, (tmp_path / name).read_text()) == SEED_IDS, fmt
    assert _parse("github", (tmp_path / "gh.log").read_text()) == SEED_IDS
    assert _parse("junit", (tmp_path / "j").read_text()) == SEED_IDS
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names.values(), "gh.log", "j"])


def test_unknown_report_format_is_a_usage_error(tmp_path: Path) -> None:
    r = invoke("check", SEED, "--report", str(tmp_path / "out.pdf"))
    assert r.exit_code == 2
    assert "unknown report format '.pdf'" in r.output
    assert "FORMAT:FILE" in r.output
    assert not (tmp_path / "out.pdf").exists()


def test_reports_are_written_when_identities_fail(tmp_path: Path, write) -> None:
    path = write(ids_yaml(RIGHT, WRONG))
    out = tmp_path / "r.xml"
    r = invoke("check", path, "--report", str(out), "-q")
    assert r.exit_code == 1
    tree = ET.fromstring(out.read_text())
    assert tree.get("failures") == "1"


def test_write_atomic_never_leaves_half_a_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "report.xml"
    target.write_text("old")

    class Boom(Exception):
        pass

    def broken_replace(src: str, dst: object) -> None:
        raise Boom

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(Boom):
        write_atomic(target, "new " * 1000)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.xml"]  # no temporary file left
    monkeypatch.undo()
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o044  # readable by others, as a normal file would be


# ---- GitHub Actions -----------------------------------------------------------------------


def test_github_format_is_automatic_in_actions(write) -> None:
    path = write(ids_yaml(RIGHT, WRONG))
    r = invoke("check", path, env={"GITHUB_ACTIONS": "true"})
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines[0] == "::group::matgrad: 2 identities"
    (error,) = [x for x in lines if x.startswith("::error ")]
    assert error.startswith(f"::error file={path},line=3,title=matgrad FAIL%3A wrong-1 (grad X)::")
    assert "grad X mismatched on trial" in error
    r = invoke("check", path, "--format", "table", env={"GITHUB_ACTIONS": "true"})
    assert "::error" not in r.stdout and "┃ id" in r.stdout


def test_step_summary_is_appended(tmp_path: Path, write) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step output\n")
    path = write(ids_yaml(RIGHT, WRONG))
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    invoke("check", path, env=env)
    invoke("check", path, "-k", "right", env=env)
    text = summary.read_text()
    assert text.startswith("# earlier step output\n## ❌ matgrad: 1 of 2 identities")
    assert "## ✅ matgrad: all 1 identities met their expect" in text


def test_step_summary_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    env = {"GITHUB_STEP_SUMMARY": str(tmp_path / "missing" / "summary.md")}
    r = invoke("check", SEED, "-qq", env=env)
    assert r.exit_code == 0
    assert "warning: cannot append to GITHUB_STEP_SUMMARY" in r.stderr


# ---- shards, stopping early, verbosity, collect-only ---------------------------------------


def _collected(*args: str) -> list[str]:
    r = invoke("check", *args, "--collect-only", "-q")
    assert r.exit_code == 0, r.output
    return r.stdout.split()


def test_shards_split_the_library() -> None:
    lib = str(ROOT / "identities")
    everything = _collected(lib)
    shards = [_collected(lib, "--shard", f"{k}/3") for k in (1, 2, 3)]
    assert sorted(i for s in shards for i in s) == sorted(everything)
    assert sum(map(len, shards)) == len(everything)
    assert all(shards)
    assert _collected(lib, "--shard", "2/3") == shards[1]  # the same every time


def test_shard_runs_only_its_identities() -> None:
    r = invoke("check", SEED, "--shard", "1/2", "--format", "json")
    data = json.loads(r.stdout)
    ids = [x["id"] for x in data["results"]]
    assert ids == _collected(SEED, "--shard", "1/2") and 0 < len(ids) < 7
    assert data["shard"] == "1/2"


@pytest.mark.parametrize(
    ("shard", "message"),
    [("0/2", "shard 0/2: K/N needs 1 <= K <= N"), ("half", "'half': expected K/N")],
)
def test_bad_shard_is_a_usage_error(shard: str, message: str) -> None:
    r = invoke("check", SEED, "--shard", shard)
    assert r.exit_code == 2 and message in r.output


def test_empty_shard_passes_and_still_writes_reports(tmp_path: Path, write) -> None:
    path = write(ids_yaml(RIGHT))
    empty = next(f"{k}/4" for k in (1, 2, 3, 4) if not _collected(path, "--shard", f"{k}/4"))
    r = invoke("check", path, "--shard", empty, "--report", str(tmp_path / "r.xml"))
    assert r.exit_code == 0, r.output
    assert f"shard {empty} holds none of the 1 identities" in r.stderr
    SCHEMA.validate(str(tmp_path / "r.xml"))


def test_fail_fast_stops_at_the_first_failure(write) -> None:
    path = write(ids_yaml(RIGHT, WRONG, RIGHT, WRONG))
    r = invoke("check", path, "-x")
    assert r.exit_code == 1
    assert "wrong-1" in r.stdout and "right-2" not in r.stdout and "wrong-3" not in r.stdout
    assert (
        "1 passed, 1 failed, 0 xfailed, 0 xpassed, 0 errors in" in r.stdout
        and "stopped after 1 identity did not meet its expect (maxfail 1); 2 not run" in r.stdout
    )


def test_maxfail(write) -> None:
    path = write(ids_yaml(WRONG, RIGHT, WRONG, WRONG))
    r = invoke("check", path, "--maxfail", "2", "--format", "json")
    data = json.loads(r.stdout)
    assert [x["id"] for x in data["results"]] == ["wrong-0", "right-1", "wrong-2"]
    assert data["not_run"] == 1 and data["stopped"].startswith("stopped after 2 identities")
    assert invoke("check", path, "--maxfail", "0").exit_code == 2


def test_expected_failures_do_not_count_towards_maxfail(write) -> None:
    path = write(ids_yaml(XFAIL, XFAIL, WRONG, RIGHT))
    r = invoke("check", path, "-x", "--format", "json")
    assert [x["id"] for x in json.loads(r.stdout)["results"]] == ["xfail-0", "xfail-1", "wrong-2"]


def test_quiet_and_verbose(write) -> None:
    path = write(ids_yaml(RIGHT, WRONG))
    normal = invoke("check", path).stdout
    quiet = invoke("check", path, "-q").stdout
    very_quiet = invoke("check", path, "-qq").stdout
    verbose = invoke("check", path, "-v").stdout
    assert "┃ id" in normal and "FAIL wrong-1" in normal and "PASS right-0" not in normal
    assert "┃ id" not in quiet and "FAIL wrong-1" in quiet
    assert very_quiet.splitlines() == [very_quiet.strip()]
    assert very_quiet.startswith("1 passed, 1 failed, 0 xfailed, 0 xpassed, 0 errors in ")
    assert "PASS right-0" in verbose
    assert re.search(r"grad X: passed, max abs err \S+ \(\S+ of the tolerance, rtol=1e-06", verbose)


def test_collect_only(write) -> None:
    path = write(ids_yaml(RIGHT, WRONG))
    r = invoke("check", path, "--collect-only")
    assert r.exit_code == 0
    assert r.stdout == (
        f"{path}:2: right-0\n{path}:3: wrong-1\n2 identities in 1 files would run\n"
    )
    r = invoke("check", path, "--collect-only", "--format", "json")
    assert json.loads(r.stdout) == [
        {"id": "right-0", "file": path, "line": 2, "valid": True},
        {"id": "wrong-1", "file": path, "line": 3, "valid": True},
    ]


def test_collect_only_lists_unreadable_files(write, tmp_path: Path) -> None:
    write(ids_yaml(RIGHT), "a.yaml")
    write("identities: [", "b.yaml")
    r = invoke("check", str(tmp_path), "--collect-only")
    assert r.exit_code == 3
    lines = r.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'a.yaml'}:2: right-0"
    assert lines[1].startswith(f"{tmp_path / 'b.yaml'}:") and "(invalid: " in lines[1]


def test_collect_only_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom matgrad.cli import app\n"
        f"try:\n    app(['check', {SEED!r}, '--collect-only', '--shard', '1/2'])\n"
        "except SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH", r.stderr


# ---- user text end to end -----------------------------------------------------------------

HOSTILE_YAML = r"""
id: hostile
title: "Title <script>alert(1)</script> & | \"q\"\nline two\e[31m\a\0\u202e"
source: "=HYPERLINK(\"http://x\") <b>&amp;</b> | `x`"
latex: "\\frac{a}{b} \\text{<img src=x onerror=alert(1)>} & |"
dims: {n: 2}
vars: {X: [n, n]}
f: tr(X)
grad: {X: 2 * eye(n)}
"""


def test_user_text_survives_every_format(tmp_path: Path, write) -> None:
    path = write(HOSTILE_YAML, "odd <name> & |.yaml")
    files = {**REPORT_FILES, "github": "gh.log"}
    args = [a for fmt, n in files.items() for a in ("--report", f"{fmt}:{tmp_path / n}")]
    r = invoke("check", path, *args)
    assert r.exit_code == 1, r.output
    assert RAW_CONTROL.search(r.stdout) is None
    texts = {fmt: (tmp_path / n).read_text() for fmt, n in files.items()}
    for fmt, text in texts.items():
        assert RAW_CONTROL.search(text) is None, fmt
    title = "Title <script>alert(1)</script> & | \"q\"\nline two\x1b[31m\x07\x00\u202e"
    assert json.loads(texts["json"])["results"][0]["title"] == title
    SCHEMA.validate(texts["junit"])
    assert "<script" not in texts["html"] and "<img" not in texts["html"]
    assert "Title &lt;script&gt;alert(1)&lt;/script&gt; &amp; | &quot;q&quot;" in texts["html"]
    assert "line two\\x1b[31m\\x07\\x00\\u202e" in texts["html"]
    row = next(csv.DictReader(io.StringIO(texts["csv"])))
    assert row["title"] == title.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace(
        "\x00", "\\x00"
    ).replace("\u202e", "\\u202e")
    assert row["source"].startswith("'=HYPERLINK(")
    assert "odd \\<name\\> \\& \\|.yaml" in texts["markdown"]
    (error,) = [x for x in texts["github"].splitlines() if x.startswith("::error")]
    assert error.startswith(f"::error file={path},line=8,title=matgrad FAIL%3A hostile (grad X)::")


# ---- a real run, scrubbed, against golden files --------------------------------------------


def _scrub(text: str) -> str:
    from matgrad import __version__

    text = re.sub(r'(time=")[0-9.]+"', r'\1<t>"', text)
    text = re.sub(r"\b(in )[0-9.]+s\b", r"\1<t>s", text)
    text = re.sub(r"\| [0-9.]+ s \|", "| <t> s |", text)
    text = re.sub(r'(name="torch" value=")[^"]*"', r'\1<torch>"', text)
    text = re.sub(r"torch [^,\s]+", "torch <torch>", text)
    text = text.replace(__version__, "<version>")
    # float values depend on the BLAS build at the last digits; the layout does not
    return re.sub(r'(?<!version=")(?:-?\d+\.\d+(?:e[-+]\d+)?|\d+e[-+]\d+)', "<n>", text)


@pytest.mark.parametrize(("fmt", "name"), [("junit", "run.xml"), ("github", "run.github.txt"),
                                           ("markdown", "run.md")])
def test_real_run_golden(fmt: str, name: str, tmp_path: Path, write, golden, monkeypatch) -> None:
    write(ids_yaml(RIGHT, WRONG, XFAIL), "ids/a.yaml")
    write("identities: [", "ids/b.yaml")
    monkeypatch.chdir(tmp_path)
    r = invoke("check", "ids", "--format", fmt, "--seed", "3", "--device", "cpu")
    assert r.exit_code == 3
    golden(name, _scrub(r.stdout))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param(["--collect-only", "-q"], 0, id="collect-only"),
        pytest.param(["-k", "seed-trace"], 0, id="table"),
        pytest.param(["--format", "csv", "FAIL"], 1, id="csv-fail"),
    ],
)
def test_reader_that_leaves_early_keeps_the_verdict(args: list[str], code: int, tmp_path) -> None:
    # `matgrad check ... | head`: the pipe closes before matgrad writes; that is no bug, and
    # the exit code is still the verdict.
    paths = [SEED]
    if "FAIL" in args:
        args = [a for a in args if a != "FAIL"]
        wrong = tmp_path / "wrong.yaml"
        wrong.write_text(ids_yaml(WRONG))
        paths = [str(wrong)]
    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "matgrad", "check", *paths, *args],
            stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
    finally:
        os.close(write)
    assert r.returncode == code, r.stderr
    assert r.stderr == ""
