from __future__ import annotations

import importlib.util
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

# In-process pytester runs drop the modules first imported inside them; import what the plugin
# uses now, so torch and PyYAML's C loader are imported once and keep their classes.
import matgrad.api
import matgrad.config
import matgrad.engine.core
import matgrad.report.table
import matgrad.spec.schema  # noqa: F401 - kept for the import itself (see above)

ROOT = Path(__file__).resolve().parent.parent
# "-p matgrad.pytest_plugin" also works where the entry point is installed. Hypothesis's plugin
# is left out: inner runs would import hypothesis anew each time, which is slow.
PLUGIN = ("-p", "matgrad.pytest_plugin", "-p", "no:hypothesispytest")

IDS = """
identities:
  - id: right
    dims: {n: 3}
    vars: {X: {shape: [n, n], domain: invertible}, A: [n, n]}
    f: tr(inv(X) @ A)
    grad:
      X: "-(inv(X) @ A @ inv(X)).T"
      A: "inv(X).T"
  - id: wrong
    dims: {n: 3}
    vars: {X: [n, n], A: [n, n]}
    f: tr(A @ X)
    grad: {X: A}
  - id: known-wrong
    dims: {n: 3}
    vars: {X: [n, n], A: [n, n]}
    f: tr(A @ X)
    grad: {X: A.T, A: X}
    expect: fail
  - id: wrongly-marked
    dims: {n: 3}
    vars: {X: [n, n], A: [n, n]}
    f: tr(A @ X)
    grad: {X: A.T}
    expect: fail
"""
BROKEN = """
identities:
  - id: no-claim
    vars: {x: [2]}
    f: sum(x)
  - id: bad-shape
    vars: {x: [2]}
    f: tr(x)
    grad: {x: x}
    expect: fail
"""
NODES = [
    "identities/ids.yaml::right::grad[X]",
    "identities/ids.yaml::right::grad[A]",
    "identities/ids.yaml::wrong::grad[X]",
    "identities/ids.yaml::known-wrong::grad[X]",
    "identities/ids.yaml::known-wrong::grad[A]",
    "identities/ids.yaml::wrongly-marked::grad[X]",
]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.mkdir("identities")
    (pytester.path / "identities" / "ids.yaml").write_text(textwrap.dedent(IDS).lstrip())
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    return pytester


def test_off_unless_asked_for(project: pytest.Pytester) -> None:
    result = project.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1)
    assert "matgrad:" not in result.stdout.str()
    help_text = project.runpytest(*PLUGIN, "--help").stdout.str()
    assert "--matgrad=PATH" in help_text and "matgrad_paths" in help_text


def test_undefined_draws_reach_pytest_as_a_warning(pytester: pytest.Pytester) -> None:
    pytester.mkdir("identities")
    (pytester.path / "identities" / "log.yaml").write_text(
        "id: shifted-log\nvars: {x: [3]}\nf: sum(log(x + 3))\ngrad: {x: 1 / (x + 3)}\n"
    )
    result = pytester.runpytest(*PLUGIN, "--matgrad", "identities")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*MatgradWarning: shifted-log: f gives NaN/Inf on * of 100 draws*"])


def test_node_ids(project: pytest.Pytester) -> None:
    result = project.runpytest(*PLUGIN, "--matgrad", "identities", "--collect-only", "-q")
    lines = result.stdout.lines
    assert lines[: len(NODES) + 1] == [*NODES, "test_plain.py::test_plain"]


def test_outcomes_and_messages(project: pytest.Pytester) -> None:
    result = project.runpytest(*PLUGIN, "--matgrad", "identities", "-rxX")
    # right: 2 passed; wrong: 1 failed; known-wrong: 2 xfailed (one claim holds, but the
    # identity is wrong as it says); wrongly-marked: strict XPASS, a failure.
    result.assert_outcomes(passed=3, failed=2, xfailed=2)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*_ wrong: grad X _*",
            "grad X mismatched on trial * at *: claimed *, autograd * (max abs err *); tol rtol=1e-06 atol=0",
            "  identity: wrong (identities/ids.yaml:9)",
            "  reproduce: matgrad check identities/ids.yaml -k wrong --seed 0",
        ]
    )
    assert "Traceback" not in out and "MatgradFailure" not in out
    result.stdout.fnmatch_lines(
        [
            "XFAIL identities/ids.yaml::known-wrong::grad[[]X[]] - expect: fail (a known-wrong identity)",
            "XFAIL identities/ids.yaml::known-wrong::grad[[]A[]] - expect: fail (a known-wrong identity)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*_ wrongly-marked: grad X _*", "[[]XPASS(strict)[]] expect: fail (a known-wrong identity)"]
    )


