from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.errors import MatgradError
from matgrad.spec.scaffold import template
from matgrad.spec.schema import load_text, validate

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    ("flags", "claim"),
    [
        pytest.param([], "grad X", id="default"),
        pytest.param(["--grad", "W"], "grad W", id="grad"),
        pytest.param(["--differential", "X"], "differential X", id="differential"),
        pytest.param(["--hessian", "x"], "hessian x", id="hessian"),
        pytest.param(["--grad", "A"], "grad A", id="grad-named-like-the-other-variable"),
        pytest.param(["--differential", "n"], "differential n", id="named-like-the-dim"),
        pytest.param(["--hessian", "on"], "hessian on", id="yaml-boolean-word"),
        pytest.param(["--grad", "dA"], "grad dA", id="named-like-a-direction"),
    ],
)
def test_new_writes_a_file_that_validates_and_checks(tmp_path, flags, claim) -> None:
    out = tmp_path / "ident.yaml"
    r = invoke("new", "my-identity", *flags, "-o", str(out))
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    assert f"wrote {out}" in " ".join(r.stderr.split())
    text = out.read_text()
    assert text.startswith("# my-identity: a matrix-calculus identity for matgrad")
    assert f"matgrad check {out}" in text
    (ident,) = load_text(text, str(out))
    assert [c.label for c in ident.claims] == [claim]
    assert validate([ident]) == [(ident, None)]
    r = invoke("check", str(out), "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["summary"]["passed"] == 1


def test_new_prints_to_stdout() -> None:
    r = invoke("new", "trace-of-product")
    assert r.exit_code == 0
    assert r.stdout == template("trace-of-product")
    assert "id: trace-of-product\n" in r.stdout
    assert "# expect: fail" in r.stdout  # optional keys are shown, commented out


def test_new_refuses_to_overwrite(tmp_path) -> None:
    out = tmp_path / "x.yaml"
    out.write_text("keep me")
    r = invoke("new", "x", "-o", str(out))
    assert r.exit_code == 2
    assert "already exists (use --force to overwrite it)" in r.output
    assert out.read_text() == "keep me"
    assert invoke("new", "x", "-o", str(out), "--force").exit_code == 0
    assert out.read_text().startswith("# x: ")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(["Bad Id"], 2, "error: id 'Bad Id' must match [a-z0-9][a-z0-9._-]* (lowercase, no spaces)", id="bad-id"),
        pytest.param(["x", "--grad", "x y"], 2, "error: variable name 'x y' is not a valid name (ASCII letters, digits and _, not starting with a digit)", id="bad-name"),
        pytest.param(["x", "--grad", "lambda"], 2, "error: variable name 'lambda' is not a valid name", id="keyword"),
        pytest.param(["x", "--hessian", "tr"], 2, "error: cannot make a template for variable 'tr': variable name 'tr' shadows the function tr(); rename it", id="function-name"),
        pytest.param(["x", "--grad", "X", "--hessian", "x"], 2, "use only one of --grad, --differential, --hessian", id="two-kinds"),
    ],
)
def test_new_errors(args, code, message) -> None:
    r = invoke("new", *args)
    assert r.exit_code == code
    assert message in " ".join(r.output.split())


def test_new_cannot_write_into_a_missing_folder(tmp_path) -> None:
    r = invoke("new", "x", "-o", str(tmp_path / "missing" / "x.yaml"))
    assert r.exit_code == 2
    assert "cannot write" in r.output


def test_template_rejects_unknown_kind() -> None:
    with pytest.raises(MatgradError, match="unknown claim kind 'tensor'"):
        template("x", "tensor")


def test_new_does_not_import_torch(tmp_path) -> None:
    code = (
        "import sys\nfrom matgrad.cli import app\n"
        f"try:\n    app(['new', 'x', '-o', {str(tmp_path / 'x.yaml')!r}])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH", r.stderr


def test_the_template_points_to_docs_that_exist() -> None:
    docs = re.findall(r"docs/[\w./-]+\.md", template("a-new-one"))
    assert docs
    assert [d for d in docs if not (ROOT / d).is_file()] == []
