"""docs/ci.md and .pre-commit-hooks.yaml: every YAML block parses and has the shape its CI
system wants, and every matgrad command in them runs as written."""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema
import yaml
from typer.testing import CliRunner

from matgrad.cli import app

ROOT = Path(__file__).resolve().parent.parent
CI_DOC = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
SCHEMA = xmlschema.XMLSchema10(str(ROOT / "tests" / "junit-10.xsd"))


def yaml_blocks(text: str) -> list[Any]:
    return [yaml.safe_load(b) for b in re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M)]


BLOCKS = yaml_blocks(CI_DOC)
WORKFLOW = next(b for b in BLOCKS if isinstance(b, dict) and "jobs" in b)
GITLAB = next(b for b in BLOCKS if isinstance(b, dict) and "matgrad" in b)
PRE_COMMIT = [b for b in BLOCKS if isinstance(b, dict) and "repos" in b]


def test_every_yaml_block_is_accounted_for() -> None:
    assert len(BLOCKS) == 4 and len(PRE_COMMIT) == 2


def run_lines(lines: list[str], cwd: Path, env: dict[str, str], monkeypatch) -> list[Any]:
    """Run a CI script's lines as the runner would: mkdir, and matgrad through the CLI."""
    monkeypatch.chdir(cwd)
    results = []
    for line in lines:
        argv = shlex.split(line)
        if not argv or argv[0] == "python":  # pip installs: the test runs the code in place
            continue
        if argv[:2] == ["mkdir", "-p"]:
            for d in argv[2:]:
                (cwd / d).mkdir(parents=True, exist_ok=True)
            continue
        assert argv[0] == "matgrad", line
        # -k seed- keeps the run quick; the options are the documented ones
        r = CliRunner().invoke(app, [*argv[1:], "-k", "seed-"], env=env)
        results.append(r)
    return results


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "identities").symlink_to(ROOT / "identities")
    return tmp_path


# ---- GitHub Actions -----------------------------------------------------------------------


def test_github_workflow_shape() -> None:
    assert set(WORKFLOW) == {"name", True, "jobs"}  # YAML 1.1 reads the key `on` as True
    assert set(WORKFLOW[True]) == {"push", "pull_request"}
    (job,) = WORKFLOW["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    for step in job["steps"]:
        assert ("uses" in step) != ("run" in step), step
        if "uses" in step:
            assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), step["uses"]


def _workflow_script(shard: int) -> list[str]:
    (job,) = WORKFLOW["jobs"].values()
    (check,) = [s for s in job["steps"] if s.get("name") == "Check the identities"]
    return check["run"].replace("${{ matrix.shard }}", str(shard)).splitlines()


