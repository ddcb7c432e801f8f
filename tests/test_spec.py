from __future__ import annotations

from pathlib import Path

import pytest

from matgrad.limits import Limits
from matgrad.spec.schema import Identity, Invalid, load_all, load_text, validate

GOOD = """
id: good
dims: {n: 3}
vars: {X: {shape: [n, n]}}
f: tr(X)
grad: {X: eye(n)}
"""


def problems(text: str, path: str = "f.yaml") -> list[str]:
    items = load_text(text, path)
    return [str(err) for _, err in validate(items) if err is not None]


def only_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_good_identity_loads() -> None:
    (ident,) = load_text(GOOD, "f.yaml")
    assert isinstance(ident, Identity)
    assert ident.id == "good"
    assert ident.vars["X"].shape == (3, 3)
    assert ident.vars["X"].domain == "real"
    assert [c.label for c in ident.claims] == ["grad X"]
    assert problems(GOOD) == []


def test_identities_list_and_lines() -> None:
    text = "identities:\n" + "".join(
        f"  - id: i{k}\n    vars: {{x: {{shape: [2]}}}}\n    f: sum(x)\n    grad: {{x: ones(2)}}\n"
        for k in range(3)
    )
    items = load_text(text, "f.yaml")
    assert [i.id for i in items] == ["i0", "i1", "i2"]
    assert [i.line for i in items] == [2, 6, 10]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}\nf: sum(x)\n",
            "f.yaml:3:1: YAML syntax error",
            id="malformed-yaml",
        ),
        pytest.param(
            "id: a\nid: b\nvars: {x: {shape: [2]}}\nf: sum(x)\ngrad: {x: ones(2)}\n",
            "f.yaml:2:1: duplicate key 'id' (first at line 1)",
            id="duplicate-key",
        ),
        pytest.param(
            "id: a\ndims: &d {n: 2}\nvars: {x: {shape: [2]}}\nf: sum(x)\ngrad: {x: ones(2)}\n"
            "notes: *d\n",
            "aliases (&name / *name) are not allowed",
            id="alias",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: *x\ngrad: {x: ones(2)}\n",
            "(an expression starting with * is read as a YAML alias: quote it)",
            id="expression-read-as-alias",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: @x\n",
            "(an expression starting with @ or ` must be quoted)",
            id="at-sign",
        ),
        pytest.param(
            "id: a\nvars: !!python/object:os.system {x: 1}\nf: x\n",
            "f.yaml:2:7: YAML tag 'tag:yaml.org,2002:python/object:os.system' is not allowed",
            id="python-tag",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: sum(x)\ngrda: {x: ones(2)}\n",
            "f.yaml:4:1: identity 'a', key grda: unknown key 'grda' in an identity "
            "(did you mean 'grad'?)",
            id="unknown-key",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\ngrad: {x: ones(2)}\n",
            "identity 'a': missing required key 'f'",
            id="missing-f",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: sum(x)\n",
            "identity 'a': no claim: add at least one of grad:, differential:, hessian:, "
            "jacobian: (VAR: EXPR) or implementation: [VAR]",
            id="missing-claims",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [n]}}\nf: sum(x)\ngrad: {x: x}\n",
            "f.yaml:2:20: identity 'a', key vars.x.shape: unknown dim 'n' (known: none declared)",
            id="unknown-dim",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: 3}}\nf: sum(x)\ngrad: {x: x}\n",
            "key vars.x.shape: shape must be a list of dims or integers like [n, 3], got 3",
            id="shape-not-list",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2], domain: posdef}}\nf: sum(x)\ngrad: {x: x}\n",
            "key vars.x.domain: unknown domain 'posdef'",
            id="unknown-domain",
        ),
        pytest.param(
            "id: a\nvars: {X: {shape: [2, 3], domain: spd}}\nf: sum(X)\ngrad: {X: X}\n",
            "key vars.X: domain spd needs a square [n, n] shape, but X has shape [2, 3]",
            id="domain-shape",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: sum(x +)\ngrad: {x: x}\n",
            "f.yaml:3: identity 'a', key f: syntax error",
            id="syntax-error",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: summ(x)\ngrad: {x: x}\n",
            "key f: unknown function 'summ' (did you mean 'sum'?)",
            id="unknown-function",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: sum(y)\ngrad: {x: x}\n",
            "key f: unknown name 'y'",
            id="unknown-name",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: sum(x, x)\ngrad: {x: x}\n",
            "key f: sum takes 1 argument, got 2",
            id="arity",
        ),
        pytest.param(
            "id: a\ndims: {m: 2, n: 3}\nvars: {A: {shape: [m, n]}}\nf: tr(A @ A)\ngrad: {A: A}\n",
            "f.yaml:4: identity 'a', key f: shape mismatch in 'A @ A': 'A' is [2, 3] and 'A' is "
            "[2, 3]; @ needs the inner sizes to agree (3 vs 2)",
            id="shape-mismatch",
        ),
        pytest.param(
            "id: a\nvars: {X: {shape: [2, 2]}}\nf: X @ X\ngrad: {X: X}\n",
            "key grad: a grad claim needs a scalar f, but f has shape [2, 2]",
            id="grad-of-nonscalar",
        ),
        pytest.param(
            "id: a\nvars: {X: {shape: [2, 2]}}\nf: X\nhessian: {X: X}\n",
            "a hessian claim needs a scalar f, but f has shape [2, 2]",
            id="hessian-of-nonscalar",
        ),
        pytest.param(
            "id: a\nvars: {X: {shape: [2, 2]}}\nf: tr(X)\ngrad: {X: dX}\n",
            "name 'dX' is a direction: it can only be used in a differential claim",
            id="direction-outside-differential",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: sum(x)\ngrad: {x: no}\n",
            "key grad.x: expected an expression, but YAML read the boolean 'no'; put the "
            "expression in quotes",
            id="boolean-expression",
        ),
        pytest.param(
            "id: a\ndims: {n: 2}\nvars: {x: {shape: [n]}}\nf: sum(x)\ngrad: {x: ones(n, n), y: x}\n",
            "quote expressions that contain commas",
            id="comma-in-flow-mapping",
        ),
        pytest.param(
            "id: a\nvars: {on: {shape: [2]}}\nf: sum(x)\ngrad: {x: x}\n",
            "key 'on' is read by YAML as a bool, not a name; quote it ('on')",
            id="yaml-boolean-key",
        ),
        pytest.param(
            "id: a\nvars: {tr: {shape: [2]}}\nf: sum(tr)\ngrad: {tr: tr}\n",
            "variable name 'tr' shadows the function tr()",
            id="shadows-function",
        ),
        pytest.param(
            "id: a\ndims: {X: 2}\nvars: {X: {shape: [2]}}\nf: sum(X)\ngrad: {X: X}\n",
            "variable name 'X' is already used as a dim",
            id="name-clash",
        ),
        pytest.param(
            "id: a\nvars: {X: {shape: [2]}, dX: {shape: [2]}}\nf: sum(X)\ngrad: {X: X}\n",
            "name 'dX' clashes with the direction of variable 'X'",
            id="direction-clash",
        ),
        pytest.param(
            "id: Bad Id\nvars: {x: {shape: [2]}}\nf: sum(x)\ngrad: {x: x}\n",
            "id 'Bad Id' must match",
            id="bad-id",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: sum(x)\ngrad: {x: x}\ntol: {rtol: -1}\n",
            "tol.rtol: rtol must be a finite number >= 0",
            id="negative-tol",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: sum(x)\ngrad: {x: x}\nexpect: maybe\n",
            "expect must be pass or fail",
            id="bad-expect",
        ),
        pytest.param(
            "id: a\nvars: {x: {shape: [2]}}\nf: sum(x)\ngrad: {x: x}\ntrials: 0\n",
            "trials must be a positive integer, got 0",
            id="bad-trials",
        ),
        pytest.param("- 1\n- 2\n", "expected a mapping (one identity)", id="top-level-list"),
        pytest.param("", "the file is empty", id="empty"),
        pytest.param(
            "id: a\n---\nid: b\n", "several YAML documents (---) in one file", id="multi-doc"
        ),
    ],
)
def test_bad_input(text: str, expected: str) -> None:
    assert expected in only_problem(text)


