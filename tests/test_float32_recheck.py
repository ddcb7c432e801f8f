"""A claim that fails in float32 is checked again in float64 on the same draw: a claim that
holds there failed by rounding (a pass, with a note that gives both errors); one that fails
there too is a failure with both figures. With that, float32's own tolerance is tight."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import matgrad
from matgrad.cli import app
from matgrad.engine import core
from matgrad.report import FORMATS, renderer
from matgrad.settings import CONFIRM_DTYPE, DEFAULT_TOL, Settings, resolve

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "identities"

# Right and wrong, and both fail in float32: autograd adds 5e4 and -5e4 to the gradient 2x,
# which float32 rounds to a few 1e-3 (an error of 1e-1 relative on small entries). float64
# rounds it to 1e-11.
CANCEL = textwrap.dedent(
    """\
    identities:
      - id: cancel
        dims: {n: 3}
        vars:
          x: {shape: [n, 1]}
        f: "5e4 * sum(x) + x.T @ x - 5e4 * sum(x)"
        grad:
          x: "2 * x"
      - id: cancel-wrong
        dims: {n: 3}
        vars:
          x: {shape: [n, 1]}
        f: "5e4 * sum(x) + x.T @ x - 5e4 * sum(x)"
        grad:
          x: "2.01 * x"
        expect: fail
    """
)


@pytest.fixture()
def cancel(tmp_path: Path) -> Path:
    path = tmp_path / "cancel.yaml"
    path.write_text(CANCEL, encoding="utf-8")
    return path


def one(path: Path, ident: str, **settings: object) -> matgrad.IdentityResult:
    report = matgrad.check(path, select=[ident], **settings)  # type: ignore[arg-type]
    (result,) = [r for r in report.results if r.id == ident]
    return result


def test_a_float32_failure_that_holds_in_float64_passes_with_a_note(cancel: Path) -> None:
    r = one(cancel, "cancel", dtype="float32")
    assert r.status == "passed", r.message
    (c,) = r.claims
    assert c.recheck is not None and c.recheck.holds
    assert c.recheck.dtype == "float32" and c.recheck.float64_status == "passed"
    # the float32 figures fail their tolerance, the float64 ones pass theirs
    assert c.recheck.max_ratio is not None and c.recheck.max_ratio > 1
    assert c.recheck.float64_max_ratio is not None and c.recheck.float64_max_ratio <= 1
    assert c.recheck.max_abs_err is not None and c.recheck.float64_max_abs_err is not None
    assert c.recheck.float64_max_abs_err < c.recheck.max_abs_err
    assert (c.recheck.rtol, c.recheck.atol) == DEFAULT_TOL["float32"]
    assert (c.rtol, c.atol) == DEFAULT_TOL["float64"]  # the verdict's own figures: float64
    assert c.max_abs_err == c.recheck.float64_max_abs_err
    assert c.note is not None
    assert "failed in float32 (max abs err" in c.note
    assert "holds in float64 on the same draw (max abs err" in c.note
    assert c.note.startswith("grad x failed in float32 (max abs err ")  # as docs/reports.md
    assert c.note.endswith("): the float32 failure is rounding")


def test_a_float32_failure_that_fails_in_float64_is_a_failure_with_both_figures(
    cancel: Path,
) -> None:
    r = one(cancel, "cancel-wrong", dtype="float32")
    assert r.status == "xfailed"
    (c,) = r.claims
    assert c.status == "failed"
    assert c.recheck is not None and not c.recheck.holds
    assert c.recheck.float64_status == "failed"
    assert c.note is None
    f32, f64 = c.recheck.max_abs_err, c.recheck.float64_max_abs_err
    assert f32 is not None and f64 is not None
    # the mismatch quotes the trial it names (its figures "on that trial"); the float64
    # re-check's figures follow
    assert c.message.startswith(f"grad x mismatched on trial {c.worst.trial} ")
    assert " on that trial); " in c.message
    assert f"in float64 on the same draw it fails too (max abs err {f64:.3g}" in c.message


def test_the_float64_figures_are_those_of_a_float64_run_of_the_same_seed(cancel: Path) -> None:
    for seed in range(3):
        r32 = one(cancel, "cancel-wrong", dtype="float32", seed=seed)
        r64 = one(cancel, "cancel-wrong", dtype="float64", seed=seed)
        recheck = r32.claims[0].recheck
        assert recheck is not None
        assert recheck.float64_max_abs_err == r64.claims[0].max_abs_err
        assert recheck.float64_max_ratio == r64.claims[0].max_ratio


def test_the_recheck_uses_the_draw_of_the_float32_check_redraws_included(
    cancel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A guard that always takes a redraw: the float64 re-check must start from that redraw
    # (not from the first draw, and without asking the guard again).
    calls = []

    def guard(compiled: object, draw: object, redraw, dtype: str, tally: object = None) -> object:  # type: ignore[no-untyped-def]
        calls.append(dtype)
        return redraw(7)

    monkeypatch.setattr(core.degeneracy, "guard", guard)
    r32 = one(cancel, "cancel-wrong", dtype="float32")
    assert calls == ["float32"]
    r64 = one(cancel, "cancel-wrong", dtype="float64")
    recheck = r32.claims[0].recheck
    assert recheck is not None
    assert recheck.float64_max_abs_err == r64.claims[0].max_abs_err
    monkeypatch.undo()
    unguarded = one(cancel, "cancel-wrong", dtype="float64")
    assert unguarded.claims[0].max_abs_err != recheck.float64_max_abs_err


def test_float64_runs_are_not_rechecked(cancel: Path) -> None:
    r = one(cancel, "cancel-wrong", dtype="float64")
    assert r.claims[0].recheck is None and r.claims[0].note is None


# ---- the cases ---------------------------------------------------------------------


def test_cookbook_eq48_passes_at_1000_float32_trials() -> None:
    # Cancellation of terms of size 5e4: with the old float32 rule (rtol 2e-3, atol 1e-4, no
    # re-check) seed 11 failed. Now it passes, as on seeds 0..99 (measured; here 0..9).
    for seed in [11, *range(10)]:
        r = one(LIBRARY, "cb-det-general-second", dtype="float32", trials=1000, seed=seed)
        assert r.status == "passed", (seed, r.message)


# The seeds of 0..4999 where the old float32 rule passed this wrong identity at one trial.
RAYLEIGH_OLD_FALSE_PASSES = [1024, 1142, 1822, 2001, 2014, 4097]


def test_the_wrong_rayleigh_gradient_is_rejected_in_float32_at_one_trial() -> None:
    # x^T B B x for x^T B^T B x: at one trial the two are close on a few draws. Rejected on
    # every seed of 0..4999 (measured; docs/configuration.md); here 0..49 and the six seeds
    # the old float32 tolerance let through.
    for seed in [*RAYLEIGH_OLD_FALSE_PASSES, *range(50)]:
        r = one(LIBRARY, "cb-formh-rayleigh-as-printed", dtype="float32", trials=1, seed=seed)
        assert r.status == "xfailed", (seed, r.status, r.message)


def test_the_library_in_float32_at_1000_trials_has_no_false_verdict() -> None:
    # Every expect: pass identity passes, every expect: fail one is still rejected.
    # About 5-10 s here; seeds 0-9 are in docs/configuration.md.
    report = matgrad.check(LIBRARY, dtype="float32", trials=1000, seed=0)
    wrong = [(r.id, r.status, r.message) for r in report.results if not r.ok]
    assert wrong == []
    assert report.summary["xfailed"] >= 41 and report.summary["passed"] >= 183


# ---- settings, the warning, the reports -----------------------------------------------------


def test_tolerances_in_float64_keep_what_was_set() -> None:
    assert Settings(dtype="float32").tolerances_in(CONFIRM_DTYPE) == DEFAULT_TOL["float64"]
    assert Settings(dtype="float32", rtol=1e-3).tolerances_in(CONFIRM_DTYPE) == (
        1e-3,
        DEFAULT_TOL["float64"][1],
    )
    assert Settings(dtype="float64", atol=0.0).tolerances_in("float64") == (
        DEFAULT_TOL["float64"][0],
        0.0,
    )


def test_an_identity_tol_applies_to_the_recheck_too(tmp_path: Path) -> None:
    # A tol that the float64 error also exceeds: the identity's tol, not the float64 default,
    # decides the re-check.
    path = tmp_path / "tol.yaml"
    path.write_text(
        CANCEL.replace('x: "2.01 * x"', 'x: "2.01 * x"\n    tol: {rtol: 0.1, atol: 0.1}'),
        encoding="utf-8",
    )
    r = one(path, "cancel-wrong", dtype="float64")
    assert r.status == "xpassed"  # the loose tol passes it in float64 ...
    r = one(path, "cancel-wrong", dtype="float32")
    assert r.status == "xpassed"  # ... and in float32


def test_the_float32_warning_states_the_tolerances_in_force() -> None:
    runner = CliRunner()
    seed = str(LIBRARY / "seed.yaml")
    r = runner.invoke(app, ["check", seed, "--dtype", "float32", "--rtol", "0.001", "-qq"])
    assert "rtol=0.001" in r.stderr and "2e-3" not in r.stderr
    assert "checked again in float64 on the same draw" in r.stderr
    rtol, atol = DEFAULT_TOL["float32"]
    r = runner.invoke(app, ["check", seed, "--dtype", "float32", "-qq"])
    assert f"rtol={rtol:g} atol={atol:g}" in r.stderr
    r = runner.invoke(app, ["check", seed, "-qq"])
    assert "warning" not in r.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_shows_the_note(cancel: Path, fmt: str) -> None:
    report = matgrad.check(cancel, dtype="float32")
    note = report.results[0].claims[0].note
    assert note is not None
    text = renderer(fmt)(report)
    assert "holds in float64 on the same draw" in text
    if fmt == "json":
        claim = json.loads(text)["results"][0]["claims"][0]
        assert claim["note"] == note
        assert claim["recheck"]["float64_status"] == "passed"


def test_the_terminal_summary_counts_the_rechecks(cancel: Path) -> None:
    r = CliRunner().invoke(app, ["check", str(cancel), "--dtype", "float32", "-qq"])
    assert (
        "2 claims failed in float32 and were checked again in float64 on the same draw: "
        "1 held (rounding), 1 did not"
    ) in r.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_float32_failures_are_rechecked_in_cuda_float64(cancel: Path) -> None:
    right = one(cancel, "cancel", dtype="float32", device="cuda")
    wrong = one(cancel, "cancel-wrong", dtype="float32", device="cuda")
    assert right.status == "passed" and right.claims[0].note
    assert wrong.status == "xfailed" and "fails too" in wrong.claims[0].message
    settings = resolve(dtype="float32", device="cuda")
    assert settings.tolerances_in(CONFIRM_DTYPE) == DEFAULT_TOL["float64"]


def test_show_gives_the_note_and_the_float32_values(cancel: Path) -> None:
    # show displays what the float32 check computed, and why it passed all the same.
    r = CliRunner().invoke(app, ["show", "cancel", str(cancel), "--dtype", "float32"])
    assert r.exit_code == 0, r.output
    assert "note: grad x failed in float32" in r.stdout
    assert "float32" in r.stdout.splitlines()[1]
    r = CliRunner().invoke(app, ["show", "cancel-wrong", str(cancel), "--dtype", "float32"])
    assert "in float64 on the same draw it fails too" in r.stdout


COMPLEX_CANCEL = textwrap.dedent(
    """\
    identities:
      - id: complex-cancel
        vars:
          z: {shape: [3, 1], domain: complex}
        f: "5e4 * real(sum(z)) + norm(z)**2 - 5e4 * real(sum(z))"
        grad:
          z: "z"
    """
)


def test_a_complex64_failure_is_rechecked_in_complex128_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "complex.yaml"
    path.write_text(COMPLEX_CANCEL, encoding="utf-8")
    r = one(path, "complex-cancel", dtype="float32")
    (claim,) = r.claims
    assert claim.status == "passed" and claim.recheck is not None
    assert (claim.recheck.dtype, claim.recheck.wide_dtype) == ("complex64", "complex128")
    assert claim.note is not None and "float64" not in claim.note
    assert "failed in complex64" in claim.note and "holds in complex128" in claim.note
    out = CliRunner().invoke(app, ["check", str(path), "--dtype", "float32", "-qq"]).stdout
    assert (
        "1 claim failed in complex64 and was checked again in complex128 on the same draw: "
        "1 held (rounding), 0 did not"
    ) in out


def test_the_summary_names_each_dtype_of_a_mixed_run(cancel: Path, tmp_path: Path) -> None:
    path = tmp_path / "complex.yaml"
    path.write_text(COMPLEX_CANCEL, encoding="utf-8")
    out = CliRunner().invoke(
        app, ["check", str(cancel), str(path), "--dtype", "float32", "-qq"]
    ).stdout
    assert (
        "3 claims failed in float32 or complex64 and were checked again in float64 or "
        "complex128 on the same draw: 2 held (rounding), 1 did not"
    ) in out
