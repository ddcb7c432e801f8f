from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import pytest
from samples import RIGHT, WRONG

import matgrad
import matgrad.api
from matgrad.api import LoadError
from matgrad.errors import SpecError
from matgrad.results import IdentityResult, RunReport
from matgrad.spec.schema import DEFAULT_TRIALS, Identity, Invalid

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "identities" / "seed.yaml")

SQ = {"X": ["n", "n"], "A": ["n", "n"]}


def test_docstring_examples(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    result = doctest.testmod(matgrad.api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 12
    assert result.failed == 0


def test_docs_examples(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    result = doctest.testfile(
        str(ROOT / "docs" / "python-api.md"), module_relative=False, optionflags=doctest.ELLIPSIS
    )
    assert result.attempted >= 10
    assert result.failed == 0


def test_load_returns_identities_in_file_order() -> None:
    idents = matgrad.load(SEED)
    assert all(isinstance(i, Identity) for i in idents)
    assert [i.id for i in idents][:3] == [
        "seed-linear-form",
        "seed-linear-form-transposed",
        "seed-bilinear-affine",
    ]
    assert [i.id for i in matgrad.load([Path(SEED)], select=["*sign"])] == [
        "seed-trace-inverse-sign"
    ]


def test_load_reports_every_problem(write) -> None:
    write(RIGHT, "a.yaml")
    write("id: b\nvars: {x: [2]}\nf: tr(x)\ngrad: {x: x}\n", "b.yaml")
    path = write("id: c\nvars: {x: [2]}\nf: sum(x\ngrad: {x: x}\n", "c.yaml")
    with pytest.raises(LoadError) as info:
        matgrad.load(Path(path).parent)
    messages = [str(e) for e in info.value.errors]
    assert len(messages) == 2
    assert messages[0].endswith(
        "b.yaml:3: identity 'b', key f: in 'tr(x)': tr needs a square matrix, got shape [2] (x: [2])"
    )
    assert "c.yaml:3: identity 'c', key f: syntax error" in messages[1]
    assert str(info.value) == "\n".join(messages)


def test_collect_keeps_invalid_entries(write) -> None:
    path = write("id: a\nvars: {x: [2]}\nf: sum(x\n")
    (item,) = matgrad.collect(path)
    assert isinstance(item, Invalid)
    assert item.id == "a"


def test_check_paths_identities_and_mixes(write) -> None:
    right, wrong = write(RIGHT, "right.yaml"), write(WRONG, "wrong.yaml")
    report = matgrad.check([right, *matgrad.load(wrong)], trials=2)
    assert isinstance(report, RunReport)
    assert [(r.id, r.status) for r in report.results] == [("right", "passed"), ("wrong", "failed")]
    assert report.ok is False
    assert report.results[0].trials == 2
    one = matgrad.check(matgrad.load(right)[0])
    assert one.ok and one.results[0].trials == DEFAULT_TRIALS
    assert matgrad.check([]).ok is False  # nothing checked is not a success


def test_check_reports_broken_files_as_errors(write) -> None:
    report = matgrad.check(write("id: a\nvars: {x: [2]}\nf: sum(x\ngrad: {x: x}\n"))
    assert [r.status for r in report.results] == ["error"]
    assert "syntax error" in report.results[0].message
    assert not report.ok


def test_check_tolerances_and_dtype(write) -> None:
    # A claim off by 1e-4 fails at the float64 defaults and passes with a loose rtol/atol.
    path = write(
        "id: near\ndims: {n: 3}\nvars: {X: [n, n]}\nf: sum(X)\ngrad: {X: \"ones(n, n) * 1.0001\"}\n"
    )
    assert matgrad.check(path).results[0].status == "failed"
    assert matgrad.check(path, rtol=1e-3).results[0].status == "passed"
    assert matgrad.check(path, atol=1e-3).results[0].status == "passed"
    assert matgrad.check(path, dtype="float32").dtype == "float32"


def test_check_callbacks_in_order(write) -> None:
    path = write(RIGHT, "a.yaml")
    write(WRONG, "b.yaml")
    seen: list[str] = []
    matgrad.check(
        Path(path).parent,
        on_start=lambda item: seen.append(f"start {item.id}"),
        on_result=lambda res: seen.append(f"done {res.id}"),
    )
    assert seen == ["start right", "done right", "start wrong", "done wrong"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dtype": "float16"}, ValueError, "dtype must be one of float64, float32, got 'float16'"),
        ({"device": "tpu"}, ValueError, "device must be one of auto, cpu, cuda, got 'tpu'"),
        ({"trials": 0}, ValueError, "trials must be a positive integer, got 0"),
    ],
)
def test_check_rejects_bad_arguments(kwargs, error, message) -> None:
    with pytest.raises(error) as info:
        matgrad.check(SEED, **kwargs)
    assert str(info.value) == message


def test_check_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="expected an Identity or a file or folder name, got int"):
        matgrad.check([SEED, 3])  # type: ignore[list-item]


def test_check_identity_inline() -> None:
    r = matgrad.check_identity(f="tr(A @ X)", grad={"X": "A.T"}, vars=SQ, dims={"n": 3})
    assert isinstance(r, IdentityResult)
    assert (r.id, r.status, r.file) == ("inline", "passed", "<inline>")
    r = matgrad.check_identity(
        id="diff-inverse",
        f="inv(X)",
        differential={"X": "-inv(X) @ dX @ inv(X)"},
        vars={"X": {"shape": (3, 3), "domain": "invertible"}},
        trials=4,
    )
    assert (r.id, r.status, r.trials) == ("diff-inverse", "passed", 4)
    r = matgrad.check_identity(
        f="x.T @ A @ x", hessian={"x": "2 * A"}, vars={"x": [3, 1], "A": [3, 3]}, expect="fail"
    )
    assert r.status == "xfailed"


def test_check_identity_shared_shape_object_is_not_an_alias() -> None:
    shape = ["n", "n"]  # one list used twice would become a YAML anchor and alias
    r = matgrad.check_identity(f="tr(A @ X)", grad={"X": "A.T"}, vars={"X": shape, "A": shape}, dims={"n": 2})
    assert r.status == "passed"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"f": "tr(X", "grad": {"X": "eye(3)"}},
            "identity 'inline', key f: syntax error at column 3: '(' was never closed",
            id="syntax",
        ),
        pytest.param(
            {"f": "__import__('os')", "grad": {"X": "eye(3)"}},
            "identity 'inline', key f: ",
            id="no-python",
        ),
        pytest.param(
            {"f": "tr(X)", "grad": {"Y": "eye(3)"}},
            "identity 'inline', key grad.Y: grad claim for 'Y', which is not declared in vars",
            id="undeclared",
        ),
        pytest.param(
            {"f": "tr(X)", "grad": {"X": "eye(3)"}, "tol": {"rtol": object()}},
            "identity 'inline', key tol.rtol: a object cannot be used here: inline fields take "
            "text, numbers, lists and dicts",
            id="python-object",
        ),
        pytest.param(
            {"f": "tr(X)", "grad": {"X": "eye(3)"}, "id": "Not An Id"},
            "identity 'Not An Id', key id: id 'Not An Id' must match [a-z0-9][a-z0-9._-]* "
            "(lowercase, no spaces)",
            id="bad-id",
        ),
    ],
)
def test_check_identity_errors(fields, message) -> None:
    kwargs = {"vars": {"X": [3, 3]}, **fields}
    with pytest.raises(SpecError) as info:
        matgrad.check_identity(**kwargs)
    assert str(info.value).startswith(message)


