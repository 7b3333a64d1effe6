"""Images the site derives from the atlas when it is built, never committed: a WebP of every PNG
thumbnail, and of every PNG image larger than its thumbnail (its high-density source), lossy at
quality 90: what the galleries show, while the PNG stays the lossless original that the lightbox
opens; and a contrast-stretched WebP of every keras-vis image and thumbnail.

keras-vis ends by standardizing its image to a standard deviation of 0.1 around grey, so its
images look nearly blank; the stretched copy maps each colour channel's 1st to 99th percentile
onto the full range, for viewing only (activations are measured on the original). The page names use
``webp`` and ``stretched``, and ``write_derived`` makes exactly those files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..imaging import THUMB_SIDE, webp_bytes
from ..store import Manifest

STRETCH_PERCENTILES = (1.0, 99.0)
STRETCHED = "keras-vis"  # the recipe whose images get a stretched copy


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
    return webp_bytes(image, method=0)  # fastest at build time; as small here as method 4


def derived_files(manifest: Manifest, atlas_dir: Path) -> Iterator[tuple[str, bytes]]:
    """(path relative to the atlas, bytes) of every derived image; the stretched thumbnail uses
    the full image's stretch, so the two show the same thing."""
    for e in manifest.filters:
        shown = (e.thumbnail, e.image if dense(e.size) else None)
        for rel in (rel for rel in shown if rel and rel.endswith(".png")):
            with Image.open(atlas_dir / rel) as image:
                yield webp(rel), _webp_bytes(np.asarray(image.convert("RGB")))
        if e.recipe == STRETCHED and e.image:
            c = contrast(atlas_dir / e.image)
            for rel in dict.fromkeys((e.image, e.thumbnail or e.image)):
                yield stretched(rel), _webp_bytes(_stretch(_rgb(atlas_dir / rel), c))


def write_derived(manifest: Manifest, atlas_dir: Path, out_dir: Path) -> int:
    """Write the derived images of ``atlas_dir`` under ``out_dir`` (its copy in the site);
    returns how many."""
    count = 0
    for rel, data in derived_files(manifest, atlas_dir):
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        count += 1
    return count
