"""Images derived from the atlas for the site, written by ``filter-atlas pages`` beside the images
they come from (and committed with them): a contrast-stretched WebP of every keras-vis image and
thumbnail; and, in an atlas whose channel images are PNG (rendered before every view was WebP), a
WebP of every PNG thumbnail and of every PNG image larger than its thumbnail (its high-density
source), lossy at quality 90: what the galleries show, while the PNG is what the lightbox opens.

keras-vis ends by standardizing its image to a standard deviation of 0.1 around grey, so its
images look nearly blank; the stretched copy maps each colour channel's 1st to 99th percentile
onto the full range, for viewing only (activations are measured on the original). The page names use
``webp`` and ``stretched``, and ``derived_images`` plans exactly those files.

Each planned image carries the key of what it is made from (its sources' bytes and ``RECIPE``): a
derived file whose key is unchanged is kept as it is, never encoded again, so that a run on another
machine (another libwebp) leaves the committed files alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from ..imaging import THUMB_SIDE, webp_bytes
from ..store import Manifest

STRETCH_PERCENTILES = (1.0, 99.0)
STRETCHED = "keras-vis"  # the recipe whose images get a stretched copy
RECIPE = "webp q90 m0; stretch 1-99"  # how the files are made: part of every key


def dense(size: int) -> bool:
    """Whether an image of ``size`` px is the high-density source of its thumbnail."""
    return size > THUMB_SIDE


def webp(path: str) -> str:
    """The WebP derived from a PNG path or URL (other paths are served as they are)."""
    return path[:-4] + ".webp" if path.endswith(".png") else path


def stretched(path: str) -> str:
    """The contrast-stretched WebP derived from an image path or URL."""
    return path.rsplit(".", 1)[0] + "-stretched.webp"


@dataclass(frozen=True)
class Contrast:
    """An image's grey level and spread on the 0-1 scale (all channels together), and the
    per-channel percentiles that its stretch maps to 0 and 1."""

    mean: float
    std: float
    low: tuple[float, float, float]
    high: tuple[float, float, float]

    @property
    def gains(self) -> tuple[float, float]:
        """The smallest and largest factor by which the stretch multiplies a channel's contrast."""
        gains = [1.0 / (h - lo) if h > lo else 1.0 for lo, h in zip(self.low, self.high, strict=True)]
        return min(gains), max(gains)


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def contrast(path: Path) -> Contrast:
    """The contrast of the image at ``path``."""
    rgb = _rgb(path)
    low, high = np.percentile(rgb, STRETCH_PERCENTILES, axis=(0, 1))
    return Contrast(round(float(rgb.mean()), 3), round(float(rgb.std()), 3),
                    tuple(map(float, low)), tuple(map(float, high)))


def _stretch(rgb: np.ndarray, c: Contrast) -> np.ndarray:
    low, high = np.array(c.low), np.array(c.high)
    out = np.clip((rgb - low) / np.maximum(high - low, 1e-6), 0.0, 1.0)
    return np.round(out * 255).astype(np.uint8)


def _webp_bytes(image: np.ndarray) -> bytes:
    return webp_bytes(image, method=0)  # fastest; as small here as method 4


def _webp_copy(path: Path) -> bytes:
    with Image.open(path) as image:
        return _webp_bytes(np.asarray(image.convert("RGB")))


def _stretched_copy(path: Path, full: Path) -> bytes:
    return _webp_bytes(_stretch(_rgb(path), contrast(full)))


@dataclass(frozen=True)
class Derived:
    """One derived image: its path relative to the atlas, the files it is made from, and how."""

    rel: str
    sources: tuple[Path, ...]
    make: Callable[[], bytes]

    def key(self) -> str:
        """The sha256 of ``RECIPE`` and the sources' bytes: the same key, the same image."""
        digest = hashlib.sha256(RECIPE.encode())
        for source in self.sources:
            digest.update(hashlib.sha256(source.read_bytes()).digest())
        return digest.hexdigest()


def derived_images(manifest: Manifest, atlas_dir: Path) -> Iterator[Derived]:
    """Every derived image of the atlas; the stretched thumbnail uses the full image's stretch, so
    the two show the same thing."""
    for e in manifest.filters:
        shown = (e.thumbnail, e.image if dense(e.size) else None)
        for rel in dict.fromkeys(rel for rel in shown if rel and rel.endswith(".png")):
            yield Derived(webp(rel), (atlas_dir / rel,), partial(_webp_copy, atlas_dir / rel))
        if e.recipe == STRETCHED and e.image:
            full = atlas_dir / e.image
            for rel in dict.fromkeys((e.image, e.thumbnail or e.image)):
                yield Derived(stretched(rel), tuple(dict.fromkeys((atlas_dir / rel, full))),
                              partial(_stretched_copy, atlas_dir / rel, full))


def derived_files(manifest: Manifest, atlas_dir: Path) -> Iterator[tuple[str, bytes]]:
    """(path relative to the atlas, bytes) of every derived image, each made now."""
    for d in derived_images(manifest, atlas_dir):
        yield d.rel, d.make()