def test_float_without_dot_is_accepted() -> None:
    text = GOOD + "tol: {rtol: 1e-6, atol: 1e-9}\n"
    (ident,) = load_text(text, "f.yaml")
    assert isinstance(ident, Identity)
    assert (ident.tol.rtol, ident.tol.atol) == (1e-6, 1e-9)


def test_bare_number_expression() -> None:
    text = "id: a\nvars: {c: {shape: []}}\nf: 3 * c\ngrad: {c: 3}\n"
    (ident,) = load_text(text, "f.yaml")
    assert isinstance(ident, Identity)
    assert ident.claims[0].text == "3"


def test_shape_shorthand() -> None:
    (ident,) = load_text("id: a\nvars: {x: [2, 1]}\nf: sum(x)\ngrad: {x: \"ones(2, 1)\"}\n", "f.yaml")
    assert isinstance(ident, Identity)
    assert ident.vars["x"].shape == (2, 1)


def test_one_bad_identity_does_not_hide_the_others() -> None:
    text = """
identities:
  - id: first
    vars: {x: {shape: [2]}}
    f: sum(x)
    grad: {x: ones(2)}
  - id: broken
    vars: {x: {shape: [2]}}
    f: sum(x)
    graad: {x: ones(2)}
  - id: third
    vars: {x: {shape: [2]}}
    f: sum(x)
    grad: {x: ones(2)}
"""
    items = load_text(text, "f.yaml")
    assert [type(i).__name__ for i in items] == ["Identity", "Invalid", "Identity"]
    assert items[1].id == "broken"


