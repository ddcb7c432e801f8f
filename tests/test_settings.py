"""Run settings: one resolver for every entry point, recorded whole in the report; the printed
reproduce and show commands rebuilt from that record; a run that leaves the process as it was."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from samples import RIGHT, WRONG
from typer.testing import CliRunner

import matgrad
from matgrad.cli import app
from matgrad.config import EMPTY, Config
from matgrad.limits import DEFAULT_LIMITS
from matgrad.results import RunReport
from matgrad.settings import DEFAULT_TOL, Settings, SettingsError, resolve
from matgrad.spec.schema import DEFAULT_TRIALS

# Off by 1e-9 relative: passes at the default tolerances, fails at rtol 1e-10 atol 1e-12.
NEAR = """
id: near
dims: {n: 3}
vars: {X: [n, n]}
f: sum(X)
grad: {X: "ones(n, n) * 1.000000001"}
"""
# Off by 1e-4: fails at the float64 defaults, passes with rtol 1e-3.
NEAR_4 = NEAR.replace("1.000000001", "1.0001")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# ---- the resolver ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "flags", "expected"),
    [
        pytest.param(EMPTY, {}, {"seed": 0, "trials": None, "dtype": "float64", "device": "auto",
                                 "rtol": 1e-6, "atol": 0.0}, id="defaults"),
        pytest.param(EMPTY, {"dtype": "float32"},
                     dict(zip(("rtol", "atol"), DEFAULT_TOL["float32"], strict=True)),
                     id="tolerances-follow-dtype"),
        pytest.param(Config(seed=5, trials=3, dtype="float32", device="cpu", rtol=1e-3),
                     {}, {"seed": 5, "trials": 3, "dtype": "float32", "device": "cpu",
                          "rtol": 1e-3, "atol": DEFAULT_TOL["float32"][1]}, id="config"),
        pytest.param(Config(seed=5, trials=3, rtol=1e-3), {"seed": 0, "rtol": 0.0},
                     {"seed": 0, "trials": 3, "rtol": 0.0}, id="a-flag-of-0-is-still-a-flag"),
        pytest.param(Config(dtype="float32"), {"dtype": "float64", "atol": 1e-12},
                     {"dtype": "float64", "rtol": 1e-6, "atol": 1e-12}, id="flags-beat-config"),
    ],
)
def test_resolve_precedence(config: Config, flags: dict, expected: dict) -> None:
    s = resolve(config, **flags)
    assert {k: getattr(s, k) for k in expected} == expected


def test_resolve_limits_and_witnesses() -> None:
    configured = Config(limits=DEFAULT_LIMITS.replace(max_dim=8))
    assert resolve(configured).limits.max_dim == 8
    assert resolve(configured, limits=DEFAULT_LIMITS).limits.max_dim == DEFAULT_LIMITS.max_dim
    assert resolve(witnesses=["taylor", "fd", "fd"]).witnesses == ("fd", "taylor")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dtype": "float16"}, "dtype must be one of float64, float32, got 'float16'"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda, got 'tpu'"),
        ({"trials": 0}, "trials must be a positive integer, got 0"),
        ({"rtol": -1.0}, "rtol must be a number >= 0, got -1.0"),
        ({"atol": float("nan")}, "atol must be a number >= 0, got nan"),
        ({"witnesses": ("autograd",)}, "unknown witness 'autograd'; run witnesses are fd, taylor"),
    ],
)
def test_settings_refuse(fields: dict, message: str) -> None:
    with pytest.raises(SettingsError) as e:
        Settings(**fields)
    assert str(e.value) == message
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        ({}, []),
        ({"rtol": 1e-6, "atol": 0.0}, []),  # the defaults, given: still nothing to say
        ({"dtype": "float32", "rtol": DEFAULT_TOL["float32"][0]}, ["--dtype float32"]),
        (
            {"trials": 4, "device": "cpu", "rtol": 1e-10, "atol": 1e-12, "witnesses": ("fd",)},
            ["--trials 4", "--device cpu", "--rtol 1e-10", "--atol 1e-12", "--fd"],
        ),
        ({"limits": DEFAULT_LIMITS.replace(max_dim=4096)}, ["--limit max_dim=4096"]),
        ({"rtol": 0.07 + 0.02}, ["--rtol 0.09000000000000001"]),  # exact, not rounded
    ],
)
def test_flags_name_only_what_is_not_default(fields: dict, flags: list[str]) -> None:
    assert Settings(**fields).flags() == flags


# One value other than the default per setting. A new field of Settings must be added here,
# and the test below then checks it is resolved, recorded and written out as a flag.
NON_DEFAULT = {
    "seed": 9,
    "trials": 4,
    "dtype": "float32",
    "device": "cpu",
    "rtol": 0.05,
    "atol": 0.025,
    "limits": DEFAULT_LIMITS.replace(max_dim=8),
    "witnesses": ("taylor",),
    "functions": ("customops:FUNCTIONS",),
}


def test_every_setting_is_resolved_recorded_and_reprinted() -> None:
    import dataclasses

    assert sorted(NON_DEFAULT) == sorted(f.name for f in dataclasses.fields(Settings))
    helps = {cmd: invoke(cmd, "--help").stdout for cmd in ("check", "show")}
    for name, value in NON_DEFAULT.items():
        s = Settings(**{name: value})
        assert resolve(**{name: value}) == s, name
        if name in {f.name for f in dataclasses.fields(Config)}:
            assert resolve(Config(**{name: value})) == s, f"{name}: not read from [tool.matgrad]"
        recorded = s.to_dict()[name]
        assert recorded == (dataclasses.asdict(value) if name == "limits" else
                            list(value) if name in ("witnesses", "functions") else value), name
        flags = [f"--seed {value}"] if name == "seed" else s.flags()
        assert flags, f"{name}: not written out in reproduce lines"
        for cmd, text in helps.items():
            for flag in flags:
                assert flag.split()[0] in text, f"matgrad {cmd} has no {flag.split()[0]}"


def test_one_list_of_dtypes_and_devices() -> None:
    from matgrad import config
    from matgrad.cli.common import Device, DType

    assert [d.value for d in DType] == list(DEFAULT_TOL) == list(config.DTYPES)
    assert [d.value for d in Device] == ["auto", "cpu", "cuda"] == list(config.DEVICES)


# ---- the report records them ---------------------------------------------------------------


def test_report_records_the_settings_whole(write) -> None:
    path = write(NEAR)
    r = invoke("check", path, "--format", "json", "--seed", "3", "--trials", "2", "--rtol",
               "1e-10", "--atol", "1e-12", "--taylor", "--limit", "max_dim=64", "--device", "cpu")
    data = json.loads(r.stdout)
    assert data["settings"] == {
        "seed": 3,
        "trials": 2,
        "dtype": "float64",
        "device": "cpu",
        "rtol": 1e-10,
        "atol": 1e-12,
        "limits": {**json.loads(json.dumps(DEFAULT_LIMITS.__dict__)), "max_dim": 64},
        "witnesses": ["taylor"],
        "functions": [],
    }


def test_a_report_built_by_hand_has_default_settings() -> None:
    report = RunReport("0", None, 7, "cpu", "float32", witnesses=["fd"])
    assert report.settings == Settings(seed=7, dtype="float32", witnesses=("fd",))


# ---- the bugs --------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.matgrad]\nrtol = 1.0e-3\n")
    (tmp_path / "near.yaml").write_text(textwrap.dedent(NEAR_4).lstrip())
    return tmp_path


def test_show_reads_the_project_settings(project: Path) -> None:
    # Was: check said PASS (rtol 1e-3 from [tool.matgrad]) and show said FAIL (rtol 1e-6).
    checked = invoke("check", "near.yaml", "--format", "json")
    assert checked.exit_code == 0 and json.loads(checked.stdout)["summary"]["passed"] == 1
    shown = invoke("show", "near", "near.yaml")
    assert shown.exit_code == 0, shown.output
    assert "PASS" in shown.stdout and "FAIL" not in shown.stdout
    assert "rtol=0.001" in shown.stdout or "FAIL" not in shown.stdout
    shown = invoke("show", "near", "near.yaml", "--rtol", "1e-6")  # a flag beats the file
    assert "FAIL" in shown.stdout


def _line(stdout: str, prefix: str) -> str:
    (line,) = [ln.strip() for ln in stdout.splitlines() if ln.strip().startswith(prefix)]
    return line.removeprefix(prefix)


def test_reproduce_keeps_the_tolerances(write) -> None:
    # Was: the reproduce line dropped --rtol/--atol and the command it printed passed.
    path = write(NEAR)
    r = invoke("check", path, "--rtol", "1e-10", "--atol", "1e-12")
    assert r.exit_code == 1
    cmd = _line(r.stdout, "reproduce: ")
    assert cmd == f"matgrad check {path} -k near --seed 0 --rtol 1e-10 --atol 1e-12"
    assert invoke(*shlex.split(cmd)[1:]).exit_code == 1
    show = _line(r.stdout, "show: ")
    assert show.endswith(f"--trials {DEFAULT_TRIALS} --rtol 1e-10 --atol 1e-12")
    assert "FAIL" in invoke(*shlex.split(show)[1:]).stdout


def test_reproduce_lines_of_every_format_keep_the_settings(write, tmp_path: Path) -> None:
    path = write(NEAR)
    want = f"matgrad check {path} -k near --seed 2 --trials 3 --rtol 1e-10 --atol 1e-12"
    files = {fmt: tmp_path / f"r.{ext}" for fmt, ext in
             (("junit", "xml"), ("markdown", "md"), ("html", "html"), ("txt", "txt"))}
    args = [f"{fmt}:{p}" if fmt != "txt" else str(p) for fmt, p in files.items()]
    r = invoke("check", path, "--seed", "2", "--trials", "3", "--rtol", "1e-10", "--atol",
               "1e-12", *[x for a in args for x in ("--report", a)], "--format", "github")
    assert r.exit_code == 1
    assert want in r.stdout
    for fmt, p in files.items():  # (markdown escapes the path's underscores)
        assert "-k near --seed 2 --trials 3 --rtol 1e-10 --atol 1e-12" in p.read_text(), fmt


def test_pytest_plugin_reproduce_keeps_configured_tolerances(pytester: pytest.Pytester) -> None:
    import matgrad.engine.core  # noqa: F401  (imported once, outside the inner run)

    pytester.makepyprojecttoml("[tool.matgrad]\nrtol = 1.0e-10\natol = 1.0e-12\n")
    pytester.mkdir("identities")
    (pytester.path / "identities" / "near.yaml").write_text(textwrap.dedent(NEAR).lstrip())
    result = pytester.runpytest("-p", "matgrad.pytest_plugin", "-p", "no:hypothesispytest",
                                "--matgrad", "identities")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*reproduce: matgrad check identities/near.yaml -k near --seed 0 --rtol 1e-10 "
         "--atol 1e-12"]
    )


# ---- reproduce reproduces: verdict and numbers ----------------------------------------------

IDENTITIES = {
    "wrong": WRONG,
    "right-marked-wrong": RIGHT.replace("id: right", "id: right-marked-wrong") + "expect: fail\n",
    "near": NEAR,
    "near-marked-wrong": NEAR.replace("id: near", "id: near-marked-wrong") + "expect: fail\n",
}
NUMBERS = ("status", "max_abs_err", "max_rel_err", "max_ratio", "rtol", "atol", "worst")


@pytest.fixture(scope="module")
def identity_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("ids")
    out = {}
    for name, text in IDENTITIES.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip())
        out[name] = str(folder / f"{name}.yaml")
    return out


def _numbers(data: dict) -> list:
    (r,) = data["results"]
    return [r["status"], r["trials"], r["seed"],
            [[c.get(k) for k in NUMBERS] + [[(w["name"], w["verdict"], w["max_abs_err"],
                                               w["slope"]) for w in c["witnesses"]]]
             for c in r["claims"]]]


@hsettings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(IDENTITIES)),
    seed=st.integers(0, 50),
    trials=st.none() | st.integers(1, 6),
    dtype=st.sampled_from([None, "float64", "float32"]),
    rtol=st.sampled_from([None, 0.0, 1e-10, 1e-6, 2.5e-3, 0.1]),
    atol=st.sampled_from([None, 0.0, 1e-12, 1e-4]),
    fd=st.booleans(),
    taylor=st.booleans(),
)
def test_the_printed_reproduce_command_reproduces(
    identity_files: dict[str, str], tmp_path: Path, name: str, seed: int, trials: int | None,
    dtype: str | None, rtol: float | None, atol: float | None, fd: bool, taylor: bool,
) -> None:
    args = ["check", identity_files[name], "--seed", str(seed), "--device", "cpu"]
    for flag, value in (("--trials", trials), ("--dtype", dtype), ("--rtol", rtol),
                        ("--atol", atol)):
        if value is not None:
            args += [flag, value if isinstance(value, str) else repr(value)]
    args += ["--fd"] * fd + ["--taylor"] * taylor
    report = tmp_path / "first.json"
    first = invoke(*args, "--report", str(report))
    assert first.exit_code in (0, 1, 3), first.output
    data = json.loads(report.read_text())
    lines = [ln for ln in first.stdout.splitlines() if ln.strip().startswith("reproduce: ")]
    if not lines:  # nothing to reproduce: the identity met its expect
        assert first.exit_code == 0 and data["results"][0]["status"] in ("passed", "xfailed")
        return
    cmd = shlex.split(_line(first.stdout, "reproduce: "))
    assert cmd[:2] == ["matgrad", "check"]
    again = invoke(*cmd[1:], "--format", "json")
    assert again.exit_code == first.exit_code
    redone = json.loads(again.stdout)
    assert _numbers(redone) == _numbers(data)
    # "auto" on this machine is the cpu asked for: the record is the same but for that
    assert {**redone["settings"], "device": "cpu"} == data["settings"]


# ---- the library leaves the process as it found it ------------------------------------------


def test_the_library_leaves_threads_and_warning_filters_alone() -> None:
    # Was: importing the engine added a process-wide "ignore" warning filter, and a run of
    # small identities lowered torch's thread count to 1 for good. (A fresh process: the
    # count cannot be raised back here without breaking torch's batched LU, see engine.core.)
    code = (
        "import warnings\n"
        "before = list(warnings.filters)\n"
        "import matgrad.engine.core, torch\n"
        "filters = warnings.filters == before\n"
        "threads = torch.get_num_threads()\n"
        "from matgrad import api\n"
        "ident = api.inline_identity({'id': 's', 'vars': {'X': [2, 2]}, 'f': 'tr(X)',"
        " 'grad': {'X': 'eye(2)'}})\n"
        "assert api.check(ident, device='cpu').ok\n"
        "print(filters, threads, torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    filters, before, after = out.stdout.split()
    assert filters == "True", out.stderr
    assert after == before
    assert "NumPy" not in out.stderr


# ---- the API uses the same resolver --------------------------------------------------------


def test_api_takes_a_config_or_settings(write) -> None:
    path = write(NEAR_4)
    assert not matgrad.check(path).ok
    report = matgrad.check(path, config=Config(rtol=1e-3, seed=4))
    assert report.ok and report.settings.seed == 4 and report.settings.rtol == 1e-3
    assert matgrad.check(path, settings=report.settings).ok
    with pytest.raises(ValueError, match="not both"):
        matgrad.check(path, settings=report.settings, seed=1)
    r = matgrad.check_identity(
        f="sum(X)", grad={"X": "ones(3, 3) * 1.0001"}, vars={"X": [3, 3]}, rtol=1e-3
    )
    assert r.status == "passed"
