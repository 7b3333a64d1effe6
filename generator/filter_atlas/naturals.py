"""A small set of natural photographs that ships offline (scikit-image's sample data).

The atlas compares each synthetic image's activation with the best activation the filter
reaches on these photos, so a reader can judge how far the optimization pushed it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# scikit-image sample images bundled with the package (no download needed).
PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
    "colorwheel", "retina", "brick", "grass", "gravel", "camera",
)


def natural_images(size: int) -> np.ndarray:
    """The photos as uint8 RGB, centre-cropped to a square and resized: (N, size, size, 3)."""
    from skimage import data

    out = []
    for name in PHOTOS:
        photo = np.asarray(getattr(data, name)())
        if photo.ndim == 2:
            photo = np.stack([photo] * 3, axis=-1)
        h, w = photo.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = Image.fromarray(photo[top : top + side, left : left + side, :3].astype("uint8"))
        out.append(np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS)))
    return np.stack(out)
