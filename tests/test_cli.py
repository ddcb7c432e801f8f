from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from samples import RIGHT, WRONG
from typer.testing import CliRunner

from matgrad import __version__
from matgrad.cli import app

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "identities" / "seed.yaml")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_seed_file_passes() -> None:
    r = invoke("check", SEED)
    assert r.exit_code == 0, r.output
    assert "3 passed, 0 failed, 4 xfailed, 0 xpassed, 0 errors" in r.stdout
    assert "seed-trace-inverse" in r.stdout


def test_exit_0_right(write) -> None:
    assert invoke("check", write(RIGHT)).exit_code == 0


def test_exit_1_mismatch_with_details(write) -> None:
    path = write(WRONG)
    r = invoke("check", path)
    assert r.exit_code == 1
    out = r.stdout
    assert "FAIL" in out
    assert "grad X mismatched on trial" in out
    assert "claimed" in out and "autograd" in out
    assert f"reproduce: matgrad check {path} -k wrong --seed 0" in out
    assert "0 passed, 1 failed, 0 xfailed, 0 xpassed, 0 errors" in out


def test_exit_1_unexpected_pass(write) -> None:
    r = invoke("check", write(RIGHT + "expect: fail\n"))
    assert r.exit_code == 1
    assert "XPASS" in r.stdout and "expected to fail" in r.stdout


def test_exit_2_usage() -> None:
    assert invoke("check", "does/not/exist.yaml").exit_code == 2
    assert invoke("check", SEED, "--dtype", "float16").exit_code == 2
    assert invoke("check", SEED, "--limit", "nonsense").exit_code == 2
    assert invoke("nosuchcommand").exit_code == 2


def test_exit_3_invalid_others_still_run(write) -> None:
    write(RIGHT, "a.yaml")
    path = write("id: broken\nvars: {x: [2]}\nf: sum(x\ngrad: {x: x}\n", "b.yaml")
    r = invoke("check", str(Path(path).parent))
    assert r.exit_code == 3
    assert "1 passed, 0 failed, 0 xfailed, 0 xpassed, 1 errors" in r.stdout
    assert "b.yaml:3: identity 'broken', key f: syntax error" in r.stdout


def test_exit_3_beats_exit_1(write) -> None:
    write(WRONG, "a.yaml")
    path = write("id: broken\nvars: {x: [2]}\nf: sum(y)\ngrad: {x: x}\n", "b.yaml")
    assert invoke("check", str(Path(path).parent)).exit_code == 3


def test_exit_4_internal_error(write, monkeypatch) -> None:
    import matgrad.engine.core as engine

    def boom(*a, **k):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(engine, "check_compiled", boom)
    r = invoke("check", write(RIGHT))
    assert r.exit_code == 4
    assert "please report" in r.stdout


def test_exit_5_no_identities(tmp_path) -> None:
    (tmp_path / "README.md").write_text("nothing here")
    r = invoke("check", str(tmp_path))
    assert r.exit_code == 5
    assert "no identity found" in r.stderr
    assert invoke("check", SEED, "-k", "no-such-id").exit_code == 5
    assert invoke("validate", str(tmp_path)).exit_code == 5


def test_exit_130_interrupted(write, monkeypatch) -> None:
    import matgrad.engine.core as engine

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "check_identity", interrupt)
    r = invoke("check", write(RIGHT))
    assert r.exit_code == 130
    assert "interrupted" in r.stderr


def test_filter_substring_and_glob() -> None:
    r = invoke("check", SEED, "-k", "trace", "--format", "json")
    ids = [x["id"] for x in json.loads(r.stdout)["results"]]
    assert ids == ["seed-trace-inverse", "seed-trace-inverse-sign", "seed-trace-inverse-untransposed"]
    r = invoke("check", SEED, "-k", "seed-*-sign", "--format", "json")
    assert [x["id"] for x in json.loads(r.stdout)["results"]] == ["seed-trace-inverse-sign"]


