"""The shallow-to-deep measurements: image statistics per layer and their chart as inline SVGs.

Spatial frequency: the energy-weighted mean radial frequency (cycles per pixel) of the
Hann-windowed, mean-removed luminance spectrum. Colourfulness: Hasler & Süsstrunk (2003) on
0-255 RGB. Both are medians over up to ``MAX_MEASURED`` live images of a layer, evenly spaced
in index order, so a 512-filter layer costs the same as a 64-filter one.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from markupsafe import escape
from PIL import Image

MAX_MEASURED = 64


@dataclass(frozen=True)
class LayerStats:
    """Medians over the measured images of one layer (None when it has no live image)."""

    measured: int
    frequency: float | None
    colourfulness: float | None
    ratio: float | None  # achieved activation / best natural-photo activation
    effective_radius: float | None = None  # neuron view: px around the centre holding 90% of its gradient
    effective_fraction: float | None = None  # that radius's diameter over the receptive field side
    neuron_images: int = 0  # the neuron images measured (failed ones are no result)
    neuron_side: int | None = None  # their side (px): a radius cannot reach past the image


def image_stats(path: Path) -> tuple[float, float]:
    """(mean spatial frequency in cycles/px, colourfulness) of one PNG."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    grey -= grey.mean()
    h, w = grey.shape
    power = np.abs(np.fft.fft2(grey * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    total = power.sum()
    frequency = float((power * radius).sum() / total) if total > 0 else 0.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    return frequency, colourfulness


def layer_stats(images: Sequence[Path], ratios: Sequence[float]) -> LayerStats:
    """Medians of the image statistics (evenly spaced subsample) and of the activation ratios."""
    step = max(1, -(-len(images) // MAX_MEASURED))
    measured = [image_stats(p) for p in images[::step]]
    ratio = round(statistics.median(ratios), 3) if ratios else None
    if not measured:
        return LayerStats(0, None, None, ratio)
    return LayerStats(
        len(measured),
        round(statistics.median(m[0] for m in measured), 3),
        round(statistics.median(m[1] for m in measured), 1),
        ratio,
    )


@dataclass(frozen=True)
class Series:
    label: str
    css: str  # class of the line: fa-trained or fa-untrained
    values: Sequence[float | None]


@dataclass(frozen=True)
class Panel:
    title: str
    series: Sequence[Series]
    log: bool = False  # a log axis, for measures spanning decades (non-positive values are left out)


PANEL_W, PANEL_H, PAD_L, PAD_B, PAD_T = 320, 250, 48, 84, 30


def chart_svg(layers: Sequence[str], panels: Sequence[Panel]) -> str:
    """Small multiples: one SVG per panel, one line per series over the layers, shallow to deep,
    and a legend. The panels sit two to a row, one on a narrow screen (CSS ``.fa-chart``), and
    are drawn at about their own size, so labels keep their size on a phone."""
    labels = {s.css: s.label for panel in panels for s in panel.series}
    legend = '<p class="fa-chart-legend">' + " ".join(
        f'<span><svg width="28" height="10" aria-hidden="true"><line class="{css}" x1="2" y1="5" x2="26" '
        f'y2="5"/></svg> {escape(label)}</span>' for css, label in sorted(labels.items())) + "</p>"
    # The legend first: read before the panels, not after the last of them.
    drawn = (_panel(panel, layers, n) for n, panel in enumerate(panels))
    return "".join(['<div class="fa-chart">', legend, *drawn, "</div>"])


def _panel(panel: Panel, layers: Sequence[str], n: int) -> str:
    plot_w, plot_h = PANEL_W - PAD_L - 12, PANEL_H - PAD_T - PAD_B
    values = [v for s in panel.series for v in s.values if v is not None and (v > 0 or not panel.log)]
    if panel.log:
        low = 10.0 ** np.floor(np.log10(min(values, default=1.0)))
        high = 10.0 ** np.ceil(np.log10(max(values, default=10.0)))
        high = high * 10 if high == low else high
        ticks = [low * 10.0 ** k for k in range(round(np.log10(high / low)) + 1)]

        def scale(v: float) -> float:
            return float(np.log10(v / low) / np.log10(high / low))
    else:
        top = _nice_ceiling(max(values, default=1.0))
        ticks = [0.0, top / 2, top]

        def scale(v: float) -> float:
            return v / top

    def x(i: int) -> float:
        return PAD_L + (plot_w * (i + 0.5) / max(len(layers), 1))

    def y(v: float) -> float:
        return PAD_T + plot_h * (1 - scale(v))

    title = escape(panel.title + (" (log scale)" if panel.log else ""))
    out = [f'<svg viewBox="0 0 {PANEL_W} {PANEL_H}" role="img" aria-labelledby="fa-chart-{n}">'
           f'<title id="fa-chart-{n}">{title}, per layer, shallow to deep</title>'
           f'<text class="fa-chart-title" x="{PAD_L}" y="16">{title}</text>']
    for v in ticks:
        out.append(f'<line class="fa-grid-line" x1="{PAD_L}" y1="{y(v):.1f}" x2="{PAD_L + plot_w}" '
                   f'y2="{y(v):.1f}"/><text class="fa-tick" x="{PAD_L - 5}" y="{y(v) + 4:.1f}">{v:g}</text>')
    for i, name in enumerate(layers):
        label = name if len(name) <= 14 else name[:13] + "…"
        out.append(f'<text class="fa-layer" transform="translate({x(i):.1f} {PAD_T + plot_h + 14}) '
                   f'rotate(-40)">{escape(label)}</text>')
    for s in panel.series:
        points = [(x(i), y(v)) for i, v in enumerate(s.values) if v is not None and (v > 0 or not panel.log)]
        if len(points) > 1:
            out.append(f'<polyline class="{s.css}" points="'
                       + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"/>')
        out.extend(f'<circle class="{s.css}" cx="{px:.1f}" cy="{py:.1f}" r="3.5"/>' for px, py in points)
    out.append("</svg>")
    return "".join(out)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= ``value`` (1 for <= 0)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(value))
    for step in (1, 2, 2.5, 5):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)
