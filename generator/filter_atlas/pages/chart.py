"""The progression chart: per-layer measurements of the primary variant (and its untrained twin)
as panels of ``progression.chart_svg``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..progression import Panel, Series, chart_svg

if TYPE_CHECKING:
    from .arrangement import Arrangement
    from .depth import Depth


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
              panel("Effective radius (px)", "effective_radius", log=True)]
    return chart_svg([layer.name for layer in layers],
                     [p for p in panels if any(v is not None for s in p.series for v in s.values)])


def depth_chart(d: Depth) -> str:
    """The every-filter measures over all measured layers, shallow to deep: receptive field,
    concentrated filters against chance, median selectivity, silent filters."""
    layers = [layer.name for layer in d.layers]
    expected = 100 * d.chance.tail(d.chance.threshold)
    fields = [layer.receptive_field for layer in d.layers]
    panels = [Panel("Receptive field (px)", [Series("measured", "fa-trained", fields)], log=True),
              Panel("Concentrated filters (%)", [
                  Series("measured", "fa-trained", [100 * x.concentrated for x in d.layers]),
                  Series("chance", "fa-chance", [expected] * len(layers))]),
              Panel("Median selectivity", [Series("measured", "fa-trained",
                                                  [layer.selectivity for layer in d.layers])]),
              Panel("Silent filters (%)", [Series("measured", "fa-trained",
                                                  [100 * layer.silent for layer in d.layers])])]
    return chart_svg(layers, [p for p in panels if any(v is not None for s in p.series for v in s.values)])
