"""The helpers that several modules share, each with one implementation: index ravel/unravel,
"did you mean" hints, let evaluation and constant filling, and the tolerance test."""

from __future__ import annotations

import math

import pytest
import torch

from matgrad.engine import tensors, witness
from matgrad.errors import closest, did_you_mean
from matgrad.lang.expr import Scope, bind, parse
from matgrad.results import Matrix, ravel, unravel

# ---- index ravel / unravel ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flat", "shape", "index"),
    [
        pytest.param(0, (), [], id="scalar"),
        pytest.param(3, (5,), [3], id="vector"),
        pytest.param(5, (2, 3), [1, 2], id="matrix"),
        pytest.param(2, (3, 1), [2, 0], id="column"),
        pytest.param(23, (2, 3, 4), [1, 2, 3], id="3-d"),
    ],
)
def test_ravel_and_unravel(flat: int, shape: tuple[int, ...], index: list[int]) -> None:
    assert unravel(flat, shape) == index
    assert ravel(index, shape) == flat
    m = Matrix(list(shape), [0.0] * math.prod(shape))
    assert m.index(flat) == index and m.flat(index) == flat


def test_ravel_is_row_major_like_torch() -> None:
    x = torch.arange(12).reshape(3, 4)
    for k in range(12):
        i, j = unravel(k, (3, 4))
        assert int(x[i, j]) == k


# ---- did you mean ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "known", "hint"),
    [
        pytest.param("domian", ["domain", "shape"], " (did you mean 'domain'?)", id="typo"),
        pytest.param("spdd", {"spd": 1, "real": 2}, " (did you mean 'spd'?)", id="mapping"),
        pytest.param("zzz", ["domain", "shape"], "", id="nothing close"),
        pytest.param("x", [], "", id="nothing known"),
    ],
)
def test_did_you_mean(word: str, known: object, hint: str) -> None:
    assert did_you_mean(word, known) == hint  # type: ignore[arg-type]


def test_closest() -> None:
    assert closest("tarce", ["trace", "tr"]) == "trace"
    assert closest("qqq", ["trace"]) is None


# ---- let evaluation and constant filling ----------------------------------------------------


def _bound(text: str, **shapes: tuple[int, ...]):  # type: ignore[no-untyped-def]
    return bind(parse(text), Scope(shapes, {"n": 3}))


def test_evaluate_fills_a_constant_to_the_batch() -> None:
    like = torch.zeros(4, dtype=torch.float32)
    out = tensors.evaluate(_bound("2 * n"), {}, like)
    assert out.shape == (4,) and out.dtype == torch.float32
    assert torch.equal(out, torch.full((4,), 6.0))


def test_evaluate_passes_a_tensor_through() -> None:
    like = torch.zeros(2, dtype=torch.float64)
    x = torch.randn(2, 3, 3, dtype=torch.float64)
    assert torch.equal(tensors.evaluate(_bound("X.T", X=(3, 3)), {"X": x}, like), x.mT)


def test_with_lets_evaluates_in_order() -> None:
    like = torch.zeros(2, dtype=torch.float64)
    x = torch.randn(2, 3, 3, dtype=torch.float64)
    lets = [("A", _bound("X + X", X=(3, 3))), ("B", _bound("A @ A", A=(3, 3))), ("c", _bound("n"))]
    env = tensors.with_lets(lets, {"X": x}, like)
    assert torch.allclose(env["B"], (2 * x) @ (2 * x))
    assert torch.equal(env["c"], torch.full((2,), 3.0, dtype=torch.float64))


def test_fill_like() -> None:
    like = torch.zeros(2, 3, 3)
    per_trial = torch.tensor([1.0, 2.0])
    filled = tensors.fill_like(per_trial, like)
    assert filled.shape == (2, 3, 3) and (filled[1] == 2.0).all()
    same = torch.arange(18.0).reshape(2, 9)
    assert torch.equal(tensors.fill_like(same, like), same.reshape(2, 3, 3))


def test_rows_and_per_trial() -> None:
    assert tensors.rows(torch.ones(4), torch.zeros(4, 2, 3)).shape == (4, 1, 1)
    ref, val = tensors.per_trial(torch.zeros(2, 3, 3), torch.tensor([5.0, 6.0]))
    assert ref.shape == val.shape == (2, 9) and (val[1] == 6.0).all()


# ---- the tolerance ---------------------------------------------------------------------------


def test_tolerance_scales_atol_by_each_trial_largest_entry() -> None:
    # no floor at 1: a trial of small entries gets a small atol term
    mag = torch.tensor([[0.5, 0.0], [10.0, 2.0]], dtype=torch.float64)
    bound = tensors.tolerance(mag, rtol=1e-3, atol=1e-2)
    expected = torch.tensor(
        [[1e-2 * 0.5 + 1e-3 * 0.5, 1e-2 * 0.5], [1e-2 * 10 + 1e-3 * 10, 1e-2 * 10 + 1e-3 * 2]],
        dtype=torch.float64,
    )
    assert torch.allclose(bound, expected, rtol=0, atol=1e-15)


def test_taylor_symmetry_check_uses_each_trial_scale() -> None:
    # trial 0 is large and symmetric, trial 1 small and not symmetric by 1e-5: the scale of
    # trial 0 must not hide trial 1 (it did when the check took one scale over all trials)
    c = torch.zeros(2, 2, 2, dtype=torch.float64)
    c[0] = 1e6 * torch.eye(2)
    c[1, 0, 1] = 1e-5
    assert not witness._symmetric(c, rtol=1e-6, atol=1e-9)
    c[1, 1, 0] = 1e-5
    assert witness._symmetric(c, rtol=1e-6, atol=1e-9)
