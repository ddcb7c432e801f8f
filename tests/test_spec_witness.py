"""The `witness:` key of an identity."""

from __future__ import annotations

import pytest

from matgrad.spec.schema import Identity, load_text, validate

BASE = "id: w\nvars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2)}\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("", None, id="absent"),
        pytest.param("witness: [autograd, fd, taylor]", ("autograd", "fd", "taylor"), id="all"),
        pytest.param("witness: [taylor, fd]", ("taylor", "fd"), id="no-autograd"),
        pytest.param("witness: fd", ("fd",), id="single-name"),
    ],
)
def test_witness_loads(line: str, expected: tuple[str, ...] | None) -> None:
    (ident,) = load_text(BASE + line + "\n", "f.yaml")
    assert isinstance(ident, Identity)
    assert ident.witness == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(
            "witness: [autograd, fdd]",
            "f.yaml:5:21: identity 'w', key witness: witness must be a list of autograd, fd, "
            "taylor, got 'fdd' (did you mean 'fd'?)",
            id="typo",
        ),
        pytest.param(
            "witness: [fd, fd]",
            "f.yaml:5:15: identity 'w', key witness: witness 'fd' is listed twice",
            id="duplicate",
        ),
        pytest.param(
            "witness: []",
            "f.yaml:5:10: identity 'w', key witness: witness must name at least one of autograd, "
            "fd, taylor",
            id="empty",
        ),
        pytest.param(
            "witness: {fd: 1}",
            "f.yaml:5:10: identity 'w', key witness: witness must be a list of autograd, fd, "
            "taylor, got a mapping",
            id="mapping",
        ),
        pytest.param(
            "witnesses: [fd]",
            "f.yaml:5:1: identity 'w', key witnesses: unknown key 'witnesses' in an identity "
            "(did you mean 'witness'?); known keys: ",
            id="plural-key",
        ),
    ],
)
def test_witness_errors(line: str, message: str) -> None:
    items = load_text(BASE + line + "\n", "f.yaml")
    (err,) = [str(e) for _, e in validate(items) if e is not None]
    assert err.startswith(message), err
