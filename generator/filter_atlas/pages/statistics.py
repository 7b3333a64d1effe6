"""The numbers the pages show: each layer's measurements (``progression.layer_stats`` plus the
neuron view's radius) and an activation's ratio to the best natural photo."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ..progression import LayerStats, layer_stats
from ..views.base import no_better

if TYPE_CHECKING:
    from .arrangement import Arrangement
    from .tiles import Tile


def finite(value: float | None) -> bool:
    """Whether ``value`` is a number to show (not None, NaN or infinite)."""
    return value is not None and math.isfinite(value)


def natural_ratio(activation: float | None, natural: float | None) -> float | None:
    """The achieved activation over the best natural-photo activation; None where either is not
    finite or the photos never activate the filter."""
    if not (finite(activation) and finite(natural)) or natural <= 0:
        return None
    return activation / natural


def measure_layer(tiles: Sequence[Tile], receptive_field: int | None) -> LayerStats:
    """Medians over one layer's tiles of one variant: the live images' statistics and activation
    ratios, and the neuron views' effective radius, with its diameter over the receptive field's side."""
    live = [t for t in tiles if t.live]
    stats = layer_stats([t.file for t in live if t.file], [t.ratio for t in live if t.ratio is not None])
    neurons = [n for t in tiles if t.unit and (n := t.unit.records.neuron)  # a failed one is no result
               and finite(n.activation) and not no_better(n.activation, n.start_activation)]
    radii = [n.effective_radius for n in neurons if n.effective_radius is not None]
    if not radii:
        return stats
    radius = round(statistics.median(radii), 1)
    fraction = round(2 * radius / receptive_field, 2) if receptive_field else None
    return replace(stats, effective_radius=radius, effective_fraction=fraction, neuron_images=len(radii),
                   neuron_side=max(n.size for n in neurons))


def neuron_trend(atlas: Arrangement) -> list[tuple[str, float, float | None, int | None]]:
    """(layer, neuron views' effective radius, its diameter / receptive field, receptive field) of
    the primary variant's layers that have neuron views, shallow to deep."""
    found = [(layer, layer.stats.get(atlas.primary)) for layer in atlas.layers]
    return [(layer.name, s.effective_radius, s.effective_fraction, layer.receptive_field)
            for layer, s in found if s and s.effective_radius is not None]
