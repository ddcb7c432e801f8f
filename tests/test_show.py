"""`matgrad show`: one trial, side by side; and the show command printed by a failed check."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.engine.core import Settings, check_identity
from matgrad.engine.show import Matrix, view
from matgrad.errors import MatgradError
from matgrad.report.show import matrix_text, render
from matgrad.spec.schema import DEFAULT_TRIALS, Identity, load_text

ROOT = Path(__file__).resolve().parent.parent

WRONG = """
id: untransposed
title: "Wrong: X^-1 A X^-1 without the transpose"
source: Matrix Cookbook (2012) eq. 61
latex: '\\frac{\\partial}{\\partial X}\\operatorname{tr}(X^{-1}A) \\ne -X^{-1}AX^{-1}'
dims: {n: 3}
vars:
  X: {shape: [n, n], domain: invertible}
  A: {shape: [n, n]}
f: tr(inv(X) @ A)
grad: {X: "-inv(X) @ A @ inv(X)"}
"""


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def parsed(text: str) -> Identity:
    (ident,) = load_text(text, "t.yaml")
    assert isinstance(ident, Identity)
    return ident


def test_view_holds_one_trial_of_the_same_check() -> None:
    ident = parsed(WRONG)
    settings = Settings(seed=2)
    checked = check_identity(ident, settings, "cpu")
    worst = checked.claims[0].worst
    v = view(ident, settings, worst.trial, "cpu")
    assert (v.id, v.trial, v.trials, v.seed, v.status) == ("untransposed", worst.trial, DEFAULT_TRIALS, 2, "failed")
    assert [(name, domain, m.shape) for name, domain, m in v.variables] == [
        ("X", "invertible", [3, 3]),
        ("A", "real", [3, 3]),
    ]
    (c,) = v.claims
    assert c.hint.startswith("transposed: ")
    assert c.autograd.shape == c.claimed.shape == c.difference.shape == [3, 3]
    k = c.claimed.flat(worst.index)
    # The check's worst entry over all trials is this trial's worst entry.
    assert c.worst == worst.index
    assert c.autograd.values[k] == pytest.approx(worst.autograd)
    assert c.claimed.values[k] == pytest.approx(worst.claimed)
    assert c.difference.values == pytest.approx([b - a for a, b in zip(c.autograd.values, c.claimed.values, strict=True)])


def test_trial_out_of_range() -> None:
    n = DEFAULT_TRIALS
    with pytest.raises(MatgradError, match=rf"^--trial {n} is out of range: identity 'untransposed' has {n} trials \(0 to {n - 1}\)$"):
        view(parsed(WRONG), Settings(), n, "cpu")


def test_differential_shows_its_direction_and_fd_column() -> None:
    text = "id: d\nvars: {X: {shape: [2, 2], domain: invertible}}\nf: inv(X)\n" \
           "differential: {X: '-inv(X) @ dX @ inv(X)'}\n"
    v = view(parsed(text), Settings(witnesses=("fd",)), 1, "cpu")
    (c,) = v.claims
    assert c.direction is not None and c.direction.shape == [2, 2]
    assert c.fd is not None and c.fd.values == pytest.approx(c.autograd.values, abs=1e-7)
    assert c.agreement == "all agree"


def plain(renderables, width: int = 160) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, highlight=False)
    for r in renderables:
        console.print(r)
    return buf.getvalue()


def test_small_matrix_in_full_with_the_worst_entry_bracketed() -> None:
    m = Matrix([2, 2], [1.0, -2.5, 0.0, 1e-9])
    assert plain([matrix_text(m, [1, 0])]).splitlines() == [
        "     1   -2.5 ",
        "[    0] 1e-09 ",
    ]


def test_large_matrix_is_summarised_around_the_worst_entry() -> None:
    m = Matrix([20, 20], [float(i) for i in range(400)])
    lines = plain([matrix_text(m, [10, 19])]).splitlines()
    assert lines[0] == "20x20: min 0, max 399, norm 4610"
    assert lines[1] == "rows 7-12, cols 14-19:"
    assert len(lines) == 2 + 6
    assert lines[5].endswith("[219]")


def test_long_vector_is_summarised() -> None:
    m = Matrix([40], [float(i) for i in range(40)])
    lines = plain([matrix_text(m, [30])]).splitlines()
    assert lines[1] == "rows 27-32, cols 0-0:"
    assert "[30]" in lines[2 + 3]


def test_render_side_by_side_or_stacked() -> None:
    v = view(parsed(WRONG), Settings(), 0, "cpu")
    wide = plain(render(v, width=200), width=200)
    assert re.search(r"┃ autograd\s+┃ claimed\s+┃ claimed - autograd\s+┃", wide)
    narrow = plain(render(v, width=60), width=60)
    assert "┃ autograd" not in narrow
    assert "│ claimed - autograd │" in narrow


def test_cli_show(write) -> None:
    path = write(WRONG)
    r = invoke("show", "untransposed", path, "--trial", "4")
    assert r.exit_code == 0
    out = r.stdout
    assert out.startswith(f"untransposed  ({path}:1)\n")
    assert "  Wrong: X^-1 A X^-1 without the transpose\n" in out
    assert "  latex: \\frac{\\partial}{\\partial X}" in out
    assert "  source: Matrix Cookbook (2012) eq. 61\n" in out
    assert f"  seed 0, trial 4 of {DEFAULT_TRIALS} (0-based), float64\n" in out
    assert "X [3, 3]" in out and "invertible" in out
    assert "grad X  FAIL" in out
    assert "  hint: transposed: the claim equals the autograd value transposed" in out
    assert re.search(r"\[\s*-?[0-9.]+\]", out)  # the worst entry is bracketed
    assert re.search(r"  worst entry \[\d, \d\]: autograd ", out)
    assert out.rstrip().endswith("FAIL")


def test_cli_show_errors(write) -> None:
    path = write(WRONG)
    r = CliRunner().invoke(app, ["show", "untransposd", path])
    assert r.exit_code == 5
    assert " ".join(r.stderr.split()) == (
        f"error: no identity with id 'untransposd' in {path} (did you mean 'untransposed'?)"
    )
    n = DEFAULT_TRIALS
    r = CliRunner().invoke(app, ["show", "untransposed", path, "--trial", str(n)])
    assert r.exit_code == 2
    assert " ".join(r.stderr.split()) == (
        f"error: --trial {n} is out of range: identity 'untransposed' has {n} trials "
        f"(0 to {n - 1})"
    )
    bad = write("id: broken\nvars: {x: [2]}\nf: sum(x\ngrad: {x: x}\n", "bad.yaml")
    r = CliRunner().invoke(app, ["show", "broken", bad])
    assert r.exit_code == 3
    assert r.stdout.rstrip().endswith(
        "ERROR  " + bad + ":3: identity 'broken', key f: syntax error at column 4: '(' was never closed"
    )
    invalid = write("id: odd\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: x}\nwitness: [fd, fd]\n", "odd.yaml")
    r = CliRunner().invoke(app, ["show", "odd", invalid])
    assert r.exit_code == 3
    assert " ".join(r.stderr.split()) == (
        f"error: {invalid}:5:15: identity 'odd', key witness: witness 'fd' is listed twice"
    )


def test_check_prints_the_show_command_that_reproduces_the_failure(write) -> None:
    path = write(WRONG)
    r = invoke("check", path, "--seed", "3", "--trials", "7")
    assert r.exit_code == 1
    (line,) = [ln.strip() for ln in r.stdout.splitlines() if ln.strip().startswith("show: ")]
    cmd = line.removeprefix("show: ")
    m = re.fullmatch(rf"matgrad show untransposed {re.escape(shlex.quote(path))} --seed 3 --trial (\d) --trials 7", cmd)
    assert m, cmd
    # grad X mismatched on trial T at [i, j]: claimed C, autograd A (max abs err ...)
    wm = re.search(
        r"mismatched on trial (\d+) at \[(\d), (\d)\]: claimed (\S+), autograd (\S+) \(", r.stdout
    )
    assert wm and wm.group(1) == m.group(1)
    shown = invoke(*shlex.split(cmd)[1:])
    assert shown.exit_code == 0
    assert f"  seed 3, trial {m.group(1)} of 7 (0-based), float64" in shown.stdout
    sm = re.search(r"worst entry \[(\d), (\d)\]: autograd (\S+), claimed (\S+),", shown.stdout)
    assert sm and sm.groups()[:2] == wm.groups()[1:3]
    assert float(sm.group(3)) == pytest.approx(float(wm.group(5)), rel=1e-3)
    assert float(sm.group(4)) == pytest.approx(float(wm.group(4)), rel=1e-3)


def test_show_of_an_identity_in_the_current_folder(write, monkeypatch, tmp_path) -> None:
    write(WRONG)
    monkeypatch.chdir(tmp_path)
    assert invoke("show", "untransposed").exit_code == 0


def test_show_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom matgrad.cli import app\nimport matgrad.report.show, matgrad.engine.show\n"
        "try:\n    app(['show', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH", r.stderr
