"""Coarse categories, the chance they are held against, and the shallow-to-deep sentences."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from filter_atlas.pages.depth import trend
from filter_atlas.semantics import ALPHA, category, category_classes, chance, coarse_categories, concentration

from .conftest import REPO

SAMPLES = REPO.parent / "shared/naturals/imagenet-sample-images"


def test_every_imagenet_class_has_one_category():
    table = coarse_categories()
    assert len(table) == 1000 and all(len(wnid) == 9 and wnid.startswith("n") for wnid in table)
    groups = category_classes()
    assert sum(len(classes) for _, _, classes in groups) == 1000
    assert {name for name, _, _ in groups} == set(table.values())
    assert all(text for _, text, _ in groups)  # each category is defined
    assert category("n02085620_Chihuahua.JPEG") == "dog" and category("n02012849_crane.JPEG") == "bird"
    assert category("n03126707_crane.JPEG") == "object" and category("photo.jpg") is None
    if SAMPLES.is_dir():  # the shared set's file names are the table's classes
        assert {category(p.name) is not None for p in SAMPLES.glob("*.JPEG")} == {True}


def brute_force(categories: list[str | None], k: int) -> list[float]:
    """P(largest count = m) by listing every draw."""
    counts = Counter()
    draws = list(itertools.combinations(range(len(categories)), k))
    for draw in draws:
        known = Counter(categories[i] for i in draw if categories[i] is not None)
        counts[max(known.values(), default=0)] += 1
    return [counts[m] / len(draws) for m in range(k + 1)]


@pytest.mark.parametrize("k", [2, 4, 5])
def test_chance_is_exact(k):
    categories = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + [None] * 2
    found = chance(categories, k)
    assert found.probability == pytest.approx(brute_force(categories, k), abs=1e-12)
    tail = [sum(found.probability[m:]) for m in range(k + 2)]
    assert tail[found.threshold] <= ALPHA and (found.threshold == 0 or tail[found.threshold - 1] > ALPHA)


def test_concentration_counts_the_most_shared_category():
    assert concentration(["dog", None, "bird", "dog"]) == (c := concentration(["dog", "dog", "bird", None]))
    assert (c.category, c.count, c.of) == ("dog", 2, 3)
    assert concentration([None, None]).category is None


def test_a_trend_says_when_it_turns_back():
    layers = ["a", "b", "c", "d"]
    assert trend("X", [1, 2, 3, 4], layers).endswith("from 1.00 in a to 4.00 in d, never turning back.")
    turned = trend("X", [1, 3, 2, 4], layers)
    assert "rises" in turned and "turns back 1 time(s) (b to c)" in turned
    assert "falls" in trend("X", [4, 3, 1, 2], layers) and "(c to d)" in trend("X", [4, 3, 1, 2], layers)
    assert trend("X", [1, 5, 1], layers[:3]) == "X is 1.00 in both a and c."
