"""Sentences the pages state from the measurements alone: what the spatial frequencies and the
neuron views' effective radii do from shallow to deep (empty where fewer than two layers are measured)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from markupsafe import Markup

from .statistics import neuron_trend
from .text import markdown_text

if TYPE_CHECKING:
    from .arrangement import Arrangement


def frequency_summary(atlas: Arrangement) -> Markup:
    """What the channel images' spatial frequencies show."""
    found = [(str(markdown_text(layer.name)), s.frequency) for layer in atlas.layers
             if (s := layer.stats.get(atlas.primary)) and s.frequency is not None]
    if len(found) < 2:
        return Markup()
    values = [f for _, f in found]
    low, high = min(values), max(values)
    if high - low < 0.25 * high:
        return Markup(f"The mean spatial frequency barely moves ({low:g} to {high:g} cycles/px across "
                      "the layers): on tiled channel images this measure does not show the progression, "
                      "which is why the neuron view below measures how far one position looks instead.")
    falls = values[-1] < values[0]
    return Markup(f"The mean spatial frequency goes from {values[0]:g} cycles/px at {found[0][0]} to "
                  f"{values[-1]:g} at {found[-1][0]}" + (", coarser with depth." if falls else
                                                          ": finer, not coarser, with depth."))


def neuron_summary(atlas: Arrangement) -> Markup:
    """What the neuron views' effective radii show, in pixels and against the receptive field."""
    trend = [(str(markdown_text(name)), *rest) for name, *rest in neuron_trend(atlas)]
    if len(trend) < 2:
        return Markup()
    radii = [r for _, r, _, _ in trend]
    rises = all(b > a for a, b in itertools.pairwise(radii))
    first, last = trend[0], trend[-1]
    text = (f"The median effective radius goes from {first[1]:g} px at {first[0]} to {last[1]:g} px at "
            f"{last[0]}, " + ("growing at every layer: deeper filters look at larger regions." if rises
                              else "but not at every layer: the growth is not monotonic here."))
    fractions = [f for _, _, f, _ in trend if f is not None]
    if len(fractions) == len(trend):
        low, high = min(fractions), max(fractions)
        text += (f" Its diameter is {low:g} to {high:g} of the receptive field's side"
                 + (": under the whole field at every layer, the pixels that move a position crowd "
                    "toward the centre of what it could see." if high < 1 else "."))
    wider = [(str(markdown_text(layer.name)), s.neuron_side) for layer in atlas.layers
             if (s := layer.stats.get(atlas.primary)) and s.neuron_side and layer.receptive_field
             and layer.receptive_field > s.neuron_side]
    if wider:
        names = ", ".join(n for n, _ in wider[:-1]) + (" and " if len(wider) > 1 else "") + wider[-1][0]
        text += (f" At {names} the receptive field is wider than the {wider[0][1]} px neuron image, so "
                 "there the image, not the field, bounds the radius.")
    return Markup(text)
