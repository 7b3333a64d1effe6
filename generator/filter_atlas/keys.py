"""Cache keys: the hashes of everything that shapes an image, a view or a natural-set measurement.

A filter (or view) whose stored key equals the key computed now, and whose files are intact, is
fresh and is not rendered again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sizes import Size, as_size

if TYPE_CHECKING:
    from .engine.recipes import Recipe

ENGINE_VERSION = 3  # bump when a code change alters rendered pixels


def digest(data: Any) -> str:
    """sha256 of a JSON-able value, keys sorted."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def size_key(size: int | Size) -> int | list[int]:
    """A size in a key: the side of a square (as keys had it before non-square sizes)."""
    h, w = as_size(size)
    return h if h == w else [h, w]


def cache_key(model: str, weights_sha256: str, preprocess: str, layer: str, index: int, recipe: Recipe,
              size: int | Size, seed: int, backend_name: str, view: dict | None = None) -> str:
    """The key of one filter's image (or of one of its views).

    Args:
        model: The model's slug.
        weights_sha256: Digest of the weight values.
        preprocess: The preprocessing mode.
        layer: The conv layer.
        index: The filter.
        recipe: The recipe as run (its parts' keys, compile mode and precision enter).
        size: Image side, or (height, width).
        seed: The render seed.
        backend_name: ``tensorflow`` or ``jax``. The device does not enter: an atlas rendered on a
            GPU stays fresh for CPU users of the same backend.
        view: The view's name, objective key and image count; absent for the channel view, whose
            key is the filter's.

    Returns:
        A hex sha256.
    """
    return digest({
        "engine": ENGINE_VERSION, "model": model, "weights": weights_sha256, "preprocess": preprocess,
        "layer": layer, "index": index, "recipe": recipe.key(), "size": size_key(size), "seed": seed,
        "backend": backend_name, **({"view": view} if view else {}),
    })


def set_key(images: list[tuple[str, Path]], size: Size, channels: int) -> str:
    """What the natural numbers depend on besides the model.

    Args:
        images: (name, file) of every image of the set.
        size: The size they are measured at.
        channels: The model's input channels (enters only when not 3).

    Returns:
        A hex sha256 of the names, the files' contents, the size and channels.
    """
    named = [(name, hashlib.sha256(path.read_bytes()).hexdigest()) for name, path in images]
    extra = {"channels": channels} if channels != 3 else {}
    return digest({"size": size_key(size), **extra, "images": named})
