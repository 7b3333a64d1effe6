"""Sentences the pages state from the measurements alone: what the spatial frequencies and the
neuron views' radii do from shallow to deep (empty where fewer than two layers are measured)."""

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
                      "which is why the neuron view below measures the size of one pattern instead.")
    falls = values[-1] < values[0]
    return Markup(f"The mean spatial frequency goes from {values[0]:g} cycles/px at {found[0][0]} to "
                  f"{values[-1]:g} at {found[-1][0]}" + (", coarser with depth." if falls else
                                                          ": finer, not coarser, with depth."))


def neuron_summary(atlas: Arrangement) -> Markup:
    """What the neuron-view radii show, in absolute terms and relative to the receptive field."""
    trend = [(str(markdown_text(name)), *rest) for name, *rest in neuron_trend(atlas)]
    if len(trend) < 2:
        return Markup()
    radii = [r for _, r, _, _ in trend]
    rises = all(b >= a for a, b in itertools.pairwise(radii))
    first, last = trend[0], trend[-1]
    text = (f"The median 90% radius goes from {first[1]:g} px at {first[0]} to {last[1]:g} px at "
            f"{last[0]}, " + ("growing at every step." if rises else
                              "but not at every step: the growth is not monotonic here."))
    fractions = [f for _, _, f, _ in trend if f is not None]
    if len(fractions) == len(trend):
        shrinks = fractions[-1] < fractions[0]
        text += (f" Relative to the receptive field it goes from {fractions[0]:g} to {fractions[-1]:g} "
                 "(diameter over field side): " + (
                     "deep filters use a smaller share of what they could see, in part because the "
                     "deep fields are larger than the rendered image." if shrinks else
                     "the patterns fill at least as much of their field at depth as in the first "
                     "layers."))
    if first[1] > 2 * (first[3] or 0):
        text += (f" At {first[0]} the radius is far larger than the {first[3]} px field: the Fourier "
                 "parameterization and the random jitter, scale and rotation spread a "
                 "few-pixel pattern over a wider disc, so the shallowest radii overstate the "
                 "pattern's size.")
    return Markup(text)