def test_check_identity_uses_the_same_limits() -> None:
    from matgrad.limits import Limits

    with pytest.raises(SpecError, match="over the limit max_dim=2"):
        matgrad.check_identity(
            f="tr(X)", grad={"X": "eye(n)"}, vars={"X": ["n", "n"]}, dims={"n": 3},
            limits=Limits(max_dim=2),
        )


def test_package_exports() -> None:
    import matgrad.engine.core  # importing the engine must not shadow the API

    assert matgrad.check is matgrad.api.check
    assert matgrad.load is matgrad.api.load
    assert matgrad.Identity is Identity and matgrad.RunReport is RunReport
    assert {"load", "check", "check_identity", "collect", "RunReport"} <= set(matgrad.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        matgrad.nope  # noqa: B018


def _probe(code: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_import_matgrad_and_load_do_not_import_torch() -> None:
    out = _probe(
        "import sys, matgrad\n"
        "print('torch' in sys.modules)\n"
        "matgrad.load('identities/seed.yaml'); matgrad.collect('identities')\n"
        "print('torch' in sys.modules)\n"
        "matgrad.check_identity\n"
        "print('torch' in sys.modules)\n"
    )
    assert out == ["False", "False", "False"]


def test_check_imports_torch_when_called() -> None:
    # The meta-test: the probe above would see torch.
    out = _probe(
        "import sys, matgrad\n"
        "r = matgrad.check('identities/seed.yaml', select='seed-linear-form', trials=1)\n"
        "print('torch' in sys.modules, r.results[0].status)\n"
    )
    assert out == ["True", "passed"]
