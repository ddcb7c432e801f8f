"""Selection for CI: shards, stopping early, and the err / tolerance ratio the reports plot."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matgrad.engine.core import Settings, run
from matgrad.errors import ExitCode
from matgrad.results import RunReport
from matgrad.runner import Shard, exit_code, shard_key, shard_of, take_shard
from matgrad.spec.schema import Identity, Invalid, load_all, load_text

ROOT = Path(__file__).resolve().parent.parent

BODY = "dims: {{n: 2}}, vars: {{X: [n, n]}}, f: tr(X)"
RIGHT = "  - {{id: right-{i}, " + BODY + ", grad: {{X: eye(n)}}}}\n"
WRONG = "  - {{id: wrong-{i}, " + BODY + ", grad: {{X: 2 * eye(n)}}}}\n"


def items(*parts: str) -> list[Identity | Invalid]:
    text = "identities:\n" + "".join(p.format(i=i) for i, p in enumerate(parts))
    loaded = load_text(text, "t.yaml")
    assert all(isinstance(it, Identity) for it in loaded), loaded
    return loaded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1/1", Shard(1, 1), id="one"),
        pytest.param("2/4", Shard(2, 4), id="two-of-four"),
        pytest.param(" 3 / 4 ", Shard(3, 4), id="spaces"),
    ],
)
def test_shard_parse(text: str, expected: Shard) -> None:
    assert Shard.parse(text) == expected
    assert str(expected) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("0/4", "shard 0/4: K/N needs 1 <= K <= N, e.g. 1/4 to 4/4", id="zero"),
        pytest.param("5/4", "shard 5/4: K/N needs 1 <= K <= N, e.g. 1/4 to 4/4", id="past"),
        pytest.param("1/0", "shard 1/0: K/N needs 1 <= K <= N, e.g. 1/4 to 4/4", id="no-shards"),
        pytest.param("2", "'2': expected K/N, e.g. 2/4 for the second of four shards", id="no-n"),
        pytest.param("-1/4", "'-1/4': expected K/N, e.g. 2/4 for the second of four shards",
                     id="negative"),
        pytest.param("a/b", "'a/b': expected K/N, e.g. 2/4 for the second of four shards",
                     id="words"),
    ],
)
def test_shard_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        Shard.parse(text)
    assert str(e.value) == message


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=12), max_size=30, unique=True),
    total=st.integers(min_value=1, max_value=7),
)
def test_shards_partition_the_run(ids: list[str], total: int) -> None:
    loaded = [
        Invalid(path=f"{i}.yaml", line=1, id=x, error=None)  # type: ignore[arg-type]
        for i, x in enumerate(ids)
    ]
    shards = [take_shard(loaded, Shard(k, total)) for k in range(1, total + 1)]
    union = [it for s in shards for it in s]
    assert sorted(union, key=lambda it: it.path) == sorted(loaded, key=lambda it: it.path)
    assert len(union) == len(loaded)  # disjoint
    for s in shards:  # each shard keeps the original order
        assert s == [it for it in loaded if it in s]


def test_shard_assignment_is_fixed() -> None:
    # A hash of the id (sha256), not Python's salted hash(): the same on every machine and
    # run, so the N jobs of one CI run agree on who checks what.
    assert [shard_of(f"id-{i}", 4) for i in range(8)] == [4, 3, 4, 1, 2, 4, 4, 4]
    assert shard_of("seed-trace-inverse", 4) == 1
    assert shard_of("seed-linear-form", 4) == 2


def test_shards_of_the_library_cover_it() -> None:
    loaded = load_all([str(ROOT / "identities")])
    counts = [len(take_shard(loaded, Shard(k, 4))) for k in range(1, 5)]
    assert sum(counts) == len(loaded)
    assert all(c > len(loaded) / 8 for c in counts), counts  # roughly even


def test_unreadable_file_is_sharded_by_its_path() -> None:
    item = Invalid(path="broken.yaml", line=None, id=None, error=None)  # type: ignore[arg-type]
    assert shard_key(item) == "broken.yaml"
    assert sum(len(take_shard([item], Shard(k, 3))) for k in (1, 2, 3)) == 1


def test_no_shard_keeps_everything() -> None:
    loaded = items(RIGHT, WRONG)
    assert take_shard(loaded, None) == loaded


def test_empty_shard_is_not_an_error() -> None:
    empty = RunReport("0", None, 0, "cpu", "float64", shard="3/4")
    assert exit_code(empty) is ExitCode.OK
    assert exit_code(RunReport("0", None, 0, "cpu", "float64")) is ExitCode.NO_IDENTITIES


@pytest.mark.parametrize(
    ("maxfail", "ran", "stopped"),
    [
        pytest.param(None, 5, None, id="no-limit"),
        pytest.param(
            1, 2, "stopped after 1 identity did not meet its expect (maxfail 1); 3 not run",
            id="fail-fast",
        ),
        pytest.param(2, 4, "stopped after 2 identities did not meet their expect (maxfail 2); "
                     "1 not run", id="maxfail-2"),
        pytest.param(3, 5, None, id="limit-reached-at-the-end"),
    ],
)
def test_maxfail_stops_the_run(maxfail: int | None, ran: int, stopped: str | None) -> None:
    loaded = items(RIGHT, WRONG, RIGHT, WRONG, WRONG)
    report = run(loaded, Settings(trials=2), maxfail=maxfail)
    assert len(report.results) == ran
    assert report.stopped == stopped
    assert report.not_run == 5 - ran
    assert report.complete  # stopping on purpose is not an interruption
    assert exit_code(report) is ExitCode.MISMATCH


def test_max_ratio_says_how_close_to_the_tolerance() -> None:
    report = run(items(RIGHT, WRONG), Settings(trials=3))
    right, wrong = (r.claims[0] for r in report.results)
    assert right.max_ratio is not None and 0 <= right.max_ratio <= 1
    assert wrong.max_ratio is not None and wrong.max_ratio > 1
    # the ratio is err / (rtol*|autograd| + C*noise): here |err| = 1 on the diagonal and
    # |autograd| = 1, and the noise of 2 * eye(n) is a few ulps (C*noise about 1e-12), so the
    # bound is rtol to six digits
    assert wrong.max_ratio == pytest.approx(1 / 1e-6, rel=1e-5)
    assert report.to_dict()["results"][1]["claims"][0]["max_ratio"] == wrong.max_ratio
