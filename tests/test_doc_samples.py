"""Every command sample in the docs runs, and prints what the docs show.

A sample is a line ``$ matgrad …`` or ``$ pytest …`` at the start of a line in a fenced block
of README.md or docs/*.md, and the lines after it up to the next ``$`` line or the end of the
block are its output. The output is compared after timings are blanked and table rules and
padding are collapsed (a time column's width follows the timings). A line ``...`` (or ``…``)
stands for any lines, and ``…`` inside a line for any text.

The files samples read are in docs/examples/: ``wrong.yaml`` and ``big.yaml`` are the files
the README names, ``pytest/`` the project of docs/pytest-plugin.md. ``pytest --update-golden``
rewrites a sample that has no ``...`` from the real output.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matgrad.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = ROOT / "docs" / "examples"

# Samples that cannot run as written, and why.
NOT_RUN = {
    ("configuration.md", "matgrad check"): "the project's pyproject.toml is a placeholder path",
}


@dataclass
class Sample:
    doc: Path
    line: int
    command: str
    shown: str

    @property
    def id(self) -> str:
        return f"{self.doc.name}:{self.line}"


def samples() -> list[Sample]:
    out = []
    fence = re.compile(r"^```[\w-]*\n(.*?)^```", re.S | re.M)
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in fence.finditer(text):
            start = text[: block.start(1)].count("\n") + 1
            lines = block.group(1).split("\n")[:-1]
            heads = [i for i, line in enumerate(lines) if line.startswith("$ ")]
            for n, i in enumerate(heads):
                command = lines[i][2:].split("  #")[0].strip()
                if not command.startswith(("matgrad ", "pytest ")) and command != "matgrad":
                    continue
                end = heads[n + 1] if n + 1 < len(heads) else len(lines)
                out.append(Sample(doc, start + i, command, "\n".join(lines[i + 1 : end])))
    return out


SAMPLES = samples()

_TIME = re.compile(r"\b\d+\.\d+( ?s)\b|\b\d+( ms)\b")
_BANNER = re.compile(r"([=_])\1+")  # pytest's rules widen and narrow with the timing
_RULE = re.compile(r"[━─]+")
_SPACES = re.compile(r" +")
_HEADER = ("platform ", "rootdir:", "plugins:", "configfile:", "cachedir:")


def normalize(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        line = _TIME.sub(lambda m: "T" + (m.group(1) or m.group(2)), line.rstrip())
        line = _BANNER.sub(r"\1\1", line)
        if line[:1] in "┏┃┡│└┌├┗┣":
            line = _SPACES.sub(" ", _RULE.sub("─", line))
        lines.append(line)
    return "\n".join(lines).strip("\n")


def _pattern(shown: str) -> re.Pattern[str]:
    parts = []
    for line in normalize(shown).split("\n"):
        if line.strip() in ("...", "…"):
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(p) for p in line.split("…")) + r"\n")
    return re.compile("".join(parts))


def _workspace(tmp: Path, doc: Path) -> Path:
    if doc.name == "pytest-plugin.md":
        shutil.copytree(EXAMPLES / "pytest", tmp / "project")
        return tmp / "project"
    work = tmp / "work"
    shutil.copytree(ROOT / "identities", work / "identities")
    shutil.copytree(EXAMPLES, work / "docs" / "examples")
    for name in ("wrong.yaml", "big.yaml"):
        shutil.copy(EXAMPLES / name, work / name)
    return work


def run(sample: Sample, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    argv = shlex.split(sample.command)
    if argv[0] == "pytest":
        # as a reader's terminal runs it: pytest prints whole summary lines on CI (CI or
        # BUILD_NUMBER set) and shortens them elsewhere
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith("PYTEST") and k not in ("CI", "BUILD_NUMBER")
        }
        env["PYTHONPATH"] = str(ROOT)
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
             *argv[1:]],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        out = r.stdout
        return "\n".join(line for line in out.split("\n") if not line.startswith(_HEADER))
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(app, argv[1:]).output


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.id for s in SAMPLES])
def test_the_sample_prints_what_the_docs_show(
    sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    reason = NOT_RUN.get((sample.doc.name, sample.command))
    if reason:
        pytest.skip(reason)
    actual = run(sample, _workspace(tmp_path, sample.doc), monkeypatch)
    if not sample.shown.strip():  # a command shown without its output: it must run
        assert "Traceback" not in actual and "internal error" not in actual, actual
        return
    got = normalize(actual) + "\n"
    if _pattern(sample.shown).fullmatch(got):
        return
    elided = any(line.strip() in ("...", "…") or "…" in line for line in sample.shown.split("\n"))
    if request.config.getoption("--update-golden") and not elided:
        rewrite(sample, actual)
        return
    assert got == normalize(sample.shown) + "\n", f"{sample.id}: {sample.command}"


def rewrite(sample: Sample, actual: str) -> None:
    """Put ``actual`` in the doc as the sample's output (the lines after its ``$`` line)."""
    lines = sample.doc.read_text(encoding="utf-8").split("\n")
    assert lines[sample.line - 1].startswith(f"$ {sample.command}"), sample.id
    fresh = [line.rstrip() for line in actual.strip("\n").split("\n")]
    shown = len(sample.shown.split("\n")) if sample.shown else 0
    lines[sample.line : sample.line + shown] = fresh
    sample.doc.write_text("\n".join(lines), encoding="utf-8")


def test_samples_are_found() -> None:
    docs = {s.doc.name for s in SAMPLES}
    assert {"README.md", "reports.md", "pytest-plugin.md", "limits.md", "diagnosis.md"} <= docs
