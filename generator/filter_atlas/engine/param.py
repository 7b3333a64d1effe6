"""Image parameterizations: what the optimizer changes, and how that becomes an RGB image.

``Pixel`` and ``Fourier`` are the settings (part of a recipe and its cache key); ``build(size)``
gives the object that draws starting parameters and maps a batch of them to images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
from keras import ops

# Square root of the ImageNet colour covariance (from the Lucid paper's code, Olah et al. 2017):
# images are optimized in this decorrelated colour space and mapped back to RGB.
_COLOR_CORRELATION_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype="float32"
)
_COLOR_MIX = _COLOR_CORRELATION_SQRT / np.max(np.linalg.norm(_COLOR_CORRELATION_SQRT, axis=0))


class PixelParam:
    """The image itself, in 0-255 units, starting from grey plus Gaussian noise (std 12.75)."""

    def __init__(self, size: tuple[int, int], channels: int = 3):
        self.shape = (*size, channels)

    def init(self, rng: np.random.Generator) -> np.ndarray:
        return (127.5 + 12.75 * rng.standard_normal(self.shape)).astype("float32")

    def to_image(self, params):
        """Batch of params -> batch of RGB images in [0, 1] units (not clipped)."""
        return params / 255.0


class FourierParam:
    """Scaled Fourier coefficients (1/f spectrum), decorrelated colour (for RGB; other channel
    counts are left as they are), sigmoid to [0, 1].

    The inverse real 2-D DFT is done with two matrix products (exact, differentiable and
    identical on every backend), which costs far less than one conv layer of the model.
    """

    def __init__(self, size: tuple[int, int], channels: int = 3, decay: float = 1.0):
        h, w = size
        self.shape = (2, channels, h, w // 2 + 1)
        wf = w // 2 + 1
        freqs = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
        scale = np.sqrt(w * h) / np.maximum(freqs, 1.0 / max(w, h)) ** decay
        # Inverse complex DFT along height: exp(+2 pi i u y / H) / H = cos + i sin.
        angle_h = 2 * np.pi * np.outer(np.arange(h), np.arange(h)) / h
        self._ch = (np.cos(angle_h) / h).astype("float32")  # [y, u]
        self._sh = (np.sin(angle_h) / h).astype("float32")
        # Inverse real DFT along width; bins other than DC and Nyquist count twice.
        weight = np.full(wf, 2.0)
        weight[0] = 1.0
        if w % 2 == 0:
            weight[-1] = 1.0
        angle_w = 2 * np.pi * np.outer(np.arange(wf), np.arange(w)) / w
        self._cw = (weight[:, None] * np.cos(angle_w) / w).astype("float32")  # [v, x]
        self._sw = (weight[:, None] * np.sin(angle_w) / w).astype("float32")
        self._scale = scale.astype("float32")  # [u, v]

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """Real and imaginary parts, shape (2, channels, H, W // 2 + 1), std 0.01."""
        return (0.01 * rng.standard_normal(self.shape)).astype("float32")

    def spatial(self, params):
        """Batch (B, 2, C, H, Wf) -> decorrelated-space images (B, H, W, C), before the sigmoid."""
        re = params[:, 0] * self._scale
        im = params[:, 1] * self._scale
        t_re = ops.einsum("yu,bcuv->bcyv", self._ch, re) - ops.einsum("yu,bcuv->bcyv", self._sh, im)
        t_im = ops.einsum("yu,bcuv->bcyv", self._ch, im) + ops.einsum("yu,bcuv->bcyv", self._sh, re)
        x = ops.einsum("bcyv,vx->byxc", t_re, self._cw) - ops.einsum("bcyv,vx->byxc", t_im, self._sw)
        return x / 4.0

    def to_image(self, params):
        if self.shape[1] != 3:
            return ops.sigmoid(self.spatial(params))
        return ops.sigmoid(ops.einsum("bhwc,dc->bhwd", self.spatial(params), _COLOR_MIX))


class ImageParam(Protocol):
    """A built parameterization for one image size and channel count."""

    def init(self, rng: np.random.Generator) -> np.ndarray: ...

    def to_image(self, params): ...


@dataclass(frozen=True)
class Pixel:
    """The image itself, in 0-255 units, from grey plus Gaussian noise (keras-vis)."""

    name = "pixel"

    def build(self, size: tuple[int, int], channels: int = 3) -> ImageParam:
        return PixelParam(size, channels)

    def key(self) -> dict:
        return {"name": self.name}


@dataclass(frozen=True)
class Fourier:
    """Scaled Fourier coefficients with a 1 / f^decay spectrum, decorrelated colour (Lucid)."""

    decay: float = 1.0
    name = "fourier"

    def build(self, size: tuple[int, int], channels: int = 3) -> ImageParam:
        return FourierParam(size, channels, self.decay)

    def key(self) -> dict:
        return {"name": self.name, **asdict(self)}
