"""The progression chart: per-layer measurements of the primary variant (and its untrained twin)
as panels of ``progression.chart_svg``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..progression import Panel, Series, chart_svg

if TYPE_CHECKING:
    from .arrangement import Arrangement


def progression_chart(atlas: Arrangement) -> str:
    """Receptive field, spatial frequency, colourfulness and activation ratio over the primary
    variant's layers, shallow to deep (log axes for the two that span decades); panels with no
    value are left out."""
    layers = [layer for layer in atlas.layers if layer.tiles(atlas.primary)]
    series_of = [(v, label, css) for v, label, css in
                 ((atlas.primary, "trained", "fa-trained"), (atlas.untrained, "untrained", "fa-untrained"))
                 if v]

    def panel(title: str, attr: str, log: bool = False) -> Panel:
        return Panel(title, [Series(label, css, [getattr(layer.stats[v], attr) if v in layer.stats
                                                 else None for layer in layers])
                             for v, label, css in series_of], log)

    panels = [Panel("Receptive field (px)", [Series("trained", "fa-trained",
                                                    [layer.receptive_field for layer in layers])], log=True),
              panel("Mean spatial frequency (cycles/px)", "frequency"),
              panel("Colourfulness", "colourfulness"),
              panel("Activation / best natural photo", "ratio", log=True),
              panel("Neuron view: 90% radius (px)", "neuron_radius")]
    return chart_svg([layer.name for layer in layers],
                     [p for p in panels if any(v is not None for s in p.series for v in s.values)])
