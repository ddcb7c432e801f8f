"""docs/ci.md's GitHub workflow, run for real in someone else's repository: a scratch git
repository outside the project, a fresh virtual environment, the workflow's shell steps as
written (the install lines with matgrad taken from this checkout instead of its git URL), and
the gate closing on a wrong identity.

torch is not downloaded: the fresh environment sees the packages of the environment running
the tests (matgrad's own left out), as a CPU runner would after the documented torch line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CI_DOC = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
WORKFLOW = next(
    b
    for b in (yaml.safe_load(x) for x in re.findall(r"^```yaml\n(.*?)^```", CI_DOC, re.S | re.M))
    if isinstance(b, dict) and "jobs" in b
)
(JOB,) = WORKFLOW["jobs"].values()
STEPS = {s.get("name"): s for s in JOB["steps"]}
MATGRAD_URL = re.compile(r'"matgrad @ git\+https://github\.com/OWNER/matgrad@v[\d.]+"')
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"

WRONG = """\
identities:
  - id: paper-eq-3
    title: The gradient of tr(AX), with the transpose dropped
    dims: {n: 3}
    vars:
      A: {shape: [n, n]}
      X: {shape: [n, n]}
    f: tr(A @ X)
    grad:
      X: A
"""


def _sh(script: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=A Student", "-c", "user.email=student@example.org", *args],
        cwd=repo, check=True, capture_output=True,
    )


def source_copy(where: Path) -> Path:
    """This checkout's source tree, copied: pip and setuptools build in the tree they get."""
    shutil.copytree(
        ROOT, where, symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
            "artifacts", ".hypothesis",
        ),
    )
    return where


def _environment(where: Path) -> Path:
    """A fresh virtual environment that sees this environment's packages but not matgrad."""
    venv.create(where, with_pip=True)
    overlay = where / "overlay"
    overlay.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name.lower()
        if "matgrad" in name or name.endswith(".pth") or name.startswith(("pip", "__pycache__")):
            continue
        (overlay / entry.name).symlink_to(entry)
    (Path(sysconfig.get_paths(vars={"base": str(where), "platbase": str(where)})["purelib"])
     / "overlay.pth").write_text(str(overlay) + "\n")
    return where / "bin"


@pytest.mark.skipif(shutil.which("git") is None or sys.platform == "win32", reason="needs git")
def test_the_github_recipe_gates_a_repository_of_its_own(tmp_path: Path) -> None:
    paper = tmp_path / "paper"
    (paper / "identities").mkdir(parents=True)
    (paper / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "identities" / "seed.yaml", paper / "identities" / "seed.yaml")
    (paper / ".github" / "workflows" / "identities.yml").write_text(
        yaml.safe_dump(WORKFLOW), encoding="utf-8"
    )
    _git(paper, "init", "-q")
    _git(paper, "add", ".")
    _git(paper, "commit", "-q", "-m", "identities of the paper")
    bindir = _environment(tmp_path / "venv")
    # an empty package index stands in for torch's CPU index: torch is already there
    (tmp_path / "cpu-index").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))},
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    # the cache is keyed on the workflow file the recipe tells the user to create
    setup = next(s for s in JOB["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    assert (paper / setup["with"]["cache-dependency-path"]).is_file()

    install = STEPS["Install matgrad"]["run"]
    assert TORCH_INDEX in install and MATGRAD_URL.search(install), install
    source = source_copy(tmp_path / "matgrad-src")
    install = MATGRAD_URL.sub(f'"matgrad @ {source.as_uri()}"', install)
    install = install.replace(TORCH_INDEX, (tmp_path / "cpu-index").as_uri())
    done = _sh(install, paper, env)
    assert done.returncode == 0, done.stdout + done.stderr
    where = _sh("python -c 'import matgrad, torch; print(matgrad.__file__)'", paper, env)
    assert where.stdout.strip().startswith(str(tmp_path / "venv")), where.stdout + where.stderr

    def check() -> list[subprocess.CompletedProcess[str]]:
        script = STEPS["Check the identities"]["run"]
        return [
            _sh(script.replace("${{ matrix.shard }}", str(k)), paper, env) for k in (1, 2, 3, 4)
        ]

    runs = check()
    assert [r.returncode for r in runs] == [0, 0, 0, 0], [r.stdout + r.stderr for r in runs]
    assert all(r.stdout.startswith("::group::matgrad: ") for r in runs)
    for k in (1, 2, 3, 4):
        assert (paper / "reports" / f"matgrad-{k}.xml").is_file()
        assert (paper / "reports" / f"matgrad-{k}.html").is_file()

    # a co-author pushes a wrong gradient: the gate closes, on the line of the claim
    (paper / "identities" / "eq3.yaml").write_text(WRONG, encoding="utf-8")
    _git(paper, "add", ".")
    _git(paper, "commit", "-q", "-m", "eq. 3")
    runs = check()
    assert sorted(r.returncode for r in runs) == [0, 0, 0, 1], [r.stdout + r.stderr for r in runs]
    (failed,) = [r for r in runs if r.returncode == 1]
    assert "::error file=identities/eq3.yaml,line=10," in failed.stdout, failed.stdout