def test_duplicate_ids_across_files(write) -> None:
    a = write(GOOD, "a.yaml")
    write(GOOD, "sub/b.yaml")
    items = load_all([str(Path(a).parent)])
    assert isinstance(items[0], Identity)
    assert isinstance(items[1], Invalid)
    assert "duplicate id 'good' (first defined at" in str(items[1].error)


def test_folder_is_searched_recursively_and_hidden_folders_skipped(write, tmp_path) -> None:
    write(GOOD, "deep/er/one.yml")
    write(GOOD.replace("good", "two"), "two.yaml")
    write(GOOD.replace("good", "hidden"), ".hidden/h.yaml")
    write("not yaml", "notes.txt")
    ids = sorted(i.id for i in load_all([str(tmp_path)]))
    assert ids == ["good", "two"]


def test_unreadable_file(write, monkeypatch) -> None:
    import matgrad.spec.schema

    path = write(GOOD)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(matgrad.spec.schema, "open", denied, raising=False)
    (item,) = load_all([path])
    assert isinstance(item, Invalid)
    assert str(item.error) == f"{path}: cannot read the file: Permission denied"


def test_file_that_is_not_utf8(tmp_path) -> None:
    target = tmp_path / "x.yaml"
    target.write_bytes(b"\xff\xfe not utf8")
    (item,) = load_all([str(target)])
    assert isinstance(item, Invalid)
    assert "not UTF-8 text" in str(item.error)


def test_file_size_limit(write) -> None:
    path = write(GOOD)
    (item,) = load_all([path], Limits(max_file_bytes=10))
    assert isinstance(item, Invalid)
    assert "over the limit max_file_bytes=10" in str(item.error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "id: a\nvars: {X: [2, 2], Y: [2, 2]}\nlet: {L: dX + dY}\nf: tr(X @ Y)\n"
            "differential: {X: tr(dX @ Y)}\n",
            "f.yaml:3: identity 'a', key let.L: let 'L' uses the directions of X, Y; a let may "
            "use the direction of one variable only",
            id="let-with-two-directions",
        ),
        pytest.param(
            "id: a\nvars: {X: [2, 2]}\nf: X\nhessian: {X: X}\n",
            "f.yaml:4: identity 'a', key hessian: a hessian claim needs a scalar f, but f has "
            "shape [2, 2]; use a differential claim for a non-scalar f",
            id="hessian-of-a-matrix-f",
        ),
    ],
)
def test_compile_problems_given_as_text_are_located(text: str, expected: str) -> None:
    # compile_identity locates both exceptions and plain messages; a message gets the same
    # file:line, identity and key as an exception does.
    assert only_problem(text) == expected
