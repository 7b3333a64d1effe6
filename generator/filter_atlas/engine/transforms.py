"""Transformation robustness: a random affine warp (shift, scale, rotation) per image and step.

The random draws happen on the host with a seeded NumPy generator and enter the compiled step
as a small array, so the images are reproducible and independent of batch composition.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from .recipes import Recipe


def draw(rng: np.random.Generator, recipe: Recipe, steps: int) -> np.ndarray:
    """Per-step warp parameters (steps, 4): shift x, shift y (px), scale, angle (radians)."""
    shift = rng.integers(-recipe.jitter, recipe.jitter + 1, size=(steps, 2))
    if recipe.second_jitter:
        shift = shift + rng.integers(-recipe.second_jitter, recipe.second_jitter + 1, (steps, 2))
    scale = rng.choice(np.array(recipe.scales), size=steps)
    angle = np.deg2rad(rng.choice(np.array(recipe.angles), size=steps))
    return np.column_stack([shift, scale, angle]).astype("float32")


def warp(images, params, wrap: bool, fill: float = 0.5):
    """Warp each image (B, H, W, C) by its row of ``params`` (B, 4), bilinear sampling.

    The image is scaled and rotated about its centre, then shifted. Pixels from outside the
    image are ``fill`` (Lucid's grey padding), or wrap around when ``wrap`` (a roll, as in
    keras-vis' Jitter; integer shifts then move pixels exactly).
    """
    b, h, w, c = images.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(h, dtype="float32") - cy, np.arange(w, dtype="float32") - cx,
                         indexing="ij")
    tx, ty, scale, angle = (params[:, i, None, None] for i in range(4))
    cos, sin = ops.cos(angle), ops.sin(angle)
    dx, dy = xx - tx, yy - ty
    sx = (cos * dx + sin * dy) / scale + cx
    sy = (cos * dy - sin * dx) / scale + cy
    x0, y0 = ops.floor(sx), ops.floor(sy)
    wx, wy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    flat = ops.reshape(images, (b * h * w, c))
    base = ops.reshape(ops.arange(b, dtype="int32") * (h * w), (b, 1, 1))

    def tap(yi, xi):
        if wrap:
            yi, xi = ops.mod(yi, h), ops.mod(xi, w)
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        yi, xi = ops.clip(yi, 0, h - 1), ops.clip(xi, 0, w - 1)
        values = ops.take(flat, base + yi * w + xi, axis=0)
        return values if wrap else ops.where(inside[..., None], values, fill)

    top = tap(y0, x0) * (1 - wx) + tap(y0, x0 + 1) * wx
    bottom = tap(y0 + 1, x0) * (1 - wx) + tap(y0 + 1, x0 + 1) * wx
    return top * (1 - wy) + bottom * wy
