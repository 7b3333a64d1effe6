"""File names in an atlas: one safe path component per name, and where each image of a filter lives.

Paths are relative to the manifest: ``<model>/<layer>/<index>-<recipe>.webp`` for the channel
view (``.png`` in atlases rendered before the views were all WebP), ``...-<view>[-k].webp`` for the
others, thumbnails under ``thumbs/``; the natural sets' copies under ``naturals/<set>/``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

Identity = tuple[str, str, int, str]  # model slug, layer, filter index, recipe

_SAFE = re.compile(r"[a-z0-9_-]{1,64}")  # lower case: no two names meet on a case-blind disk


def slug(name: str) -> str:
    """A single path component for a model, layer or recipe name, distinct for distinct names.

    Args:
        name: Any name.

    Returns:
        ``name`` itself when it is a safe component (lower-case letters, digits, ``_`` and ``-``,
        up to 64), else its cleaned form plus the first 8 hex digits of its sha256
        (``a b c`` -> ``a_b_c-<hash>``), so that ``a b c`` and ``a_b_c`` never share a folder.
    """
    if _SAFE.fullmatch(name):
        return name
    cleaned = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_")[:48] or "x"
    return f"{cleaned}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def entry_paths(identity: Identity) -> tuple[str, str]:
    """(image, thumbnail) of a filter's channel view; stable per model/layer/filter/recipe."""
    model, layer, index, recipe = identity
    base = f"{slug(model)}/{slug(layer)}"
    name = f"{index:04d}-{slug(recipe)}.webp"
    return f"{base}/{name}", f"{base}/thumbs/{name}"


def view_paths(identity: Identity, view: str, count: int | None = None) -> list[tuple[str, str]]:
    """(image, thumbnail) paths of another view's images: one, or ``count`` numbered ones."""
    model, layer, index, recipe = identity
    base = f"{slug(model)}/{slug(layer)}"
    stem = f"{index:04d}-{slug(recipe)}-{view}"
    stems = [stem] if count is None else [f"{stem}-{k}" for k in range(count)]
    return [(f"{base}/{s}.webp", f"{base}/thumbs/{s}.webp") for s in stems]


def copies_folder(set_name: str) -> str:
    """The folder of a natural set's copies, relative to the atlas folder."""
    return f"naturals/{slug(set_name)}"


def copy_path(set_name: str, image_name: str) -> str:
    """Where the copy of one image of a set lives, relative to the atlas folder.

    Args:
        set_name: The natural set's name.
        image_name: The image's name in the set.

    Returns:
        The path, one safe component per name.
    """
    return f"{copies_folder(set_name)}/{slug(Path(image_name).with_suffix('').as_posix())}.webp"
