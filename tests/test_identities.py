"""The bundled library gates itself: every identity meets its `expect` under many seeds, so
no verdict depends on a lucky draw."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from matgrad.engine.core import Settings, run
from matgrad.spec.schema import Identity, load_all

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "identities"
ITEMS = load_all([str(LIBRARY)])


def test_library_is_valid_and_large() -> None:
    invalid = [str(i.error) for i in ITEMS if not isinstance(i, Identity)]
    assert invalid == []
    assert len(ITEMS) >= 150


@pytest.mark.parametrize("seed", range(10))
def test_every_identity_meets_its_expect(seed: int) -> None:
    report = run(ITEMS, Settings(seed=seed))
    bad = [f"{r.id}: {r.status}: {r.message}" for r in report.results if not r.ok]
    assert bad == []


def test_every_identity_meets_its_expect_by_fd_and_taylor_too() -> None:
    # The witnesses that do not trust autograd reach every corner of the language (lets that
    # use a direction, kinks, complex variables, mixed Hessians, rank-deficient domains): on
    # the library they judge every identity, with no error.
    report = run(ITEMS, Settings(seed=1, witnesses=("fd", "taylor")))
    bad = [f"{r.id}: {r.status}: {r.message}" for r in report.results if not r.ok]
    assert bad == []


def test_every_identity_has_a_title_and_cookbook_ones_a_source() -> None:
    for item in ITEMS:
        assert isinstance(item, Identity)
        assert item.title, item.id
        if "cookbook" in Path(item.path).parts:
            assert item.source and item.source.startswith("Matrix Cookbook (2012)"), item.id
            assert item.latex, item.id


def test_mistakes_are_expected_failures() -> None:
    for item in ITEMS:
        assert isinstance(item, Identity)
        if "mistakes" in Path(item.path).parts:
            assert item.expect == "fail", item.id


def test_coverage_table_names_only_real_ids() -> None:
    text = (LIBRARY / "README.md").read_text(encoding="utf-8")
    ids = {i.id for i in ITEMS}
    named = set(re.findall(r"`((?:cb|ml|mistake|seed)-[a-z0-9._-]+)`", text))
    assert named, "the coverage table names no identity"
    assert named - ids == set()


def test_coverage_tables_name_only_real_ids_in_the_complex_folder_too() -> None:
    text = (LIBRARY / "README.md").read_text(encoding="utf-8")
    ids = {i.id for i in ITEMS}
    named = set(re.findall(r"`((?:cb4|hj)-[a-z0-9._-]+)`", text))
    assert named, "the chapter 4 table names no identity"
    assert named - ids == set()
    complex_ids = {i.id for i in ITEMS if "complex" in Path(i.path).parts}
    assert complex_ids - named == set(), "identities in complex/ left out of its coverage rows"


def test_the_folder_counts_are_the_library() -> None:
    text = (LIBRARY / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| (\d+) \| (\d+) \|$", text, re.MULTILINE)
    stated = {name.removesuffix(".yaml"): (int(p), int(f)) for name, p, f in rows}
    counted: Counter[tuple[str, str]] = Counter()
    for item in ITEMS:
        assert isinstance(item, Identity)
        top = Path(item.path).resolve().relative_to(LIBRARY).parts[0].removesuffix(".yaml")
        counted[(top, item.expect)] += 1
    actual = {top: (counted[(top, "pass")], counted[(top, "fail")]) for top, _ in counted}
    assert stated == actual
    total = re.search(r"^\| \*\*total\*\* \| (\d+) \| (\d+) \|$", text, re.MULTILINE)
    assert total is not None
    assert (int(total[1]), int(total[2])) == tuple(map(sum, zip(*actual.values(), strict=True)))


def test_ids_are_unique() -> None:
    counts = Counter(i.id for i in ITEMS)
    assert [k for k, v in counts.items() if v > 1] == []
