"""The views of one filter, as in the Distill appendix's rows: what each view optimizes, and the
measurements the pages show about it.

- ``channel``: the filter's mean activation, maximized (the atlas's image).
- ``negative``: the filter's mean pre-activation, minimized (``-channel(relu=False)``).
- ``neuron``: the filter's activation at the centre position only: one untiled pattern the size
  of its receptive field.
- ``diversity``: ``DIVERSE`` images optimized jointly for ``channel - w * diversity``.
- ``examples``: the top and bottom natural-image patches (``examples.find_examples``).

The names and their order are ``spec.VIEWS``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .engine.objectives import Objective, channel, diversity, neuron
from .errors import AtlasError

if TYPE_CHECKING:
    from .models import FieldGeometry

RENDERED = ("negative", "neuron", "diversity")  # rendered here; channel is the atlas's own pass
DIVERSE = 4  # images of the diversity view
# Weight of the diversity term relative to the filter's channel-view activation: the penalty is
# a cosine similarity (0..1, scale-free) while activations run from 1 to 10^4 across VGG16's
# layers, and Adam follows the ratio of the two gradients, so the weight scales with the filter.
DIVERSITY_WEIGHT = 1.0
EXAMPLES_K = 9  # top and bottom natural patches per filter


def diversity_scale(channel_activation: float | None) -> float:
    """The filter's activation scale for the diversity weight: its channel-view activation to one
    significant figure (stable across CPUs that differ in the last bits), 1 when it has none."""
    if channel_activation is None or channel_activation <= 0:
        return 1.0
    return float(f"{channel_activation:.0e}")


def objective(view: str, layer: str, index: int, scale: float = 1.0) -> Objective:
    """The objective a rendered view optimizes for filter ``index`` of ``layer``.

    Args:
        view: ``channel``, ``negative``, ``neuron`` or ``diversity``.
        layer: The conv layer.
        index: The filter.
        scale: ``diversity_scale`` of the filter (diversity only).

    Returns:
        The objective (``diversity`` is rendered with ``n=DIVERSE``).
    """
    if view == "channel":
        return channel(layer, index)
    if view == "negative":
        return -channel(layer, index, relu=False)
    if view == "neuron":
        return neuron(layer, index)
    if view == "diversity":
        return channel(layer, index) - DIVERSITY_WEIGHT * scale * diversity(layer)
    raise AtlasError(f"{view!r} is not a rendered view")


def images_per_filter(view: str) -> int:
    return DIVERSE if view == "diversity" else 1


def centre_box(size: tuple[int, int], output: tuple[int, int], geometry: FieldGeometry
               ) -> tuple[int, int, int, int]:
    """The input box [x0, y0, x1, y1) that the centre position of a layer's map sees, clamped.

    Args:
        size: Image (height, width) in pixels.
        output: The layer's map (height, width) at that size.
        geometry: The layer's ``models.receptive_geometry``.

    Returns:
        The box, clamped to the image.
    """
    spans = []
    for axis in (1, 0):  # columns (x), then rows (y)
        low = math.floor(_centre(output, geometry, axis) - (geometry.field[axis] - 1) / 2)
        spans.append((max(0, low), min(size[axis], low + geometry.field[axis])))
    (x0, x1), (y0, y1) = spans
    return x0, y0, x1, y1


def box_centre(output: tuple[int, int], geometry: FieldGeometry) -> tuple[float, float]:
    """The centre (x, y) in pixel coordinates of the centre position's receptive field."""
    return tuple(_centre(output, geometry, axis) + 0.5 for axis in (1, 0))


def _centre(output: tuple[int, int], geometry: FieldGeometry, axis: int) -> float:
    """Input coordinate, along ``axis``, of the centre of the map's centre position (pixel i is
    centred at i)."""
    return geometry.start[axis] + (output[axis] // 2) * geometry.jump[axis]


def neuron_crop(size: tuple[int, int], box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """What the neuron view saves: the receptive-field box with a margin of half its side on
    every side (at least 32 px in all), clamped to the image (height, width), so the pattern is
    seen with its surround."""
    x0, y0, x1, y1 = box
    side = max(32, 2 * max(x1 - x0, y1 - y0))
    h, w = size
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    lo_x = int(min(max(0, round(cx - side / 2)), max(0, w - side)))
    lo_y = int(min(max(0, round(cy - side / 2)), max(0, h - side)))
    return lo_x, lo_y, min(w, lo_x + side), min(h, lo_y + side)


def radius90(image: np.ndarray, centre: tuple[float, float]) -> float:
    """The radius (px) around ``centre`` (x, y) holding 90% of the image's deviation from grey.

    Deviation is |pixel - 127.5| - 0.5 (so 127 and 128 both count as grey) summed over channels;
    0 for a flat grey image.

    Args:
        image: (H, W, 3) uint8.
        centre: The neuron's centre in pixel coordinates.

    Returns:
        The smallest radius whose disc holds 90% of the total deviation.
    """
    deviation = (np.abs(image.astype("float64") - 127.5) - 0.5).sum(axis=-1)
    total = deviation.sum()
    if total <= 0:
        return 0.0
    y, x = np.mgrid[: image.shape[0], : image.shape[1]]
    radius = np.hypot(x + 0.5 - centre[0], y + 0.5 - centre[1]).ravel()
    order = np.argsort(radius, kind="stable")
    held = np.cumsum(deviation.ravel()[order])
    return float(radius[order][np.searchsorted(held, 0.9 * total)])
