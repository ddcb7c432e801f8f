from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.config import EMPTY, ConfigError, find_pyproject, load_config
from matgrad.limits import DEFAULT_LIMITS

IDENT = """
id: sum-grad
dims: {n: 3}
vars: {X: [n, n]}
f: sum(X)
grad: {X: "ones(n, n)"}
"""
NEAR = """
id: near
dims: {n: 3}
vars: {X: [n, n]}
f: sum(X)
grad: {X: "ones(n, n) * 1.0001"}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch):
    """A project folder with identities/ and a pyproject.toml holding ``[tool.matgrad]``;
    the cwd is the project."""

    def _make(table: str, *, name: str = "pyproject.toml") -> Path:
        (tmp_path / "identities").mkdir(exist_ok=True)
        (tmp_path / "identities" / "a.yaml").write_text(textwrap.dedent(IDENT).lstrip())
        (tmp_path / name).write_text(textwrap.dedent(table).lstrip())
        return tmp_path

    monkeypatch.chdir(tmp_path)
    return _make


def run_json(*args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(app, ["check", *args, "--format", "json"])
    return r.exit_code, json.loads(r.stdout) if r.stdout.startswith("{") else {"output": r.output}


def test_no_pyproject_gives_empty_config(tmp_path) -> None:
    assert load_config(tmp_path) == EMPTY


def test_full_table(project) -> None:
    root = project(
        """
        [project]
        name = "x"

        [tool.matgrad]
        paths = ["identities"]
        seed = 7
        trials = 3
        dtype = "float32"
        device = "cpu"
        rtol = 1e-3
        atol = 0
        [tool.matgrad.limits]
        max_dim = 64
        """
    )
    c = load_config(root)
    assert c.file == root / "pyproject.toml"
    assert (c.paths, c.seed, c.trials, c.dtype, c.device) == (("identities",), 7, 3, "float32", "cpu")
    assert (c.rtol, c.atol) == (1e-3, 0.0)
    assert c.limits == DEFAULT_LIMITS.replace(max_dim=64)


def test_nearest_pyproject_with_the_table_wins(project, tmp_path, monkeypatch) -> None:
    project("[tool.matgrad]\nseed = 1\n")
    sub = tmp_path / "pkg"
    sub.mkdir()
    (sub / "pyproject.toml").write_text('[project]\nname = "pkg"\n')  # no table: passed over
    assert find_pyproject(sub) == tmp_path / "pyproject.toml"
    deeper = sub / "deeper"
    deeper.mkdir()
    (deeper / "pyproject.toml").write_text("[tool.matgrad]\nseed = 2\n")
    assert load_config(deeper).seed == 2
    assert load_config(sub).seed == 1


def test_configured_paths_are_relative_to_the_pyproject(project, tmp_path, monkeypatch) -> None:
    project('[tool.matgrad]\npaths = ["identities"]\n')
    assert load_config().paths == ("identities",)
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path / "docs")
    assert load_config().paths == (str(tmp_path / "identities"),)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        pytest.param("sed = 1", "[tool.matgrad] sed: unknown key (did you mean 'seed'?); known keys: paths, seed, trials, dtype, device, rtol, atol, limits", id="unknown-key"),
        pytest.param('seed = "1"', "[tool.matgrad] seed: must be an integer >= 0, got '1'", id="seed-type"),
        pytest.param("trials = 0", "[tool.matgrad] trials: must be an integer >= 1, got 0", id="trials-range"),
        pytest.param("trials = true", "[tool.matgrad] trials: must be an integer >= 1, got True", id="trials-bool"),
        pytest.param('dtype = "float16"', "[tool.matgrad] dtype: must be one of 'float64', 'float32', got 'float16'", id="dtype"),
        pytest.param('device = "tpu"', "[tool.matgrad] device: must be one of 'auto', 'cpu', 'cuda', got 'tpu'", id="device"),
        pytest.param("rtol = -1.0", "[tool.matgrad] rtol: must be a finite number >= 0, got -1.0", id="rtol-negative"),
        pytest.param("atol = nan", "[tool.matgrad] atol: must be a finite number >= 0, got nan", id="atol-nan"),
        pytest.param('rtol = "1e-6"', "[tool.matgrad] rtol: must be a finite number >= 0, got '1e-6'", id="rtol-text"),
        pytest.param("paths = [1]", "[tool.matgrad] paths: must be a list of file or folder names, got [1]", id="paths"),
        pytest.param("limits = 3", "[tool.matgrad] limits: must be a table, e.g. [tool.matgrad.limits] max_dim = 2048", id="limits-type"),
        pytest.param("[tool.matgrad.limits]\nmax_dims = 3", "[tool.matgrad] limits: unknown limit 'max_dims' (known: ", id="limit-name"),
        pytest.param("[tool.matgrad.limits]\nmax_dim = 0", "[tool.matgrad] limits: limit max_dim must be a positive integer, got 0", id="limit-value"),
    ],
)
def test_bad_tables(project, table, message) -> None:
    root = project("[tool.matgrad]\n" + table + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert str(info.value).startswith(f"{root / 'pyproject.toml'}: {message}")


def test_broken_toml(project) -> None:
    root = project("[tool.matgrad]\nseed = \n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: not valid TOML: "):
        load_config(root)


def test_paths_accepts_one_string(project) -> None:
    assert load_config(project('[tool.matgrad]\npaths = "identities"\n')).paths == ("identities",)


# ---- the command line: flags take precedence ------------------------------------------------


def test_cli_uses_the_configured_settings(project) -> None:
    project(
        """
        [tool.matgrad]
        paths = ["identities"]
        seed = 5
        trials = 3
        device = "cpu"
        """
    )
    code, data = run_json()
    assert code == 0, data
    assert data["seed"] == 5 and data["device"] == "cpu"
    assert data["results"][0]["trials"] == 3
    assert data["results"][0]["file"] == str(Path("identities") / "a.yaml")


def test_cli_flags_beat_the_configuration(project) -> None:
    project('[tool.matgrad]\npaths = ["identities"]\nseed = 5\ntrials = 3\ndtype = "float32"\n')
    _, data = run_json("--seed", "6", "--trials", "4", "--dtype", "float64")
    assert data["seed"] == 6 and data["dtype"] == "float64"
    assert data["results"][0]["trials"] == 4
    _, data = run_json("identities/a.yaml", "--seed", "0")
    assert data["seed"] == 0 and data["dtype"] == "float32"


def test_cli_tolerances(project, tmp_path) -> None:
    # The identity is off by 1e-4: it fails at the float64 defaults, passes with rtol 1e-3.
    project('[tool.matgrad]\nrtol = 1.0e-3\n')
    (tmp_path / "near.yaml").write_text(textwrap.dedent(NEAR).lstrip())
    code, data = run_json("near.yaml")
    assert code == 0 and data["results"][0]["claims"][0]["rtol"] == 1e-3
    code, data = run_json("near.yaml", "--rtol", "1e-7")
    assert code == 1 and data["results"][0]["claims"][0]["rtol"] == 1e-7
    code, data = run_json("near.yaml", "--rtol", "0", "--atol", "1e-3")
    assert code == 0 and data["results"][0]["claims"][0]["atol"] == 1e-3


def test_cli_limits_table_and_flag(project) -> None:
    project('[tool.matgrad]\npaths = ["identities"]\n[tool.matgrad.limits]\nmax_dim = 2\n')
    r = CliRunner().invoke(app, ["validate"])
    assert r.exit_code == 3
    assert "dim n is 3, over the limit max_dim=2" in r.stdout
    r = CliRunner().invoke(app, ["validate", "--limit", "max_dim=3"])
    assert r.exit_code == 0, r.output


def test_cli_without_paths_or_configuration(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["check"])
    assert r.exit_code == 2
    assert "give identity files or folders, or set paths = [...] under [tool.matgrad]" in r.output


def test_cli_configured_path_missing(project) -> None:
    root = project('[tool.matgrad]\npaths = ["nowhere"]\n')
    r = CliRunner().invoke(app, ["list"])
    assert r.exit_code == 2
    assert f"'nowhere' (from {root / 'pyproject.toml'}) does not exist" in r.output


def test_cli_bad_configuration_is_a_usage_error(project) -> None:
    root = project('[tool.matgrad]\nseed = "x"\n')
    r = CliRunner().invoke(app, ["check", "identities"])
    assert r.exit_code == 2
    expected = f"error: {root / 'pyproject.toml'}: [tool.matgrad] seed: must be an integer >= 0, got 'x'"
    assert " ".join(r.stderr.split()) == expected  # the console may wrap long lines
