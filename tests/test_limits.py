"""Every limit has a default, a flag that moves it, an error that names it, and a doc entry;
and SECURITY.md names only tests that exist."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.limits import DEFAULT_LIMITS, Limits

ROOT = Path(__file__).resolve().parent.parent
SMALL = "id: a\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\n"

# (limit, file text, a value the file exceeds, a value it fits)
CASES = [
    ("max_file_bytes", SMALL, 10, 1000),
    ("max_identities_per_file",
     "identities:\n  - " + SMALL.replace("\n", "\n    ").rstrip() + "\n  - "
     + SMALL.replace("id: a", "id: b").replace("\n", "\n    ").rstrip() + "\n", 1, 2),
    ("max_yaml_depth", SMALL, 3, 4),  # file, vars, x, [2]
    ("max_expr_chars", SMALL, 5, 7),
    ("max_expr_depth", SMALL, 1, 2),
    ("max_expr_nodes", SMALL, 1, 2),
    ("max_lets", SMALL + "let: {s: x, t: x}\n", 1, 2),
    ("max_dim", SMALL, 1, 2),
    ("max_rank", "id: a\nvars: {x: [2, 1, 1]}\nf: sum(x)\ngrad: {x: \"ones(2, 1, 1)\"}\n", 2, 3),
    ("max_trials", SMALL + "trials: 3\n", 2, 3),
    ("max_power", SMALL.replace("sum(x)", "sum(x ** 3)").replace("ones(2)", '"3 * x ** 2"'), 2, 3),
    ("max_elements", SMALL, 10, 1000),
    ("max_work", SMALL, 1000, 10**9),
    ("max_tol", SMALL + "tol: {rtol: 0.01}\n", 0.001, 0.1),
]


def test_every_limit_has_a_case() -> None:
    # max_fd_evals bounds a witness that only `check --fd` runs: tested on its own below.
    names = [c[0] for c in CASES] + ["max_fd_evals"]
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(Limits))


def test_fd_evaluation_limit(write) -> None:
    path = write(SMALL)
    r = CliRunner().invoke(app, ["check", path, "--fd", "--limit", "max_fd_evals=1"])
    assert r.exit_code == 3, r.output
    assert "over the limit max_fd_evals=1 (raise it with --limit max_fd_evals=N" in r.stdout
    r = CliRunner().invoke(app, ["check", path, "--fd", "--limit", "max_fd_evals=8"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(("name", "text", "low", "high"), CASES, ids=[c[0] for c in CASES])
def test_flag_moves_the_limit_and_the_error_names_it(
    write, name: str, text: str, low: int, high: int
) -> None:
    path = write(text)
    r = CliRunner().invoke(app, ["validate", path, "--limit", f"{name}={low}"])
    assert r.exit_code == 3, r.output
    assert f"over the limit {name}={low} (raise it with --limit" in r.stdout
    r = CliRunner().invoke(app, ["validate", path, "--limit", f"{name}={high}"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["check", path, "--limit", f"{name}={high}"])
    assert r.exit_code == 0, r.output


def test_bad_limit_flags_are_usage_errors() -> None:
    for flag in ["max_dims=5", "max_dim=0", "max_dim=big", "max_dim"]:
        r = CliRunner().invoke(app, ["validate", str(ROOT / "identities"), "--limit", flag])
        assert r.exit_code == 2, flag
    r = CliRunner().invoke(app, ["validate", str(ROOT / "identities"), "--limit", "max_dims=5"])
    assert "unknown limit 'max_dims' (known: max_dim, max_elements," in r.output


def _doc_table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| ([\d.,]+) \| `--limit (\w+)=[NX]` \|", text, re.M)
    return {name: (default.replace(",", ""), flag) for name, default, flag in rows}


def test_docs_list_every_limit_with_its_default_and_flag() -> None:
    table = _doc_table()
    expected = {
        f.name: (str(getattr(DEFAULT_LIMITS, f.name)), f.name) for f in dataclasses.fields(Limits)
    }
    assert table == expected


def _collected(files: list[str]) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return {line for line in r.stdout.splitlines() if "::" in line}


@pytest.mark.parametrize(
    ("doc", "at_least"), [("SECURITY.md", 100), ("docs/architecture.md", 25)]
)
def test_docs_name_real_tests(doc: str, at_least: int) -> None:
    # SECURITY.md ties each guarantee, and docs/architecture.md each "one place to change", to
    # the test that proves it: every test they name must exist.
    text = (ROOT / doc).read_text(encoding="utf-8")
    refs: list[tuple[str, str | None]] = []  # (file::test, param id or None)
    last = None
    for _full, name, param, bare in re.findall(
        r"`((tests/\w+\.py::\w+)(?:\[([^\]`]+)\])?)`|`\[([^\]`]+)\]`", text
    ):
        if name:
            refs.append((name, param or None))
            last = name
        else:
            assert last is not None, bare
            refs.append((last, bare))
    assert len(refs) >= at_least
    nodes = _collected(sorted({r.split("::")[0] for r, _ in refs}))
    tests = {n.split("[")[0] for n in nodes}
    missing = [
        (name, param)
        for name, param in refs
        if (name not in tests if param is None else f"{name}[{param}]" not in nodes)
    ]
    assert missing == []


def test_the_degeneracy_guard_surveys_are_in_the_work_budget() -> None:
    # The guard evaluates f up to GUARD_SURVEYS times per draw: an identity whose autograd check
    # fits max_work but whose guarded draws would not is refused before anything is drawn.
    from matgrad.spec import budget
    from matgrad.spec.schema import compile_identity, load_text

    text = "id: t\nvars: {x: [50]}\nf: sum(relu(x) ** 2)\ngrad: {x: 2 * relu(x)}\n"
    (item,) = load_text(text, "t.yaml")
    est = compile_identity(item, 100).estimate
    assert est.guard == budget.GUARD_SURVEYS * est.f_work * 100 > 0
    with pytest.raises(Exception, match="max_work"):
        compile_identity(item, 100, Limits(max_work=est.total + est.guard // 2))
    compile_identity(item, 100, Limits(max_work=est.total + est.guard))
    (plain,) = load_text(text.replace("relu(x)", "exp(x)"), "t.yaml")
    assert compile_identity(plain, 100).estimate.guard == 0  # nothing to measure


def test_a_rank_draw_is_counted_in_the_work_budget() -> None:
    # drawing a rank-k matrix multiplies its factors and projects its direction (an SVD): about
    # a QR of the larger side, like the orthogonal draws
    from matgrad.spec import budget

    plain = budget.sample_work((300, 200), "real")
    ranked = budget.sample_work((300, 200), "rank")
    assert ranked - plain == budget.QR * 300**3
