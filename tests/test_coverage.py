"""Coverage of the domain (draws at several scales, the default number of trials) and undefined
draws (NaN/Inf on some draws: drawn again, or refused, the same way on every seed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from matgrad.engine import core, degeneracy
from matgrad.engine.core import check_identity
from matgrad.lang import domains
from matgrad.report import FORMATS, renderer
from matgrad.results import RunReport
from matgrad.settings import Settings
from matgrad.spec.schema import DEFAULT_TRIALS, load_text

SEEDS = range(50)  # a 200-seed sweep is documented in docs/limits.md


def _item(body: str) -> Any:
    (item,) = load_text("id: t\n" + body, "t.yaml")
    return item


def _statuses(body: str, **settings: Any) -> dict[str, int]:
    item = _item(body)
    out: dict[str, int] = {}
    for seed in SEEDS:
        status = check_identity(item, Settings(seed=seed, **settings), "cpu").status
        out[status] = out.get(status, 0) + 1
    return out


# ---- a claim wrong only in a region away from the origin ----------------------------------------

# Each claim is right where x > -3 and wrong elsewhere. With standard normal draws and the old
# default of 10 trials, such a claim passed on about 19 seeds of 20.
REGION_LIMITED = [
    pytest.param("vars: {x: [3]}\nf: sum(relu(x + 3))\ngrad: {x: ones(3)}\n", id="relu"),
    pytest.param("vars: {x: [3]}\nf: sum(abs(x + 3))\ngrad: {x: ones(3)}\n", id="abs"),
    pytest.param("vars: {x: []}\nf: relu(x + 3)\ngrad: {x: 1}\n", id="relu-scalar"),
    pytest.param(
        "vars: {X: [2, 2]}\nf: sum(relu(X + 3) ** 2)\ngrad: {X: 2 * (X + 3)}\n", id="relu-squared"
    ),
]


@pytest.mark.parametrize("body", REGION_LIMITED)
def test_a_claim_wrong_only_where_x_below_minus_3_fails_on_every_seed(body: str) -> None:
    assert _statuses(body) == {"failed": len(SEEDS)}


def test_the_default_trials_visit_every_scale() -> None:
    assert DEFAULT_TRIALS == 100
    r = check_identity(_item(REGION_LIMITED[0].values[0]), Settings(), "cpu")
    assert r.trials == DEFAULT_TRIALS
    # The failing trial is a trial at scale 10 (trial i has scale SCALES[i % 3]).
    (c,) = r.claims
    assert c.worst is not None and domains.SCALES[c.worst.trial % 3] == 10.0


def test_draws_stay_reproducible_from_the_seed() -> None:
    item = _item("vars: {x: [3], A: {shape: [3, 3], domain: spd}}\nf: sum(A @ x)\n"
                 "grad: {x: A @ ones(3)}\n")
    first = core._draw(item, 30, 5)
    again = core._draw(item, 30, 5)
    assert all(torch.equal(first[0][k], again[0][k]) for k in first[0])
    other = core._draw(item, 30, 6)
    assert not torch.equal(first[0]["x"], other[0]["x"])


# ---- undefined draws ------------------------------------------------------------------------------


LOG_PLUS_3 = "vars: {x: [3]}\nf: sum(log(x + 3))\ngrad: {x: 1 / (x + 3)}\n"
LOG_PLUS_3_WRONG = "vars: {x: [3]}\nf: sum(log(x + 3))\ngrad: {x: 1 / (x + 2)}\n"
LOG_MINUS_3 = "vars: {x: [3]}\nf: sum(log(x - 3))\ngrad: {x: 1 / (x - 3)}\n"


def test_mostly_defined_f_passes_with_a_warning_on_every_seed() -> None:
    # Was: log(x + 3) with standard normal x was an error on about 1 seed in 17 (NaN on a
    # trial) and passed on the others, without a word.
    item = _item(LOG_PLUS_3)
    for seed in SEEDS:
        r = check_identity(item, Settings(seed=seed), "cpu")
        assert r.status == "passed", (seed, r.message)
        assert 0 < r.undefined < r.trials and r.redrawn_undefined >= r.undefined
        (warning,) = r.warnings
        assert warning.startswith(f"f gives NaN/Inf on {r.undefined} of {r.trials} draws (")
        assert "e.g. positive" in warning


def test_a_wrong_claim_on_a_mostly_defined_f_fails_on_every_seed() -> None:
    assert _statuses(LOG_PLUS_3_WRONG) == {"failed": len(SEEDS)}


@pytest.mark.parametrize("expect", ["pass", "fail"])
def test_mostly_undefined_f_is_refused_on_every_seed(expect: str) -> None:
    item = _item(LOG_MINUS_3 + f"expect: {expect}\n")
    for seed in SEEDS:
        r = check_identity(item, Settings(seed=seed), "cpu")
        assert r.status == "error" and not r.ok, (seed, r.status)
        assert "f gives NaN/Inf on " in r.message
        assert "of the 33 at scale 0.1 (near the origin): undefined on much of the domain" in (
            r.message
        )


# Undefined on half the domain at every scale: refused on every seed, never a pass or a pass
# that depends on the seed (redraws alone would leave log(x) of a scalar undefined on some seeds
# and not on others).
@pytest.mark.parametrize(
    "body",
    [
        pytest.param("vars: {x: []}\nf: log(x)\ngrad: {x: 1 / x}\n", id="log-scalar"),
        pytest.param("vars: {x: [3]}\nf: sum(sqrt(x))\ngrad: {x: 0.5 / sqrt(x)}\n", id="sqrt"),
        pytest.param("vars: {x: []}\nf: x\ngrad: {x: 1 + 0 * sqrt(x)}\n", id="claim-nan-half"),
    ],
)
def test_undefined_on_half_the_domain_is_refused_on_every_seed(body: str) -> None:
    assert _statuses(body) == {"error": len(SEEDS)}


# With few trials there are only a handful of first draws near the origin: the share is then
# measured on a probe of 33 draws there, so the outcome still does not depend on the seed
# (it did below about 24 trials: log(x) of a scalar passed with a warning on some seeds).
@pytest.mark.parametrize("trials", [10, 20])
@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param("vars: {x: []}\nf: log(x)\ngrad: {x: 1 / x}\n", "error", id="log-scalar"),
        pytest.param("vars: {x: []}\nf: x\ngrad: {x: 1 + 0 * sqrt(x)}\n", "error",
                     id="claim-nan-half"),
        pytest.param(LOG_MINUS_3, "error", id="log-minus-3"),
        pytest.param(LOG_PLUS_3, "passed", id="log-plus-3"),
        pytest.param(LOG_PLUS_3_WRONG, "failed", id="log-plus-3-wrong"),
    ],
)
def test_undefined_draws_get_one_outcome_at_small_trial_counts(
    body: str, status: str, trials: int
) -> None:
    assert _statuses(body, trials=trials) == {status: len(SEEDS)}


def test_the_probe_near_the_origin_names_its_draws() -> None:
    r = check_identity(_item("vars: {x: []}\nf: log(x)\ngrad: {x: 1 / x}\n"),
                       Settings(seed=0, trials=10), "cpu")
    assert r.status == "error"
    assert "of the 33 at scale 0.1 (near the origin): undefined on much of the domain" in (
        r.message
    )


def test_redraws_are_counted_in_the_work_budget() -> None:
    from matgrad.limits import Limits

    item = _item(LOG_PLUS_3)
    one = core.compile_identity(item, DEFAULT_TRIALS).estimate.total
    r = check_identity(item, Settings(seed=0, limits=Limits(max_work=one + 1)), "cpu")
    assert r.status == "error"
    assert "drawing them again (redraw 1) would make the work of the check is" in r.message
    assert "over the limit max_work=" in r.message
    assert check_identity(item, Settings(seed=0), "cpu").status == "passed"


def test_draws_that_stay_undefined_after_every_redraw_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The last line of defence: with the near-the-origin refusal turned off, the redraws run out.
    monkeypatch.setattr(core, "UNDEFINED_NEAR", 1.0)
    r = check_identity(_item(LOG_MINUS_3), Settings(seed=0), "cpu")
    assert r.status == "error"
    assert "after 8 redraws of each (the last at scale 0.1): undefined on much" in r.message
    assert r.redrawn_undefined > 0


def test_undefined_draws_are_redrawn_towards_the_origin() -> None:
    # The redraws of a trial at scale 10 move to scale 1, then 0.1 (core.UNDEFINED_LADDER).
    item = _item("id: t\nvars: {x: [1]}\nf: sum(x)\ngrad: {x: ones(1)}\n".removeprefix("id: t\n"))
    capped = core._draw_capped(item, 6, 1, 0.1)[0]["x"]
    plain = core._draw(item, 6, 1)[0]["x"]
    factor = (0.1 / domains.trial_scales(torch, 6)).clamp(max=1.0)
    assert torch.equal(capped, plain * factor.reshape(-1, 1))
    assert core.UNDEFINED_LADDER[0] == float("inf") and min(core.UNDEFINED_LADDER) == 0.1


def test_nan_is_never_a_pass_when_every_draw_stays_undefined() -> None:
    # A claim NaN where x < 0 (half of every scale): refused, never a pass.
    body = "vars: {x: [2]}\nf: sum(x)\ngrad: {x: ones(2) + 0 * sqrt(x)}\n"
    assert _statuses(body) == {"error": len(SEEDS)}


def test_the_redraw_mechanism_is_shared_with_the_guard_and_counted() -> None:
    # A repeated-eigenvalue draw is drawn again by the guard and counted in the result.
    item = _item(
        "vars: {S: {shape: [3, 3], domain: symmetric}}\nf: sum(eigvecsh(S) ** 2)\n"
        "grad: {S: 0 * S}\n"
    )
    compiled = core.compile_identity(item, 4)
    xs, ds = core._draw(item, 4, 0)
    xs = {"S": xs["S"].clone()}
    xs["S"][2] = torch.eye(3, dtype=torch.float64)  # repeated eigenvalues on trial 2
    tally = degeneracy.Tally()
    out, _ = degeneracy.guard(
        compiled, (xs, ds), lambda k: core._draw(item, 4, 100 + k), "float64", tally
    )
    assert tally.degenerate == 1
    assert torch.equal(out["S"][:2], xs["S"][:2]) and torch.equal(out["S"][3], xs["S"][3])
    assert not torch.equal(out["S"][2], xs["S"][2])


# ---- every format states the draws and the warning ------------------------------------------------


def _report() -> RunReport:
    settings = Settings(seed=3)
    result = check_identity(_item(LOG_PLUS_3), settings, "cpu")
    return RunReport(matgrad="0", torch=None, seed=3, device="cpu", dtype="float64",
                     results=[result], settings=settings)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_shows_the_draws_and_the_undefined_warning(fmt: str) -> None:
    report = _report()
    (r,) = report.results
    text = renderer(fmt)(report)
    assert "NaN/Inf on" in text and f"of {r.trials} draws" in text
    if fmt == "json":
        d = json.loads(text)["results"][0]
        assert (d["trials"], d["undefined"], d["redrawn_undefined"]) == (
            r.trials, r.undefined, r.redrawn_undefined
        )
        assert d["warnings"] == r.warnings
    else:
        assert str(r.trials) in text


def test_the_table_summary_line_states_the_draws() -> None:
    report = _report()
    (r,) = report.results
    last = renderer("table")(report).rstrip().splitlines()[-1]
    assert last.endswith(f"s ({r.trials} draws, {r.redrawn_undefined} drawn again)")


SOFTMAX_XENT = """vars: {X: [6, 3], W: [3, 4], U: [6, 4]}
let: {Y: softmax(U), P: softmax(X @ W)}
f: -sum(Y * log(P)) / 6
grad: {W: X.T @ (P - Y) / 6}
"""


def test_autograd_undefined_on_some_draws_is_drawn_again_with_witnesses_too() -> None:
    # At scale-10 draws softmax(X @ W) has subnormal entries: f is finite, but autograd's
    # backward through log overflows (Y / P) and gives NaN. Autograd alone redraws those
    # trials; with other witnesses it now does too (it was "witnesses disagree", an error, on
    # some seeds). Where autograd is NaN on every draw, the witnesses judge (test_witness.py,
    # test_autograd_undefined_where_f_is_smooth).
    item = _item(SOFTMAX_XENT)
    redrawn = 0
    for seed in range(10):
        r = check_identity(item, Settings(seed=seed, witnesses=("fd",)), "cpu")
        assert r.status == "passed", (seed, r.message)
        if r.undefined:
            redrawn += 1
            assert " gives NaN/Inf on " in r.warnings[0]
    assert redrawn  # the case arises on some of these seeds
    assert _statuses(SOFTMAX_XENT.replace("(P - Y) / 6", "(P - Y) / 3"),
                     witnesses=("fd",)) == {"failed": len(SEEDS)}