def test_invalid_identities_fail_even_when_expected_to(project: pytest.Pytester) -> None:
    (project.path / "identities" / "broken.yaml").write_text(textwrap.dedent(BROKEN).lstrip())
    result = project.runpytest(*PLUGIN, "--matgrad", "identities/broken.yaml", "-q", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "identities/broken.yaml:2:5: identity 'no-claim', *: no claim: add at least one of grad:*",
            "identities/broken.yaml:7: identity 'bad-shape', key f: in 'tr(x)': tr needs a square matrix*",
            "  identity: bad-shape (identities/broken.yaml:5)",
        ]
    )
    result = project.runpytest(*PLUGIN, "--matgrad", "identities/broken.yaml", "--collect-only", "-q")
    assert result.stdout.lines[:2] == [
        "identities/broken.yaml::no-claim",
        "identities/broken.yaml::bad-shape::grad[x]",
    ]


def test_unreadable_file_is_one_failing_item(project: pytest.Pytester) -> None:
    (project.path / "identities" / "bad.yaml").write_text("id: a\nvars: {x: [2]\n")
    result = project.runpytest(*PLUGIN, "--matgrad", "identities/bad.yaml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*identities/bad.yaml:3:1: YAML syntax error*"])


def test_k_selects_by_identity_and_claim(project: pytest.Pytester) -> None:
    result = project.runpytest(*PLUGIN, "--matgrad", "identities", "-k", "right and grad[A]", "-q")
    result.assert_outcomes(passed=1, deselected=6)
    result = project.runpytest(*PLUGIN, "--matgrad", "identities", "-k", "wrong and not known and not marked")
    result.assert_outcomes(failed=1, deselected=6)


def test_x_stops_at_the_first_failure(project: pytest.Pytester) -> None:
    (project.path / "identities" / "more.yaml").write_text(
        "id: also-wrong\ndims: {n: 2}\nvars: {X: [n, n]}\nf: sum(X)\ngrad: {X: X}\n"
    )
    result = project.runpytest(*PLUGIN, "--matgrad", "identities", "-x")
    result.assert_outcomes(passed=2, failed=1)  # right (2 claims), then wrong stops the run


def test_junitxml(project: pytest.Pytester) -> None:
    xml = project.path / "out.xml"
    project.runpytest(*PLUGIN, "--matgrad", "identities", f"--junitxml={xml}")
    cases = {
        (c.get("classname"), c.get("name")): c for c in ET.parse(xml).getroot().iter("testcase")
    }
    assert ("identities.ids.yaml.right", "grad[X]") in cases
    failure = cases[("identities.ids.yaml.wrong", "grad[X]")].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("grad X mismatched on trial")
    reproduce = "reproduce: matgrad check identities/ids.yaml -k wrong --seed 0"
    assert reproduce in (failure.text or "")
    # the message is the whole report, as docs/pytest-plugin.md says (not only its first line)
    assert reproduce in failure.get("message", "")
    doc = (Path(__file__).resolve().parent.parent / "docs" / "pytest-plugin.md").read_text()
    assert "whose `message` attribute and text both\n  hold matgrad's whole report" in doc
    assert cases[("identities.ids.yaml.known-wrong", "grad[X]")].find("skipped") is not None


def test_ini_option(project: pytest.Pytester) -> None:
    project.makepyprojecttoml('[tool.pytest.ini_options]\nmatgrad_paths = ["identities"]\n')
    project.runpytest(*PLUGIN).assert_outcomes(passed=3, failed=2, xfailed=2)
    # --matgrad replaces the ini paths
    (project.path / "other.yaml").write_text("id: o\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\n")
    project.runpytest(*PLUGIN, "--matgrad", "other.yaml").assert_outcomes(passed=2)


