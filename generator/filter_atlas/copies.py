"""The downscaled copies of a natural set's images that the site draws natural patches from
(``naming.copy_path``): one file per photo, shared by every filter whose evidence or examples
view uses it, each patch a window onto its copy by its box (``views.examples.window``)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from .naming import copies_folder, copy_path
from .naturals import NaturalImage, load_image
from .sizes import Size
from .store.files import atomic_write

COPY_SIDE = 160  # px: the longer side of a copy (boxes scale by COPY_SIDE / the measured side)
COPY_QUALITY = 75  # WebP


def write_copy(atlas_dir: Path, set_name: str, natural: NaturalImage, size: Size,
               channels: int) -> str | None:
    """Write one image's copy as the model saw it (resized and centre-cropped to ``size``), unless
    an identical copy is there.

    Args:
        atlas_dir: The atlas folder.
        set_name: The image's natural set.
        natural: The image.
        size: (height, width) the images were measured at.
        channels: The model's input channels (1: grey).

    Returns:
        The copy's path relative to the atlas folder; None where the image cannot be read.
    """
    pixels = load_image(natural.path, size, channels)
    if pixels is None:
        return None
    image = Image.fromarray(pixels if pixels.shape[-1] == 3 else pixels[..., 0])
    h, w = size
    side = (COPY_SIDE, round(COPY_SIDE * w / h)) if h >= w else (round(COPY_SIDE * h / w), COPY_SIDE)
    data = io.BytesIO()
    image = image.resize((side[1], side[0]), Image.Resampling.LANCZOS)
    image.save(data, "WEBP", quality=COPY_QUALITY, method=6)
    rel = copy_path(set_name, natural.name)
    target = atlas_dir / rel
    if not target.is_file() or target.read_bytes() != data.getvalue():
        atomic_write(target, data.getvalue())
    return rel


def prune_copies(atlas_dir: Path, set_name: str, keep: Iterable[str]) -> None:
    """Remove the set's copies that nothing uses any more.

    Args:
        atlas_dir: The atlas folder.
        set_name: The natural set.
        keep: Paths relative to the atlas folder that some evidence or examples view uses.
    """
    kept = set(keep)
    for stale in (atlas_dir / copies_folder(set_name)).glob("*.webp"):
        if stale.relative_to(atlas_dir).as_posix() not in kept:
            stale.unlink()

