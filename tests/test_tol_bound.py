"""Tolerances are bounded: an rtol or atol over ``max_tol`` (default 0.1) is refused wherever
it is given (an identity's ``tol``, ``--rtol``/``--atol``, ``[tool.matgrad]``, the API), with
an error naming the key and the limit; raising the limit is allowed and every report format
then warns; and an identity's own looser ``tol`` shows in every report format."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from matgrad import api
from matgrad.cli import app
from matgrad.errors import SpecError
from matgrad.limits import DEFAULT_LIMITS, LimitError
from matgrad.report import FORMATS
from matgrad.settings import Settings, SettingsError, resolve

# A wrong claim (the transpose) that any tolerance as loose as 1e308 lets pass.
WRONG = """\
id: loose
dims: {n: 3}
vars: {A: [n, n], X: [n, n]}
f: tr(A @ X)
grad: {X: A}
"""


@pytest.fixture
def file(tmp_path):
    def _make(text: str) -> str:
        path = tmp_path / "t.yaml"
        path.write_text(text)
        return str(path)

    return _make


@pytest.mark.parametrize("key", ["rtol", "atol"])
def test_an_identity_tol_over_the_bound_is_refused_naming_key_and_limit(file, key) -> None:
    # Before: tol: {rtol: 1e308} passed the wrong claim, silently.
    path = file(WRONG + f"tol: {{{key}: 1e308}}\n")
    r = CliRunner().invoke(app, ["check", path, "--format", "json"])
    assert r.exit_code == 3, r.output
    (res,) = json.loads(r.stdout)["results"]
    assert res["status"] == "error"
    assert f"key tol.{key}: tol.{key} is 1e+308, over the limit max_tol=0.1" in res["message"]
    assert "--limit max_tol=X" in res["message"]
    r = CliRunner().invoke(app, ["validate", path])
    assert r.exit_code == 3 and "over the limit max_tol=0.1" in r.stdout


@pytest.mark.parametrize("flag", ["--rtol", "--atol"])
def test_a_run_tolerance_over_the_bound_is_refused(file, flag) -> None:
    r = CliRunner().invoke(app, ["check", file(WRONG), flag, "1e308"])
    assert r.exit_code != 0
    assert f"{flag[2:]} is 1e+308, over the limit max_tol=0.1" in r.output


def test_the_api_and_the_configuration_are_bounded_too() -> None:
    with pytest.raises(SettingsError, match=r"rtol is 0\.5, over the limit max_tol=0\.1"):
        api.check_identity(f="sum(x)", vars={"x": [2]}, grad={"x": "ones(2)"}, rtol=0.5)
    with pytest.raises(SpecError, match=r"key tol\.atol: tol\.atol is 1e\+308, over the limit"):
        api.check_identity(f="sum(x)", vars={"x": [2]}, grad={"x": "ones(2)"}, tol={"atol": 1e308})
    from matgrad.config import Config

    with pytest.raises(SettingsError, match="max_tol"):
        resolve(Config(rtol=1.0))
    # a raised limit in the configuration lets the same tolerance through
    s = resolve(Config(rtol=1.0, limits=DEFAULT_LIMITS.replace(max_tol=10.0)))
    assert s.rtol == 1.0


def test_the_bound_is_a_positive_finite_number() -> None:
    for bad in (0, -1.0, float("inf"), float("nan"), "big", True):
        with pytest.raises(LimitError, match="max_tol must be a positive number"):
            DEFAULT_LIMITS.replace(max_tol=bad)  # type: ignore[arg-type]
    assert DEFAULT_LIMITS.replace(max_tol=1).max_tol == 1.0
    r = CliRunner().invoke(app, ["check", "identities/seed.yaml", "--limit", "max_tol=abc"])
    assert r.exit_code == 2 and "is not a number" in r.output


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_raised_bound_is_accepted_with_a_warning_in_every_format(file, fmt) -> None:
    path = file(WRONG + "tol: {rtol: 1e308}\n")
    r = CliRunner().invoke(app, ["check", path, "--limit", "max_tol=1e308", "--format", fmt])
    assert r.exit_code == 0, r.output  # accepted (and the wrong claim passes, as asked)
    text = r.stdout.replace("\\", "")  # markdown escapes _ ( )
    assert "the tolerance bound is raised: max_tol=1e+308 (default 0.1)" in text, text
    # the printed reproduce command keeps the raised bound
    assert Settings(limits=DEFAULT_LIMITS.replace(max_tol=1e308)).flags() == [
        "--limit max_tol=1e+308"
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_warning_at_the_default_bound(file, fmt) -> None:
    r = CliRunner().invoke(app, ["check", file(WRONG.replace("{X: A}", "{X: A.T}")),
                                 "--format", fmt])
    assert r.exit_code == 0, r.output
    assert "tolerance bound is raised" not in r.stdout
    assert "looser than the run" not in r.stdout


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_identity_tol_looser_than_the_run_shows_in_every_format(file, fmt) -> None:
    right = WRONG.replace("{X: A}", "{X: A.T}")
    path = file(right + "tol: {rtol: 0.001, atol: 0.0}\n")
    r = CliRunner().invoke(app, ["check", path, "--format", fmt])
    assert r.exit_code == 0, r.output
    if fmt == "json":
        (res,) = json.loads(r.stdout)["results"]
        assert res["loose_tol"] == {"rtol": 0.001}  # not looser than the run's: not a concern
        return
    if fmt == "csv":
        head, row = r.stdout.splitlines()[:2]
        cells = dict(zip(head.split(","), row.split(","), strict=False))
        assert cells["loose_tol.rtol"] == "0.001" and cells["loose_tol.atol"] == ""
        return
    # the apostrophe is written as an entity in XML and HTML
    text = r.stdout.replace("&apos;", "'").replace("&#x27;", "'").replace("\\", "")
    assert "its own tol is looser than the run's: rtol=0.001" in text, text
    assert "looser than the run's: rtol=0.001, atol" not in text  # tighter: not named


def test_the_loose_tol_field_in_json() -> None:
    res = api.check_identity(f="sum(x)", vars={"x": [2]}, grad={"x": "ones(2)"},
                             tol={"rtol": 0.01, "atol": 0.0})
    assert res.loose_tol == {"rtol": 0.01}
    # against the run's own tolerances, not the dtype's defaults
    res = api.check_identity(f="sum(x)", vars={"x": [2]}, grad={"x": "ones(2)"},
                             tol={"rtol": 0.01}, rtol=0.05)
    assert res.loose_tol is None
    plain = api.check_identity(f="sum(x)", vars={"x": [2]}, grad={"x": "ones(2)"})
    assert plain.loose_tol is None
