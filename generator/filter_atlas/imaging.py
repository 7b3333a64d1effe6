"""Image encoding: deterministic PNG and WebP bytes, thumbnails, and reading pixels back."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

THUMB_SIDE = 112
SMALL_VIEW = 168  # view images up to this side are their own thumbnails (a 112 px copy saves little)


def pil_image(image: np.ndarray) -> Image.Image:
    """A uint8 (H, W, C) array as a Pillow image: one channel is grayscale, three are RGB."""
    return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)


def png_bytes(image: np.ndarray) -> bytes:
    """Deterministic PNG encoding (no metadata, no timestamps); one channel is saved as grayscale."""
    buffer = io.BytesIO()
    pil_image(image).save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def webp_bytes(image: np.ndarray, method: int = 6) -> bytes:
    """Every view's encoding: lossy WebP (quality 90; by default the slowest, smallest method), about
    two fifths of a lossless PNG's bytes on a channel image; deterministic for one libwebp version."""
    buffer = io.BytesIO()
    pil_image(image).save(buffer, format="WEBP", quality=90, method=method)
    return buffer.getvalue()


def as_saved(image: np.ndarray) -> np.ndarray:
    """The pixels a view's file holds: ``image`` through its WebP encoding (``webp_bytes``) and back,
    with ``image``'s channels (WebP stores one channel in all three)."""
    with Image.open(io.BytesIO(webp_bytes(image))) as saved:
        if image.ndim == 3 and image.shape[-1] == 1:
            return np.asarray(saved.convert("L"))[..., None]
        return np.asarray(saved.convert("RGB"))


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """``image`` resized (Lanczos) so that its longer side is ``side``; the aspect is kept."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (side, side) if h == w else (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(pil_image(image).resize(size, Image.Resampling.LANCZOS))


def pixels(path: Path, sha: str | None = None) -> np.ndarray | None:
    """The pixels of the image file ``path``; None when it is missing, empty, undecodable or its
    sha256 is not ``sha``."""
    try:
        data = path.read_bytes()
        if sha and hashlib.sha256(data).hexdigest() != sha:
            return None
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image)
    except Exception:  # OSError for the file; PIL signals bad data with many exception types
        return None
