"""Finding the examples of a set: read each image once, take its entries from the cache or from
a batched forward pass, fold them into each layer's selection, and crop the winning patches."""

from __future__ import annotations

import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import AtlasError
from ..models import LoadedModel, Size, as_size
from ..naturals import ImageSet, load_image
from .cache import CACHE_VERSION, ExamplesCache, default_cache_dir
from .forward import Forward
from .selection import LayerSelection, Pick

BATCH = 8  # images per forward pass


@dataclass(frozen=True)
class Patch:
    """One example: a receptive-field box of a set's image, and the filter's value there."""

    source: str  # the NaturalImage's name
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the size x size image (load_image), x1, y1 exclusive
    activation: float  # the filter's pre-activation at that position
    image: np.ndarray  # uint8 crop of the image inside box


@dataclass(frozen=True)
class FilterExamples:
    """A filter's examples over a set."""

    top: tuple[Patch, ...]  # highest activation first
    bottom: tuple[Patch, ...]  # lowest (most negative) first
    best_mean: float  # the best, over the set, of the filter's mean activation after ReLU


@dataclass(frozen=True)
class ExamplesResult:
    """Examples of every wanted filter over one image set."""

    set: ImageSet
    used: int  # images read
    skipped: tuple[str, ...]  # names of the unreadable files
    filters: dict[tuple[str, int], FilterExamples]  # (layer, filter index) -> examples
    cached: int = 0  # images whose entries all came from the cache (no forward pass for them)


def find_examples(model: LoadedModel, wanted: dict[str, list[int]], image_set: ImageSet, size: int | Size,
                  k: int = 9, cache_dir: Path | None = None, progress: bool = True) -> ExamplesResult:
    """The top and bottom ``k`` patches of each wanted filter over ``image_set``.

    Args:
        model: From ``load_model``.
        wanted: Conv layer name -> filter indices.
        image_set: The images (``naturals.bundled_set()`` or ``naturals.folder_set(path)``).
        size: Side, or (height, width), the images are resized and cropped to (``naturals.load_image``).
        k: Patches per filter and side (fewer when the set has fewer candidates).
        cache_dir: Where the per-image cache lives (default: ``default_cache_dir()``).
        progress: Show a progress bar over the images.

    Returns:
        The examples; unreadable files are skipped, counted, and reported in one line on stderr.
        With nothing wanted, no image is read.

    Raises:
        AtlasError: An unknown layer or filter index, or no readable image in the set.
    """
    if not wanted:
        return ExamplesResult(image_set, 0, (), {})
    size = as_size(size)
    layers = [LayerSelection(model, conv, size, k, len(image_set.sources))
              for conv in model.resolve_layers(tuple(wanted), size)]
    for layer in layers:
        bad = [i for i in wanted[layer.name] if not 0 <= i < layer.filters]
        if bad:
            raise AtlasError(f"filter {bad[0]} is out of range for {layer.name} ({layer.filters} filters)")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = ExamplesCache(root, [model.slug, model.weights_sha256, model.preprocess, CACHE_VERSION],
                          [(layer.name, layer.m) for layer in layers], size)
    forward, queue, skipped, cached = None, [], [], 0
    try:
        for order, natural in enumerate(tqdm(image_set.sources, desc=f"examples {image_set.name}",
                                             unit="img", disable=not progress, dynamic_ncols=True)):
            try:
                data = natural.path.read_bytes()
            except OSError:
                skipped.append(natural.name)
                continue
            key = hashlib.sha256(data).hexdigest()
            entries = cache.get(key)
            if all(entry is not None for entry in entries):
                for layer, entry in zip(layers, entries, strict=True):
                    layer.add(order, entry)
                cached += 1
                continue
            image = load_image(io.BytesIO(data), size, model.channels)
            if image is None:
                skipped.append(natural.name)
                continue
            queue.append((order, key, image))
            if len(queue) == BATCH:
                forward = forward or Forward(model, [layer.name for layer in layers], BATCH)
                _run(forward, queue, layers, cache)
                queue = []
        if queue:
            forward = forward or Forward(model, [layer.name for layer in layers], min(BATCH, len(queue)))
            _run(forward, queue, layers, cache)
    finally:
        cache.close()
    used = len(image_set.sources) - len(skipped)
    if skipped:
        print(f"filter-atlas: skipped {len(skipped)} unreadable image(s) in {image_set.name}, "
              f"e.g. {skipped[0]}", file=sys.stderr)
    if not used:
        raise AtlasError(f"no readable image in {image_set.name}")
    picks = {layer.name: layer.finish() for layer in layers}
    crops = _crops(image_set, size, model.channels, [side for top, bottom, _ in picks.values()
                                                     for side in (top, bottom)])
    filters = {}
    for layer in layers:
        top, bottom, best = picks[layer.name]
        for index in wanted[layer.name]:
            filters[layer.name, index] = FilterExamples(
                top=_patches(layer, top, index, image_set, crops),
                bottom=_patches(layer, bottom, index, image_set, crops),
                best_mean=float(best[index]))
    return ExamplesResult(image_set, used, tuple(skipped), filters, cached)


def _run(forward: Forward, queue: list, layers: list[LayerSelection], cache: ExamplesCache) -> None:
    """One forward batch: each image's entries into every layer's selection, and into the cache."""
    outputs = forward(np.stack([image for _, _, image in queue]))
    for i, (layer, (maps, means)) in enumerate(zip(layers, outputs, strict=True)):
        rows = []
        for (order, key, _), image_maps, image_means in zip(queue, maps, means, strict=True):
            entry = (*layer.select(image_maps), image_means)
            layer.add(order, entry)
            rows.append((key, entry))
        cache.put(i, rows)


def _crops(image_set: ImageSet, size: Size, channels: int, picks: list[Pick]) -> dict[int, np.ndarray]:
    """The processed image of every set image that some pick uses (each file read once)."""
    orders = sorted({int(o) for _, images, _ in picks for o in np.unique(images) if o >= 0})
    out = {}
    for order in orders:
        image = load_image(image_set.sources[order].path, size, channels)
        if image is not None:
            out[order] = image
    return out


def _patches(layer: LayerSelection, pick: Pick, index: int, image_set: ImageSet,
             crops: dict[int, np.ndarray]) -> tuple[Patch, ...]:
    """Filter ``index``'s patches of one side (``LayerSelection.finish``'s top or bottom)."""
    acts, images, positions = (a[index] for a in pick)
    out = []
    for act, order, position in zip(acts, images, positions, strict=True):
        if order < 0 or order not in crops:
            continue
        x0, y0, x1, y1 = (int(v) for v in layer.boxes[position])
        out.append(Patch(image_set.sources[order].name, (x0, y0, x1, y1), float(act),
                         crops[order][y0:y1, x0:x1].copy()))
    return tuple(out)
