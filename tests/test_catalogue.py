from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from matgrad.cli import app

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "identities" / "seed.yaml")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


CATALOGUE = """
identities:
  - id: trace-linear
    title: Gradient of tr(AX)
    source: Matrix Cookbook (2012) eq. 100
    dims: {n: 3}
    vars: {X: [n, n], A: [n, n]}
    f: tr(A @ X)
    grad: {X: A.T, A: X.T}
  - id: trace-linear-untransposed
    title: "Wrong: A instead of A^T"
    dims: {n: 3}
    vars: {X: [n, n], A: [n, n]}
    f: tr(A @ X)
    grad: {X: A}
    expect: fail
"""

TABLE = """\
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━┓
┃ id                        ┃ title                   ┃ source                         ┃ claims                ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━┩
│ trace-linear              │ Gradient of tr(AX)      │ Matrix Cookbook (2012) eq. 100 │ grad X, grad A        │
│ trace-linear-untransposed │ Wrong: A instead of A^T │                                │ grad X (expect: fail) │
└───────────────────────────┴─────────────────────────┴────────────────────────────────┴───────────────────────┘
2 identities, 3 claims, in 1 files
"""


def test_list_table(write) -> None:
    r = invoke("list", write(CATALOGUE))
    assert r.exit_code == 0, r.output
    assert r.stdout == TABLE
    r = invoke("list", write(CATALOGUE), "-k", "untransposed")
    assert "trace-linear-untransposed" in r.stdout and "Gradient of tr(AX)" not in r.stdout


def test_list_filter_and_json() -> None:
    r = invoke("list", SEED, "-k", "seed-trace-inverse", "--format", "json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert [d["id"] for d in data] == [
        "seed-trace-inverse",
        "seed-trace-inverse-sign",
        "seed-trace-inverse-untransposed",
    ]
    first = data[0]
    assert set(first) == {"id", "title", "source", "claims", "expect", "file", "line"}
    assert first["claims"] == [{"kind": "grad", "var": "X", "expr": "-inv(X).T @ A.T @ inv(X).T"}]
    assert first["title"] == "Gradient of tr(X^-1 A)"
    assert first["expect"] == "pass" and data[1]["expect"] == "fail"
    assert first["file"] == SEED and isinstance(first["line"], int)


def test_list_reports_invalid_files(write) -> None:
    write("id: good\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\n", "a.yaml")
    path = write("id: bad\nvars: {x: [2]}\nf: sum(x)\n", "b.yaml")
    r = invoke("list", str(Path(path).parent), "--format", "json")
    assert r.exit_code == 3
    assert [d["id"] for d in json.loads(r.stdout)] == ["good"]
    assert "invalid" in r.stderr and "identity 'bad'" in r.stderr
    assert "no claim: add at least one of grad:" in " ".join(r.stderr.split())


def test_list_nothing_found(tmp_path) -> None:
    r = invoke("list", str(tmp_path))
    assert r.exit_code == 5
    assert "no identity found" in r.stderr


def test_list_uses_configured_paths(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the repository's pyproject.toml: paths = ["identities"]
    r = invoke("list", "--format", "json", "-k", "seed-")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)) == 7


def test_list_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom matgrad.cli import app\n"
        "try:\n    app(['list', 'identities'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH", r.stderr