def test_github_workflow_runs(workspace: Path, monkeypatch) -> None:
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(workspace / "summary.md")}
    seen = []
    for shard in (1, 2, 3, 4):
        (r,) = run_lines(_workflow_script(shard), workspace, env, monkeypatch)
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith("::group::matgrad: ")  # annotations format in Actions
        xml = (workspace / "reports" / f"matgrad-{shard}.xml").read_text()
        SCHEMA.validate(xml)
        seen += [c.get("name") for c in ET.fromstring(xml).iter("testcase")]
        data = json.loads((workspace / "reports" / f"matgrad-{shard}.json").read_text())
        assert data["shard"] == f"{shard}/4"
        assert (workspace / "reports" / f"matgrad-{shard}.html").is_file()
    # the four shards together checked each selected identity once
    assert sorted(seen) == sorted(
        i for i in _collect("identities/", "-k", "seed-", cwd=workspace, monkeypatch=monkeypatch)
    )
    assert (workspace / "summary.md").read_text().count("## ✅ matgrad") == 4
    (job,) = WORKFLOW["jobs"].values()
    publish = next(s for s in job["steps"] if "action-junit-report" in s.get("uses", ""))
    assert publish["with"]["report_paths"] == "reports/matgrad-*.xml"
    upload = next(s for s in job["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "reports/"


def _collect(*args: str, cwd: Path, monkeypatch) -> list[str]:
    monkeypatch.chdir(cwd)
    r = CliRunner().invoke(app, ["check", *args, "--collect-only", "-q"])
    assert r.exit_code == 0, r.output
    return r.stdout.split()


# ---- GitLab CI ----------------------------------------------------------------------------


def test_gitlab_job_shape() -> None:
    job = GITLAB["matgrad"]
    assert job["parallel"] == 4 and isinstance(job["script"], list)
    assert job["artifacts"]["when"] == "always"
    junit = job["artifacts"]["reports"]["junit"]
    (check,) = [line for line in job["script"] if line.startswith("matgrad ")]
    assert f"--report junit:{junit}" in check
    assert any(p.rstrip("/") == str(Path(junit).parent) for p in job["artifacts"]["paths"])


def test_gitlab_job_runs(workspace: Path, monkeypatch) -> None:
    job = GITLAB["matgrad"]
    seen = []
    for k in (1, 2, 3, 4):
        env = {"CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": "4"}
        lines = [
            line.replace("$CI_NODE_INDEX", env["CI_NODE_INDEX"]).replace(
                "$CI_NODE_TOTAL", env["CI_NODE_TOTAL"]
            )
            for line in job["script"]
        ]
        (r,) = run_lines(lines, workspace, {"GITHUB_ACTIONS": "", "GITHUB_STEP_SUMMARY": ""},
                         monkeypatch)
        assert r.exit_code == 0, r.output
        xml = (workspace / job["artifacts"]["reports"]["junit"]).read_text()
        SCHEMA.validate(xml)
        seen += [c.get("name") for c in ET.fromstring(xml).iter("testcase")]
    assert sorted(seen) == sorted(
        _collect("identities/", "-k", "seed-", cwd=workspace, monkeypatch=monkeypatch)
    )


# ---- pre-commit ---------------------------------------------------------------------------

# pre-commit's manifest schema (pre_commit/clientlib.py MANIFEST_HOOK_DICT): key -> type.
HOOK_REQUIRED = {"id": str, "name": str, "entry": str, "language": str}
HOOK_OPTIONAL = {
    "alias": str, "files": str, "exclude": str, "types": list, "types_or": list,
    "exclude_types": list, "additional_dependencies": list, "args": list, "always_run": bool,
    "fail_fast": bool, "pass_filenames": bool, "description": str, "language_version": str,
    "log_file": str, "minimum_pre_commit_version": str, "require_serial": bool, "stages": list,
    "verbose": bool,
}
LANGUAGES = {"python", "system", "unsupported"}


def check_hook(hook: dict[str, Any]) -> None:
    for key, typ in HOOK_REQUIRED.items():
        assert isinstance(hook.get(key), typ), (hook, key)
    for key, value in hook.items():
        assert key in HOOK_REQUIRED or key in HOOK_OPTIONAL, key
        assert isinstance(value, {**HOOK_REQUIRED, **HOOK_OPTIONAL}[key]), key
    assert hook["language"] in LANGUAGES
    re.compile(hook.get("files", ""))


PUBLISHED = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))


def test_published_hooks_follow_the_manifest_schema() -> None:
    assert [h["id"] for h in PUBLISHED] == ["matgrad", "matgrad-validate"]
    for hook in PUBLISHED:
        check_hook(hook)


@pytest.mark.parametrize(
    ("path", "matched"),
    [
        ("identities/seed.yaml", True),
        ("identities/cookbook/norms.yml", True),
        ("identities/notes.md", False),
        ("tests/identities/x.yaml", False),
        ("pyproject.yaml.bak", False),
    ],
)
def test_hooks_pick_identity_files(path: str, matched: bool) -> None:
    for hook in PUBLISHED:
        assert bool(re.search(hook["files"], path)) is matched


@pytest.mark.parametrize("hook", PUBLISHED, ids=lambda h: h["id"])
def test_hook_entries_run(hook: dict[str, Any], monkeypatch) -> None:
    # pre-commit runs `entry` with the matching staged files appended
    monkeypatch.chdir(ROOT)
    argv = shlex.split(hook["entry"])
    assert argv[0] == "matgrad"
    r = CliRunner().invoke(app, [*argv[1:], "identities/seed.yaml"])
    assert r.exit_code == 0, r.output


def test_pre_commit_config_blocks() -> None:
    remote, local = PRE_COMMIT
    (repo,) = remote["repos"]
    assert set(repo) == {"repo", "rev", "hooks"}
    assert {h["id"] for h in repo["hooks"]} <= {h["id"] for h in PUBLISHED}
    (repo,) = local["repos"]
    assert repo["repo"] == "local" and set(repo) == {"repo", "hooks"}
    (hook,) = repo["hooks"]
    check_hook(hook)
    published = PUBLISHED[0]
    assert {k: hook[k] for k in ("id", "entry", "files")} == {
        k: published[k] for k in ("id", "entry", "files")
    }


# ---- docs/reports.md ----------------------------------------------------------------------

REPORTS_DOC = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")


def test_reports_doc_lists_every_format_and_extension() -> None:
    from matgrad.report import EXTENSIONS, FORMATS

    rows = re.findall(r"^\| [\w ]+ \| `(\w+)`.*?\| (`\.\w+`|—) \|", REPORTS_DOC, re.M)
    assert [fmt for fmt, _ in rows] == list(FORMATS)
    for fmt, ext in rows:
        if ext != "—":
            assert EXTENSIONS[ext.strip("`")] == fmt


def test_reports_doc_csv_header_is_current() -> None:
    from matgrad.report.csv import COLUMNS

    assert ",".join(COLUMNS) + "\n" in REPORTS_DOC
