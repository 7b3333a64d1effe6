"""keras-vis' helpers (``vis.utils.utils``) that the filter tutorial uses."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
from PIL import Image, ImageDraw


def find_layer_idx(model: keras.Model, layer_name: str) -> int:
    """Index of the layer called ``layer_name`` in ``model.layers`` (ValueError if none)."""
    for index, layer in enumerate(model.layers):
        if layer.name == layer_name:
            return index
    raise ValueError(f"No such layer: {layer_name}")


def draw_text(img: np.ndarray, text: str, position: tuple[int, int] = (10, 10),
              font: object = None, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """``img`` with ``text`` drawn at ``position`` (Pillow's default font unless ``font``)."""
    image = Image.fromarray(np.asarray(img, dtype="uint8"))
    ImageDraw.Draw(image).text(position, text, fill=color, font=font)
    return np.asarray(image)


def stitch_images(images: Sequence[np.ndarray], margin: int = 5, cols: int = 5) -> np.ndarray | None:
    """Tile equally sized images into a grid ``cols`` wide with ``margin`` pixels between them."""
    if not images:
        return None
    h, w, c = images[0].shape
    rows, cols = math.ceil(len(images) / cols), min(len(images), cols)
    out = np.zeros(((h + margin) * rows - margin, (w + margin) * cols - margin, c), dtype=images[0].dtype)
    for k, image in enumerate(images):
        r, q = divmod(k, cols)
        out[r * (h + margin): r * (h + margin) + h, q * (w + margin): q * (w + margin) + w] = image
    return out
