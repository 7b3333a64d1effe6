"""Receptive-field geometry: where each output position of a layer looks in the input image, and
the boxes and crops drawn from it.

Coordinates: pixel i is centred at i; a box is [x0, y0, x1, y1) in pixels, clamped to the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import keras
import numpy as np

from ..engine import targets
from ..sizes import Size, as_size
from .graph import walk

if TYPE_CHECKING:
    from .loaded import LoadedModel

Box = tuple[int, int, int, int]  # x0, y0, x1, y1; x1 and y1 exclusive


@dataclass(frozen=True)
class FieldGeometry:
    """Where a layer's output positions look in the input image, per axis (rows, columns)."""

    field: tuple[int, int]  # receptive field in input pixels
    jump: tuple[int, int]  # input pixels between neighbouring output positions (product of strides)
    start: tuple[float, float]  # input coordinate of the centre of output position 0


def receptive_geometry(model: keras.Model, size: int | Size | None = None) -> dict[str, FieldGeometry]:
    """Receptive field, jump and first centre of every layer's output, walking the layers in
    order (into nested models).

    Conv2D, DepthwiseConv2D and SeparableConv2D (any padding, stride, dilation), max/average
    pooling and zero padding move the field; other layers keep it. Exact for chains such as VGG
    or MobileNet; for branching models it follows layer order, so it is an estimate there. Field
    and jump do not depend on the input size; ``start`` does for 'same' padding with a stride,
    where Keras pads by what the side leaves over.

    Args:
        model: A Keras model taking images.
        size: Input size in pixels; ``None`` assumes every side is a multiple of the strides.

    Returns:
        Layer name (as ``LoadedModel.targets`` names it) -> geometry of that layer's output.
    """
    sides = (None, None) if size is None else as_size(size)
    axes = [_Axis(side) for side in sides]
    out = {}
    for name, chain in walk(model):
        layer = chain[-1]
        for axis, a in enumerate(axes):
            a.through(layer, axis)
        out[name] = FieldGeometry(tuple(a.field for a in axes), tuple(a.jump for a in axes),
                                  tuple(a.start for a in axes))
    return out


class _Axis:
    """Receptive-field arithmetic along one axis."""

    def __init__(self, side: int | None):
        self.field, self.jump, self.start, self.side = 1, 1, 0.0, side

    def through(self, layer: keras.layers.Layer, axis: int) -> None:
        """Move the field through ``layer`` along ``axis`` (0: rows, 1: columns)."""
        if isinstance(layer, keras.layers.ZeroPadding2D):
            before, after = layer.padding[axis]
            self.start -= before * self.jump
            self.side = None if self.side is None else self.side + before + after
            return
        if targets.is_target(layer):
            kernel, stride, dilation = layer.kernel_size[axis], layer.strides[axis], layer.dilation_rate[axis]
        elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            kernel, stride, dilation = layer.pool_size[axis], layer.strides[axis], 1
        else:
            return
        span = (kernel - 1) * dilation + 1
        side = self.side
        if layer.padding == "same":
            outputs = -(-side // stride) if side is not None else None
            leftover = stride if side is None else side - (outputs - 1) * stride
            pad = max(span - leftover, 0) // 2
            self.side = outputs
        else:
            pad = 0
            self.side = None if side is None else (side - span) // stride + 1
        self.start += ((span - 1) / 2 - pad) * self.jump
        self.field += (span - 1) * self.jump
        self.jump *= stride


def position_boxes(size: Size, output: tuple[int, int], geometry: FieldGeometry) -> np.ndarray:
    """The input box of every position of a layer's map, clamped to the image.

    Args:
        size: Image (height, width) in pixels.
        output: The layer's map (height, width) at that size.
        geometry: The layer's ``receptive_geometry``.

    Returns:
        (height * width, 4) int64 boxes [x0, y0, x1, y1), positions in row-major order.
    """
    (y_lo, y_hi), (x_lo, x_hi) = (_spans(size[a], np.arange(output[a]), geometry, a) for a in (0, 1))
    y, x = np.divmod(np.arange(output[0] * output[1]), output[1])
    return np.stack([x_lo[x], y_lo[y], x_hi[x], y_hi[y]], axis=1)


def centre_box(size: Size, output: tuple[int, int], geometry: FieldGeometry) -> Box:
    """The input box [x0, y0, x1, y1) that the centre position of a layer's map sees, clamped.

    Args:
        size: Image (height, width) in pixels.
        output: The layer's map (height, width) at that size.
        geometry: The layer's ``receptive_geometry``.

    Returns:
        The box of position (height // 2, width // 2), as ``position_boxes`` gives it.
    """
    (y0, y1), (x0, x1) = (_spans(size[a], np.array([output[a] // 2]), geometry, a) for a in (0, 1))
    return int(x0[0]), int(y0[0]), int(x1[0]), int(y1[0])


def centre_field(loaded: LoadedModel, layer: str, size: Size) -> tuple[Box, tuple[float, float]]:
    """The receptive field of a layer's centre position at ``size``.

    Args:
        loaded: The model.
        layer: A target layer (full name, or its own name when unambiguous).
        size: Image (height, width) in pixels.

    Returns:
        Its box (``centre_box``) and the box's centre (x, y) (``box_centre``).
    """
    (conv,) = loaded.resolve_layers((layer,), size)
    geometry = receptive_geometry(loaded.model, size)[conv.name]
    output = (int(conv.output_shape[0]), int(conv.output_shape[1]))
    return centre_box(size, output, geometry), box_centre(output, geometry)


def box_centre(output: tuple[int, int], geometry: FieldGeometry) -> tuple[float, float]:
    """The centre (x, y), in pixel coordinates (pixel i spans [i, i + 1)), of the receptive field
    of the map's centre position."""
    return tuple(geometry.start[axis] + (output[axis] // 2) * geometry.jump[axis] + 0.5 for axis in (1, 0))


def neuron_crop(size: Size, box: Box) -> Box:
    """What the neuron view saves: ``box`` with a margin of half its side on every side (at least
    32 px in all), clamped to the image (height, width), so the pattern is seen with its surround."""
    x0, y0, x1, y1 = box
    side = max(32, 2 * max(x1 - x0, y1 - y0))
    h, w = size
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    lo_x = int(min(max(0, round(cx - side / 2)), max(0, w - side)))
    lo_y = int(min(max(0, round(cy - side / 2)), max(0, h - side)))
    return lo_x, lo_y, min(w, lo_x + side), min(h, lo_y + side)


def _spans(side: int, positions: np.ndarray, geometry: FieldGeometry, axis: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Along ``axis``: the first and one-past-last input pixel that each output position sees,
    clamped to [0, side]."""
    centres = geometry.start[axis] + positions * geometry.jump[axis]
    low = np.floor(centres - (geometry.field[axis] - 1) / 2).astype("int64")
    return np.clip(low, 0, side), np.clip(low + geometry.field[axis], 0, side)
