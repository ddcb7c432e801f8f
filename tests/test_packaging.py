"""The package as PyPI would ship it: a wheel and an sdist whose metadata is complete, which
install into a fresh environment and run there.

With ``MATGRAD_DIST=DIR`` (``make dist``) the files built by ``python -m build`` in DIR are
tested; otherwise a wheel is built here with ``pip wheel`` and, where the ``build`` package is
installed, an sdist with ``python -m build --sdist``. ``twine check`` runs where twine is
installed (``make dist`` installs both).
"""

from __future__ import annotations

import email
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from test_ci_recipe import _environment, source_copy

ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("MATGRAD_DIST")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("dist")
    source = source_copy(tmp_path_factory.mktemp("src") / "matgrad")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
         cwd=out)
    if _installed("build"):
        _run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(source)],
             cwd=out)
    return out


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("matgrad-*.whl")
    return wheel


def test_the_wheel_carries_the_package_and_its_metadata(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist)) as z:
        names = set(z.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_string(z.read(info).decode("utf-8"))
        entry = z.read(info.replace("METADATA", "entry_points.txt")).decode("utf-8")
    assert {"matgrad/__init__.py", "matgrad/py.typed", "matgrad/report/formula.py"} <= names
    assert not any(n.startswith(("tests/", "identities/", "docs/")) for n in names)
    assert meta["Name"] == "matgrad" and meta["Requires-Python"] == ">=3.10"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "matgrad" in (meta.get_payload() or "")  # the README as the long description
    requires = " ".join(meta.get_all("Requires-Dist") or [])
    for dep in ("torch", "typer", "rich", "pyyaml", "latex2mathml"):
        assert dep in requires.lower(), dep
    assert meta.get_all("Classifier")
    assert "matgrad = matgrad.cli:main" in entry
    assert "matgrad.pytest_plugin = matgrad.pytest_plugin" in entry


def test_the_sdist_builds_the_same_package(dist: Path) -> None:
    sdists = list(dist.glob("matgrad-*.tar.gz"))
    if not sdists:
        pytest.skip("the build package is not installed (make dist installs it)")
    with tarfile.open(sdists[0]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "matgrad/__init__.py", "matgrad/py.typed"} <= names


def test_twine_accepts_the_files(dist: Path) -> None:
    if not _installed("twine"):
        pytest.skip("twine is not installed (make dist installs it)")
    files = [str(p) for p in sorted(dist.iterdir()) if p.suffix in (".whl", ".gz")]
    out = _run([sys.executable, "-m", "twine", "check", "--strict", *files], cwd=dist)
    assert out.count("PASSED") == len(files)


def test_the_wheel_installs_and_runs_in_a_fresh_environment(dist: Path, tmp_path: Path) -> None:
    bindir = _environment(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    _run([str(bindir / "python"), "-m", "pip", "install", "-q", str(_wheel(dist))], tmp_path, env)
    seed = str(ROOT / "identities" / "seed.yaml")
    where = _run([str(bindir / "python"), "-c", "import matgrad; print(matgrad.__file__)"],
                 tmp_path, env)
    assert where.startswith(str(tmp_path / "venv")), where
    out = _run([str(bindir / "matgrad"), "check", seed, "-qq"], tmp_path, env)
    assert out.startswith("3 passed, 0 failed, 4 xfailed")
    assert "are valid" in _run([str(bindir / "matgrad"), "validate", seed], tmp_path, env)
