"""Transformation robustness: a random affine warp (shift, scale, rotation) per image and step.

Each transform (``Jitter``, ``Scale``, ``Rotate``) draws its parameters on the host; ``draw``
composes a list of them into one warp per step, which ``warp`` applies inside the compiled step.

The random draws happen on the host with a seeded NumPy generator and enter the compiled step
as a small array, so the images are reproducible and independent of batch composition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from keras import ops

IDENTITY = (0.0, 0.0, 1.0, 0.0)  # shift x, shift y (px), scale, angle (radians)


def identity(steps: int) -> np.ndarray:
    """Warp parameters (steps, 4) float64 that leave every step's image as it is."""
    return np.tile(np.array(IDENTITY), (steps, 1))


@dataclass(frozen=True)
class Jitter:
    """A random integer shift of up to ``pixels`` in x and y, drawn per step."""

    pixels: int

    def draw(self, rng: np.random.Generator, steps: int) -> np.ndarray:
        """Per-step warp parameters (steps, 4) of this transform alone."""
        out = identity(steps)
        out[:, :2] = rng.integers(-self.pixels, self.pixels + 1, size=(steps, 2))
        return out

    def key(self) -> dict:
        return {"name": "jitter", "pixels": self.pixels}


@dataclass(frozen=True)
class Scale:
    """A random scale factor about the centre, one of ``factors``, drawn per step."""

    factors: tuple[float, ...]

    def draw(self, rng: np.random.Generator, steps: int) -> np.ndarray:
        out = identity(steps)
        out[:, 2] = rng.choice(np.array(self.factors), size=steps)
        return out

    def key(self) -> dict:
        return {"name": "scale", "factors": list(self.factors)}


@dataclass(frozen=True)
class Rotate:
    """A random rotation about the centre, one of ``degrees``, drawn per step."""

    degrees: tuple[float, ...]

    def draw(self, rng: np.random.Generator, steps: int) -> np.ndarray:
        out = identity(steps)
        out[:, 3] = np.deg2rad(rng.choice(np.array(self.degrees), size=steps))
        return out

    def key(self) -> dict:
        return {"name": "rotate", "degrees": list(self.degrees)}


Transform = Jitter | Scale | Rotate


def draw(transforms: Sequence[Transform], rng: np.random.Generator, steps: int) -> np.ndarray:
    """The composed warp of every step (steps, 4), float32: shifts add, scales multiply, angles
    add. Draws happen in list order, so the list order fixes the random numbers; the geometry is
    always "rotate and scale about the centre, then shift" (one bilinear warp per step)."""
    out = identity(steps)
    for transform in transforms:
        part = transform.draw(rng, steps)
        out[:, :2] += part[:, :2]
        out[:, 2] *= part[:, 2]
        out[:, 3] += part[:, 3]
    return out.astype("float32")


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