def test_settings_come_from_tool_matgrad(project: pytest.Pytester) -> None:
    (project.path / "identities" / "near.yaml").write_text(
        'id: near\ndims: {n: 3}\nvars: {X: [n, n]}\nf: sum(X)\ngrad: {X: "ones(n, n) * 1.0001"}\n'
    )
    args = (*PLUGIN, "--matgrad", "identities/near.yaml")
    project.runpytest(*args).assert_outcomes(failed=1, passed=1)
    project.makepyprojecttoml("[tool.matgrad]\nseed = 3\nrtol = 1.0e-3\n")
    result = project.runpytest(*args)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["matgrad: identities/near.yaml (seed 3, float64, settings from *pyproject.toml)"])


def test_each_identity_is_checked_once(project: pytest.Pytester, monkeypatch) -> None:
    import matgrad.engine.core as engine

    calls: list[str] = []
    real = engine.check_identity

    def counting(item, *a, **k):
        calls.append(item.id)
        return real(item, *a, **k)

    monkeypatch.setattr(engine, "check_identity", counting)
    project.runpytest(*PLUGIN, "--matgrad", "identities").assert_outcomes(passed=3, failed=2, xfailed=2)
    assert calls == ["right", "wrong", "known-wrong", "wrongly-marked"]


def test_missing_path_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest(*PLUGIN, "--matgrad", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*matgrad: */nowhere does not exist (from --matgrad or matgrad_paths)*"])


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed")
def test_xdist(project: pytest.Pytester, monkeypatch) -> None:
    # The workers are new processes: they must import this matgrad, not another install.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = project.runpytest(*PLUGIN, "--matgrad", "identities", "-n", "2", "-rxX")
    result.assert_outcomes(passed=3, failed=2, xfailed=2)
    result.stdout.fnmatch_lines(["*grad X mismatched on trial*", "*reproduce: matgrad check identities/ids.yaml -k wrong --seed 0*"])


def test_entry_point_is_declared() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pytest11"] == {
        "matgrad.pytest_plugin": "matgrad.pytest_plugin"
    }


def test_entry_point_is_installed() -> None:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="pytest11") if ep.name == "matgrad.pytest_plugin"]
    if not found:
        pytest.skip("this matgrad install predates its pytest11 entry point: pip install -e .")
    assert found[0].value == "matgrad.pytest_plugin"


def test_plugin_import_is_light() -> None:
    import subprocess

    code = "import sys, matgrad.pytest_plugin\nprint('torch' in sys.modules, 'matgrad.spec.schema' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.split() == ["False", "False"], r.stderr


def test_python_files_beside_identities_are_never_run(project: pytest.Pytester) -> None:
    # an identity folder comes from pull requests: only identity files are collected from it
    marker = project.path / "ran"
    code = f"open({str(marker)!r}, 'a').write('{{}}\\n')\n"
    (project.path / "identities" / "conftest.py").write_text(code.format("conftest"))
    (project.path / "identities" / "test_evil.py").write_text(
        "def test_evil():\n    " + code.format("test")
    )
    result = project.runpytest_subprocess(*PLUGIN, "test_plain.py", "--matgrad", "identities", "-q")
    result.assert_outcomes(passed=3, failed=2, xfailed=2)
    assert not marker.exists(), marker.read_text()
    ids = project.runpytest_subprocess(
        *PLUGIN, "test_plain.py", "--matgrad", "identities", "--collect-only", "-q"
    )
    assert "test_evil" not in ids.stdout.str()
    assert "identities/ids.yaml::right::grad[X]" in ids.stdout.str()


def test_a_hostile_file_name_is_written_out_in_node_ids(project: pytest.Pytester) -> None:
    # pytest prints node ids as they are: the plugin gives identity files escaped ones
    name = "evil\x1b]0;owned\x07\n::error file=README.md::x.yaml"
    (project.path / "identities" / name).write_text(
        "id: wrong2\nvars: {X: [2, 2], A: [2, 2]}\nf: tr(A @ X)\ngrad: {X: A}\n"
    )
    result = project.runpytest_subprocess(*PLUGIN, "--matgrad", "identities", "-q", "-rf")
    out = result.stdout.str()
    assert "wrong2" in out
    assert "\x1b" not in out and "\x07" not in out
    assert not any(line.lstrip().startswith("::") for line in out.splitlines())
