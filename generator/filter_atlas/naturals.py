"""Natural image sets: colour photographs that installed packages ship, or a folder of the user's.

The atlas finds each filter's dataset examples in a set, and compares each synthetic image's
activation with the best activation the filter reaches on it, so a reader can judge how far the
optimization pushed it. Images are read from disk only: nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from .errors import AtlasError
from .sizes import as_size

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class NaturalImage:
    """One image of a set."""

    name: str  # short stable display name: the photo's name, or its path relative to the folder
    path: Path
    source: str  # where it comes from (for a folder: the relative path)
    licence: str  # as its package states it; "" when unknown


@dataclass(frozen=True)
class ImageSet:
    """A named set of natural images, in a fixed order."""

    name: str
    description: str
    sources: tuple[NaturalImage, ...]


# Colour photographs in installed packages: (package, path in it, name, source, licence). Source and
# licence are as each package states them: scikit-image in its skimage/data/_fetchers.py docstrings,
# scikit-learn in sklearn/datasets/images/README.txt; matplotlib states none (the file's own JPEG
# comment names its source). Greyscale, synthetic and scientific images are left out.
_BUNDLED = (
    ("skimage", "data/astronaut.png", "astronaut",
     "scikit-image: Eileen Collins, NASA Great Images database, https://flic.kr/p/r9qvLn",
     "No known copyright restrictions, released into the public domain."),
    ("skimage", "data/chelsea.png", "chelsea",
     "scikit-image: Chelsea the cat, photographed by Stefan van der Walt",
     "No copyright restrictions. CC0 by the photographer (Stefan van der Walt)."),
    ("skimage", "data/coffee.png", "coffee",
     "scikit-image: coffee cup, courtesy of Pikolo Espresso Bar",
     "No copyright restrictions. CC0 by the photographer (Rachel Michetti)."),
    ("skimage", "data/rocket.jpg", "rocket",
     "scikit-image: launch of DSCOVR on Falcon 9 by SpaceX, "
     "https://www.flickr.com/photos/spacexphotos/16511594820/",
     "The image was captured by SpaceX and released in the public domain."),
    ("sklearn", "datasets/images/china.jpg", "china",
     "scikit-learn: https://www.flickr.com/photos/danielbuechele/6061409035/, "
     "retrieved 21st August, 2011 by Robert Layton",
     "Released under a creative commons license (https://creativecommons.org/licenses/by/2.0/). "
     "Attribution: Some rights reserved by danielbuechele"),
    ("sklearn", "datasets/images/flower.jpg", "flower",
     "scikit-learn: https://www.flickr.com/photos/vultilion/6056698931/, "
     "retrieved 21st August, 2011 by Robert Layton",
     "Released under a creative commons license (https://creativecommons.org/licenses/by/2.0/). "
     "Attribution: Some rights reserved by danielbuechele [sic; photographer: "
     "https://www.flickr.com/photos/vultilion/]"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "grace_hopper",
     "matplotlib sample data; file comment: File source: "
     "http://commons.wikimedia.org/wiki/File:Grace_Hopper.jpg",
     "Not stated by matplotlib; Wikimedia Commons lists it as a U.S. Navy photograph in the "
     "public domain (not verified offline)."),
)


def bundled_set() -> ImageSet:
    """The default set: colour photographs shipped by scikit-image, scikit-learn and matplotlib.

    Returns:
        The set, in a fixed order, of the photos whose package is installed.

    Raises:
        AtlasError: None of the packages is installed.
    """
    sources = []
    for package, relative, name, source, licence in _BUNDLED:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(spec.submodule_search_locations[0]) / relative
        if path.is_file():
            sources.append(NaturalImage(name, path, source, licence))
    if not sources:
        raise AtlasError("no bundled photos found: install scikit-image, scikit-learn or matplotlib, "
                         "or give a folder of images")
    return ImageSet("bundled-photos",
                    "colour photographs that scikit-image, scikit-learn and matplotlib ship", tuple(sources))


def folder_set(path: Path) -> ImageSet:
    """Every JPEG, PNG and WebP file under ``path`` (recursive, hidden files left out).

    Args:
        path: A folder.

    Returns:
        The set, named after the folder, sorted by relative path.

    Raises:
        AtlasError: The path is a file, or missing, or the folder holds no such image.
    """
    path = Path(path)
    if path.is_file():
        raise AtlasError(f"examples: {path} is a file, not a folder; give the folder that holds the images")
    if not path.is_dir():
        raise AtlasError(f"examples folder not found: {path}")
    files = sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*")
                   if p.suffix.lower() in SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise AtlasError(f"no JPEG, PNG or WebP images in {path}")
    name = path.resolve().name or str(path)
    # The folder's own name only: the description is published, a local path is private.
    return ImageSet(name, f"the JPEG, PNG and WebP files of a folder named {name}",
                    tuple(NaturalImage(rel, p, rel, "") for rel, p in files))


def load_image(source: Path | BinaryIO, size: int | tuple[int, int], channels: int = 3) -> np.ndarray | None:
    """An image as the network sees it: EXIF orientation applied, RGB (transparency over white;
    grayscale for one channel), resized (Lanczos) to cover ``size`` and centre-cropped to it.

    Args:
        source: A file path or a binary file object.
        size: Side of the result in pixels, or (height, width).
        channels: 3 (RGB) or 1 (grayscale).

    Returns:
        (height, width, channels) uint8, or None when the file is not a readable image (corrupt,
        truncated, or a decompression bomb).
    """
    th, tw = as_size(size)
    try:
        with Image.open(source) as image:
            image.draft("RGB", (tw, th))  # JPEG: decode at a reduced scale still >= size
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I"):  # 16- or 32-bit greyscale
                image = image.convert("I").point(lambda v: v / 256).convert("L")
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                image = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
            image = image.convert("RGB" if channels == 3 else "L")
            w, h = image.size
            # The largest centred box of the target's aspect: full width, or full height.
            bw, bh = (w, w * th / tw) if tw * h >= th * w else (h * tw / th, h)
            box = ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2)
            pixels = np.asarray(image.resize((tw, th), Image.Resampling.LANCZOS, box=box), dtype="uint8")
            return pixels if pixels.ndim == 3 else pixels[..., None]
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError):
        return None

