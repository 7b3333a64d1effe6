"""Measuring a set: read each image once, take its entries from the cache or from a batched
forward pass, fold them into each layer's selection (``measure``); and the examples of chosen
filters, their winning patches with their boxes (``find_examples``)."""

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
from .cache import CACHE_VERSION, Entry, ExamplesCache, default_cache_dir
from .forward import Forward
from .selection import LayerSelection, Pick

BATCH = 8  # images per forward pass


@dataclass(frozen=True)
class Patch:
    """One example: a receptive-field box of a set's image, and the filter's value there."""

    source: str  # the NaturalImage's name
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the size x size image (load_image), x1, y1 exclusive
    activation: float  # the filter's pre-activation at that position
    label: str | None = None  # the image's class, where the set is labelled


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


@dataclass(frozen=True)
class LayerPicks:
    """Every filter of one layer over a set: ``LayerSelection.finish``'s results."""

    top: Pick
    bottom: Pick
    best: np.ndarray  # (filters,) the best ReLU mean over the set
    active: np.ndarray  # (filters,) images on which the filter is positive somewhere
    boxes: np.ndarray  # (positions, 4) each map position's box in the measured image
    sparsity: np.ndarray  # (filters,) lifetime sparsity over the set (``LayerSelection.sparsity``)


@dataclass(frozen=True)
class Measured:
    """One pass over a set: every filter of every measured layer."""

    set: ImageSet
    size: Size
    used: int
    skipped: tuple[str, ...]
    cached: int
    layers: dict[str, LayerPicks]


def measure(model: LoadedModel, layers: list[str], image_set: ImageSet, size: int | Size, k: int = 9,
            cache_dir: Path | None = None, progress: bool = True) -> Measured:
    """One pass over ``image_set`` for every filter of ``layers``: each filter's top and bottom
    ``k`` positions (one per image from ``LARGE_SET`` images on), best mean and active images.

    Args:
        model: From ``load_model``.
        layers: Conv layer names.
        image_set: The images (``naturals``).
        size: Side, or (height, width), the images are resized and cropped to (``naturals.load_image``).
        k: Candidates per filter and side.
        cache_dir: Where the per-image cache lives (default: ``default_cache_dir()``).
        progress: Show a progress bar over the images.

    Returns:
        The picks of every layer; unreadable files are skipped, counted, and reported in one line
        on stderr.

    Raises:
        AtlasError: An unknown layer, or no readable image in the set.
    """
    size = as_size(size)
    chosen = [LayerSelection(model, conv, size, k, len(image_set.sources))
              for conv in model.resolve_layers(tuple(layers), size)]
    names = [layer.name for layer in chosen]
    extremes = all(layer.m == 1 for layer in chosen)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = ExamplesCache(root, [model.slug, model.weights_sha256, model.preprocess, CACHE_VERSION],
                          [(layer.name, layer.m) for layer in chosen], size)
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
                for layer, entry in zip(chosen, entries, strict=True):
                    layer.add(order, entry)
                cached += 1
                continue
            image = load_image(io.BytesIO(data), size, model.channels)
            if image is None:
                skipped.append(natural.name)
                continue
            queue.append((order, key, image))
            if len(queue) == BATCH:
                forward = forward or Forward(model, names, BATCH, extremes)
                _run(forward, queue, chosen, cache)
                queue = []
        if queue:
            forward = forward or Forward(model, names, min(BATCH, len(queue)), extremes)
            _run(forward, queue, chosen, cache)
    finally:
        cache.close()
    used = len(image_set.sources) - len(skipped)
    if skipped:
        print(f"filter-atlas: skipped {len(skipped)} unreadable image(s) in {image_set.name}, "
              f"e.g. {skipped[0]}", file=sys.stderr)
    if not used:
        raise AtlasError(f"no readable image in {image_set.name}")
    picks = {}
    for layer in chosen:
        top, bottom, best = layer.finish()
        picks[layer.name] = LayerPicks(top, bottom, best, layer.active, layer.boxes, layer.sparsity(used))
    return Measured(image_set, size, used, tuple(skipped), cached, picks)