def test_json_report_schema(tmp_path) -> None:
    out = tmp_path / "out.json"
    r = invoke("check", SEED, "--report", str(out), "--seed", "3", "--device", "cpu")
    assert r.exit_code == 0
    assert "passed" in r.stdout  # the table stays on the terminal
    data = json.loads(out.read_text())
    assert set(data) >= {"matgrad", "torch", "seed", "device", "dtype", "results", "summary"}
    assert data["matgrad"] == __version__
    assert data["seed"] == 3 and data["device"] == "cpu" and data["dtype"] == "float64"
    assert data["summary"] == {"passed": 3, "failed": 0, "xfailed": 4, "xpassed": 0, "error": 0}
    res = data["results"][0]
    assert set(res) >= {"id", "file", "line", "expect", "status", "message", "seconds", "claims"}
    claim = res["claims"][0]
    assert set(claim) >= {"kind", "var", "status", "max_abs_err", "max_rel_err", "worst", "message"}
    assert set(claim["worst"]) == {"trial", "index", "autograd", "claimed"}


def test_unwritable_report_is_refused_before_work(tmp_path) -> None:
    r = invoke("check", SEED, "--report", str(tmp_path / "missing" / "out.json"))
    assert r.exit_code == 2
    assert "cannot write" in r.output


def test_validate(write) -> None:
    r = invoke("validate", SEED)
    assert r.exit_code == 0
    assert "7 identities in 1 files are valid" in r.stdout
    r = invoke("validate", write("id: a\nvars: {x: [2]}\nf: tr(x)\ngrad: {x: x}\n"))
    assert r.exit_code == 3
    assert "tr needs a square matrix, got shape [2]" in r.stdout


def test_functions_lists_every_registered_function() -> None:
    from matgrad.lang.functions import REGISTRY

    r = invoke("functions", "--format", "json")
    assert r.exit_code == 0
    assert [f["name"] for f in json.loads(r.stdout)] == list(REGISTRY)
    r = invoke("functions")
    assert "logdet(M)" in r.stdout


def test_version() -> None:
    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"matgrad {__version__}"


def _run(*code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, cwd=ROOT)


def test_python_m_matgrad_help() -> None:
    r = _run("-m", "matgrad", "--help")
    assert r.returncode == 0
    assert "check" in r.stdout and "validate" in r.stdout


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["functions"], ["validate", "identities/seed.yaml"], ["check", "--help"]],
)
def test_fast_commands_do_not_import_torch(argv: list[str]) -> None:
    code = (
        "import sys\nfrom matgrad.cli import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    r = _run("-c", code)
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH", r.stderr


_COLLECTOR_PROBE = """
import gc, sys
class Spy:  # reports the collector's state when torch starts loading
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("collector on while torch loads:", gc.isenabled())
        return None
sys.meta_path.insert(0, Spy())
sys.argv = ["matgrad", *%r]
from matgrad.cli import main
try:
    main()
except SystemExit as e:
    print("exit", e.code, "collector on:", gc.isenabled(), "frozen:", gc.get_freeze_count() > 0)
"""


def test_matgrad_loads_torch_without_the_collector_then_turns_it_on() -> None:
    r = _run("-c", _COLLECTOR_PROBE % (["check", "identities/seed.yaml", "-qq"],))
    lines = r.stdout.splitlines()
    assert "collector on while torch loads: False" in lines, r.stderr
    assert lines[-1] == "exit 0 collector on: True frozen: True", r.stdout


@pytest.mark.parametrize(
    ("argv", "code"), [(["validate", "identities/seed.yaml"], 0), (["check", "--trials", "x"], 2)]
)
def test_main_always_leaves_the_collector_on(argv: list[str], code: int, monkeypatch) -> None:
    import gc

    from matgrad import cli

    monkeypatch.setattr(sys, "argv", ["matgrad", *argv])
    frozen = gc.get_freeze_count()
    try:
        with pytest.raises(SystemExit) as e:
            cli.main()
        assert e.value.code == code
        assert gc.isenabled()
    finally:
        gc.enable()
        if gc.get_freeze_count() > frozen:
            gc.unfreeze()


def test_import_check_meta() -> None:
    # The probe above must be able to see torch when it is imported.
    r = _run("-c", "import sys, matgrad.engine.core; print('torch' in sys.modules)")
    assert r.stdout.strip() == "True"


def test_reproduce_line_repeats_the_flags_that_shaped_the_verdict(write) -> None:
    path = write(WRONG)
    r = invoke("check", path, "--fd", "--dtype", "float32", "--seed", "4")
    assert r.exit_code == 1
    assert f"reproduce: matgrad check {path} -k wrong --seed 4 --dtype float32 --fd" in r.stdout
