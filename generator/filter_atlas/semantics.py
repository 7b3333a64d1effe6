"""Coarse categories of the ImageNet classes (dog, bird, vehicle, food, ...: ``data/imagenet-coarse.tsv``,
assigned from WordNet hypernyms) and how much a filter's top images fall into one of them, against
what the same number of images drawn at random from the set gives."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from .naturals import imagenet_label

ALPHA = 0.01  # a filter is concentrated when chance reaches its count this rarely


@functools.cache
def _table() -> tuple[tuple[tuple[str, str, str], ...], dict[str, str]]:
    """The file's rows (wnid, class, category) and its categories' definitions (its comments'
    ``#   name: definition`` lines), in their order."""
    text = resources.files("filter_atlas").joinpath("data/imagenet-coarse.tsv").read_text("utf-8")
    lines = text.splitlines()
    defined = dict(line[1:].strip().split(": ", 1) for line in lines if line.startswith("#   "))
    rows = tuple(tuple(line.split("\t")) for line in lines if line and not line.startswith("#"))[1:]
    return rows, defined


def coarse_categories() -> dict[str, str]:
    """Every ImageNet class's coarse category, by wnid."""
    return {wnid: name for wnid, _, name in _table()[0]}


def category_classes() -> list[tuple[str, str, list[str]]]:
    """Each category's name, definition and classes (in wnid order), as the file defines them."""
    rows, defined = _table()
    return [(name, text, [cls for _, cls, c in rows if c == name]) for name, text in defined.items()]


def category(image_name: str) -> str | None:
    """The coarse category of an ImageNet-style image name (``n02085620_Chihuahua.JPEG``), else None."""
    found = imagenet_label(image_name)
    return coarse_categories().get(found[0]) if found else None


@dataclass(frozen=True)
class Concentration:
    """The category most of a filter's top images share."""

    category: str | None  # None when none of them has one
    count: int  # top images in it
    of: int  # top images with a category


def concentration(categories: Sequence[str | None]) -> Concentration:
    """The most frequent category among ``categories`` (ties: the first to appear)."""
    known = [c for c in categories if c is not None]
    if not known:
        return Concentration(None, 0, 0)
    name, count = Counter(known).most_common(1)[0]
    return Concentration(name, count, len(known))


@dataclass(frozen=True)
class Chance:
    """The largest count of one category among ``k`` images drawn at random (without replacement)
    from a set: its distribution, and the count chance reaches with probability ``ALPHA`` or less."""

    k: int
    probability: tuple[float, ...]  # P(largest count = m), m = 0..k
    threshold: int  # the smallest m with P(largest count >= m) <= ALPHA

    @property
    def mean(self) -> float:
        """The expected largest count."""
        return sum(m * p for m, p in enumerate(self.probability))

    def tail(self, m: int) -> float:
        """P(largest count >= m)."""
        return sum(self.probability[m:])


def chance(categories: Sequence[str | None], k: int) -> Chance:
    """The exact chance distribution of ``k`` images' largest category count over a set.

    The draws of ``k`` images whose every category count is at most ``m`` are counted by the
    coefficient of x^k in the product over categories of sum_{j <= m} C(n_c, j) x^j (images without
    a category: any number of them), out of C(n, k) draws.

    Args:
        categories: The category of each image of the set (None: it has none).
        k: Images per draw (the top images per filter).

    Returns:
        The distribution.
    """
    sizes = Counter(c for c in categories if c is not None)
    unlabelled = sum(c is None for c in categories)
    total = math.comb(len(categories), k)

    def at_most(m: int) -> int:
        product = [math.comb(unlabelled, j) for j in range(k + 1)]
        for n in sizes.values():
            factor = [math.comb(n, j) if j <= m else 0 for j in range(k + 1)]
            product = [sum(product[i] * factor[j - i] for i in range(j + 1)) for j in range(k + 1)]
        return product[k]

    cumulative = [at_most(m) for m in range(k + 1)]
    probability = tuple((cumulative[m] - (cumulative[m - 1] if m else 0)) / total for m in range(k + 1))
    odds = Chance(k, probability, k + 1)
    return Chance(k, probability, next((m for m in range(k + 1) if odds.tail(m) <= ALPHA), k + 1))