def find_examples(model: LoadedModel, wanted: dict[str, list[int]], image_set: ImageSet, size: int | Size,
                  k: int = 9, cache_dir: Path | None = None, progress: bool = True) -> ExamplesResult:
    """The top and bottom ``k`` patches of each wanted filter over ``image_set`` (``measure``,
    then the winning patches' boxes and values).

    Args:
        model: From ``load_model``.
        wanted: Conv layer name -> filter indices.
        image_set: The images (``naturals.bundled_set()`` or ``naturals.folder_set(path)``).
        size: Side, or (height, width), the images are resized and cropped to (``naturals.load_image``).
        k: Patches per filter and side (fewer when the set has fewer candidates).
        cache_dir: Where the per-image cache lives (default: ``default_cache_dir()``).
        progress: Show a progress bar over the images.

    Returns:
        The examples. With nothing wanted, no image is read.

    Raises:
        AtlasError: An unknown layer or filter index, or no readable image in the set.
    """
    if not wanted:
        return ExamplesResult(image_set, 0, (), {})
    size = as_size(size)
    for conv in model.resolve_layers(tuple(wanted), size):
        bad = [i for i in wanted[conv.name] if not 0 <= i < conv.filters]
        if bad:
            raise AtlasError(f"filter {bad[0]} is out of range for {conv.name} ({conv.filters} filters)")
    found = measure(model, list(wanted), image_set, size, k, cache_dir, progress)
    filters = {}
    for name, picks in found.layers.items():
        for index in wanted[name]:
            filters[name, index] = FilterExamples(
                top=_patches(picks.boxes, picks.top, index, image_set),
                bottom=_patches(picks.boxes, picks.bottom, index, image_set),
                best_mean=float(picks.best[index]))
    return ExamplesResult(image_set, found.used, found.skipped, filters, found.cached)


def _run(forward: Forward, queue: list, layers: list[LayerSelection], cache: ExamplesCache) -> None:
    """One forward batch: each image's entries into every layer's selection, and into the cache."""
    outputs = forward(np.stack([image for _, _, image in queue]))
    for i, (layer, arrays) in enumerate(zip(layers, outputs, strict=True)):
        rows = []
        for b, (order, key, _) in enumerate(queue):
            entry = _extremes(*(a[b] for a in arrays)) if forward.extremes else \
                (*layer.select(arrays[0][b]), arrays[1][b])
            layer.add(order, entry)
            rows.append((key, entry))
        cache.put(i, rows)


def _extremes(top: np.ndarray, top_value: np.ndarray, bottom: np.ndarray, bottom_value: np.ndarray,
              means: np.ndarray) -> Entry:
    """One image's entry from its filters' extreme positions and values (``select`` with m = 1):
    a filter with a value that is not finite has no candidate there."""
    values = np.stack([top_value, bottom_value])[..., None]
    positions = np.stack([top, bottom])[..., None].astype("int32")
    found = np.isfinite(values)
    return np.where(found, positions, -1).astype("int32"), np.where(found, values, 0).astype("float32"), means


def _patches(boxes: np.ndarray, pick: Pick, index: int, image_set: ImageSet) -> tuple[Patch, ...]:
    """Filter ``index``'s patches of one side (``LayerSelection.finish``'s top or bottom)."""
    acts, images, positions = (a[index] for a in pick)
    out = []
    for act, order, position in zip(acts, images, positions, strict=True):
        if order < 0:
            continue
        x0, y0, x1, y1 = (int(v) for v in boxes[position])
        natural = image_set.sources[order]
        out.append(Patch(natural.name, (x0, y0, x1, y1), float(act), natural.label))
    return tuple(out)
