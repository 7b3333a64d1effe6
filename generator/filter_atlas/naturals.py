"""Natural image sets: colour photographs that installed packages ship, a folder of the user's, or
a named set (``imagenet-samples``: one ImageNet photograph per class, checked file by file against
the SHA-256 list the package ships; ``downloads.local_copy`` finds or downloads it).

The atlas finds each filter's dataset examples in a set, and compares each synthetic image's
activation with the best activation the filter reaches on it, so a reader can judge how far the
optimization pushed it.

Labels (each image's class) of a folder, by the first rule that holds for every image:

1. ImageNet names: every file name is ``<wnid>_<class>.<ext>`` with ``<wnid>`` ``n`` and 8 digits
   and ``<class>`` not only digits (``n02089973_English_foxhound.JPEG``): the label is the class,
   underscores as spaces (``English foxhound``), and the wnid is kept.
2. ImageFolder: every image sits exactly one folder deep (``DIR/<class>/x.jpg``), in at least two
   folders: the label is its folder's name.
3. Otherwise no labels (None).
"""

from __future__ import annotations

import importlib.util
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from .downloads import IMAGENET_SAMPLES, PinnedSet, local_copy, read_hashes
from .errors import AtlasError
from .sizes import as_size

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
IMAGENET_NAME = re.compile(r"(n\d{8})_(?!\d+$)(.+)")  # a file stem: wnid _ class (not a bare number)
IMAGENET_SOURCE = ("ImageNet (ILSVRC-2012) photograph, from github.com/EliSchwartz/imagenet-sample-images "
                   "at commit bc69043e")
IMAGENET_TERMS = ("ImageNet terms: non-commercial research and educational use only; "
                  "copyright stays with the image's owner")
IMAGENET_DESCRIPTION = ("one photograph per ImageNet-1k (ILSVRC-2012) class, 1,000 in all, from "
                        "github.com/EliSchwartz/imagenet-sample-images at commit bc69043e; ImageNet terms: "
                        "non-commercial research and educational use only; copyright stays with the "
                        "images' owners")


@dataclass(frozen=True)
class NaturalImage:
    """One image of a set."""

    name: str  # short stable display name: the photo's name, or its path relative to the folder
    path: Path
    source: str  # where it comes from (for a folder: the relative path)
    licence: str  # as its package states it; "" when unknown
    label: str | None = None  # its class, where the set is labelled (``folder_set`` says how)
    wnid: str | None = None  # its ImageNet synset id, where its name gives one


@dataclass(frozen=True)
class ImageSet:
    """A named set of natural images, in a fixed order."""

    name: str
    description: str
    sources: tuple[NaturalImage, ...]

    @property
    def labelled(self) -> bool:
        """Whether every image has a label."""
        return all(image.label is not None for image in self.sources)


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
    """Every JPEG, PNG and WebP file under ``path`` (recursive, hidden files left out), labelled by
    ImageNet names, else by class folders, else not (the module docstring gives the rules).

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
    labels = folder_labels([rel for rel, _ in files])
    return ImageSet(name, f"the JPEG, PNG and WebP files of a folder named {name}",
                    tuple(NaturalImage(rel, p, rel, "", label, wnid)
                          for (rel, p), (label, wnid) in zip(files, labels, strict=True)))


def folder_labels(relatives: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """Each image's (label, wnid) by the folder's layout: ImageNet names, else class folders, else
    none (the module docstring gives the rules).

    Args:
        relatives: The images' paths relative to the folder, with ``/``.

    Returns:
        (label, wnid) per image, in order; wnid only from ImageNet names, both None without labels.
    """
    parsed = [imagenet_label(rel.rsplit("/", 1)[-1]) for rel in relatives]
    if relatives and all(parsed):
        return [(label, wnid) for wnid, label in parsed]
    parts = [rel.split("/") for rel in relatives]
    if all(len(p) == 2 for p in parts) and len({p[0] for p in parts}) >= 2:
        return [(p[0], None) for p in parts]
    return [(None, None)] * len(relatives)


def imagenet_label(file_name: str) -> tuple[str, str] | None:
    """(wnid, class) of an ImageNet-style file name, or None.

    Args:
        file_name: E.g. ``n02089973_English_foxhound.JPEG``.

    Returns:
        E.g. ``("n02089973", "English foxhound")``: underscores of the class become spaces.
    """
    match = IMAGENET_NAME.fullmatch(Path(file_name).stem)
    return (match[1], match[2].replace("_", " ")) if match else None


def imagenet_samples(pinned: PinnedSet = IMAGENET_SAMPLES, cache_dir: Path | None = None) -> ImageSet:
    """``imagenet-samples``: 1,000 ImageNet photographs, one per class, labelled, every file checked
    against its pinned SHA-256 (``downloads.local_copy``: ``$FILTER_ATLAS_IMAGENET_SAMPLES``, else
    the cached copy, else a download into the cache).

    Args:
        pinned: The pinned list and archive (tests give their own).
        cache_dir: Where cached sets live (default ``downloads.naturals_cache_dir()``).

    Returns:
        The set's pinned files, in the pinned list's order; files the list does not name are left out.

    Raises:
        AtlasError: No intact copy could be found or downloaded (the message says which file failed,
            or how to name a local copy).
    """
    folder = local_copy(pinned, cache_dir)
    images = []
    for file_name in read_hashes(pinned.hashes):
        wnid, label = imagenet_label(file_name) or (None, None)
        images.append(NaturalImage(file_name, folder / file_name, f"{IMAGENET_SOURCE}: {file_name}",
                                   IMAGENET_TERMS, label, wnid))
    return ImageSet(pinned.name, IMAGENET_DESCRIPTION, tuple(images))


NAMED_SETS: dict[str, Callable[[], ImageSet]] = {"imagenet-samples": imagenet_samples}


def named_set(name: str) -> ImageSet:
    """A named set (``NAMED_SETS``).

    Args:
        name: E.g. ``imagenet-samples``.

    Returns:
        The set.

    Raises:
        AtlasError: Unknown name, or the set cannot be had.
    """
    if name not in NAMED_SETS:
        raise AtlasError(f"unknown image set {name!r}; named sets: {', '.join(NAMED_SETS)}")
    return NAMED_SETS[name]()


def resolve_set(value: str | None) -> ImageSet:
    """The set a configuration or ``--examples`` names.

    Args:
        value: None (the bundled photos), a set name (``imagenet-samples``), or a folder (a folder
            named like a set is given with a folder part, e.g. as an absolute path).

    Returns:
        The set.

    Raises:
        AtlasError: As ``bundled_set``, ``named_set`` or ``folder_set``.
    """
    if value is None:
        return bundled_set()
    if value in NAMED_SETS:
        return named_set(value)
    return folder_set(Path(value))


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

