"""Shallow to deep over every filter: per conv layer, what the natural evidence says (receptive
field, silent filters, selectivity, and how much each filter's top images share one coarse
category against chance), and the sentences that say whether the numbers rise with depth."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..numbers import number
from ..semantics import Chance, Concentration, category, chance, concentration
from ..store.evidence import Evidence, LayerEvidence


@dataclass(frozen=True)
class LayerDepth:
    """One conv layer's measures over all its filters."""

    name: str
    receptive_field: int
    filters: int
    silent: float  # share of the filters positive on no image, 0..1
    selectivity: float | None  # median lifetime sparsity (None: the evidence has none)
    concentration: float  # mean largest count of one category among a filter's top images
    concentrated: float  # share of the filters whose count reaches the chance threshold, 0..1
    leading: tuple[str, float] | None  # the category most concentrated filters share, and that share


@dataclass(frozen=True)
class Depth:
    """Every measured layer, shallow to deep, and the chance they are held against."""

    layers: tuple[LayerDepth, ...]
    chance: Chance
    images: int  # of the set
    names: tuple[str, ...]  # the set's image names


def filter_concentrations(evidence: Evidence, layer: LayerEvidence) -> list[Concentration]:
    """Each filter's top images' most shared category."""
    categories = [category(image.name) for image in evidence.images]
    return [concentration([categories[i] for i in top]) for top in layer.top.image]


def set_chance(evidence: Evidence, k: int) -> Chance | None:
    """Chance for ``k`` images of the evidence's set; None when no image has a coarse category."""
    categories = [category(image.name) for image in evidence.images]
    return chance(categories, k) if any(categories) else None


def depth(evidence: Evidence | None) -> Depth | None:
    """The measures of every layer of ``evidence``; None without evidence or categories."""
    if evidence is None or not evidence.layers or not evidence.layers[0].top.image:
        return None
    k = max(len(top) for top in evidence.layers[0].top.image)
    odds = set_chance(evidence, k)
    if odds is None:
        return None
    return Depth(tuple(_layer(evidence, layer, odds) for layer in evidence.layers), odds, evidence.used,
                 tuple(image.name for image in evidence.images))


def _layer(evidence: Evidence, layer: LayerEvidence, odds: Chance) -> LayerDepth:
    found = filter_concentrations(evidence, layer)
    strong = [c for c in found if c.count >= odds.threshold]
    leading = Counter(c.category for c in strong).most_common(1)
    return LayerDepth(
        layer.name, layer.receptive_field, layer.filters,
        sum(a == 0 for a in layer.active) / layer.filters,
        statistics.median(layer.sparsity) if layer.sparsity else None,
        statistics.fmean(c.count for c in found),
        len(strong) / layer.filters,
        (leading[0][0], leading[0][1] / len(strong)) if leading else None)


def trend(name: str, values: Sequence[float], layers: Sequence[str], unit: str = "") -> str:
    """One sentence: how ``values`` go from the first layer to the last, and whether steadily."""
    first, last = values[0], values[-1]
    if last == first:
        return f"{name} is {number(first)}{unit} in both {layers[0]} and {layers[-1]}."
    way = "rises" if last > first else "falls"
    against = [(layers[i], layers[i + 1]) for i in range(len(values) - 1)
               if (values[i + 1] - values[i]) * (last - first) < 0]
    sentence = (f"{name} {way} from {number(first)}{unit} in {layers[0]} "
                f"to {number(last)}{unit} in {layers[-1]}")
    if not against:
        return sentence + ", never turning back."
    turns = ", ".join(f"{a} to {b}" for a, b in against[:3]) + (" and more" if len(against) > 3 else "")
    return sentence + f", but not steadily: it turns back {len(against)} time(s) ({turns})."


def chance_tail(odds: Chance) -> str:
    """How often chance reaches the threshold, in words: ``"0.9%"``."""
    return f"{number(100 * odds.tail(odds.threshold))}%"


def depth_story(d: Depth) -> str:
    """What the measures say, shallow to deep, and whether they support the story that shallow
    filters respond to edges and colours and deep ones to kinds of objects."""
    names = [layer.name for layer in d.layers]
    lines = [trend("The share of concentrated filters", [100 * x.concentrated for x in d.layers], names, "%")]
    if all(layer.selectivity is not None for layer in d.layers):
        lines.append(trend("The median selectivity", [x.selectivity for x in d.layers], names))
    lines.append(trend("The share of silent filters", [100 * x.silent for x in d.layers], names, "%"))
    expected = 100 * d.chance.tail(d.chance.threshold)
    first, last = 100 * d.layers[0].concentrated, 100 * d.layers[-1].concentrated
    clear = 5 * max(expected, 0.2)  # well above chance
    against = f"{number(last)}% of {d.layers[-1].name}'s filters against {number(expected)}% by chance"
    if last >= clear and last >= 2 * first:
        lines.append(f"Deep filters fall into one kind of object far more often than chance ({against}) "
                     f"and than the first layer's ({number(first)}% in {d.layers[0].name}): this supports "
                     "the story that deep filters respond to kinds of objects.")
    else:
        lines.append(f"Concentrated filters: {against}, and {number(first)}% in {d.layers[0].name}; "
                     "these numbers do not support the story that deep filters respond to kinds of objects.")
    if first >= clear:
        lines.append("The first layer is above chance too: the images of one category also share colours "
                     "and textures, which the first layer can pick up, so the rise with depth, "
                     "not the level, is what speaks for the story.")
    if d.layers[-1].leading:
        name, held = d.layers[-1].leading
        share = sum(category(image) == name for image in d.names) / d.images
        lines.append(f"The category most concentrated filters of {d.layers[-1].name} share is {name} "
                     f"({number(100 * held)}% of them); {number(100 * share)}% of the set's images are "
                     f"{name}, the share chance gives each top image.")
    return " ".join(lines)
