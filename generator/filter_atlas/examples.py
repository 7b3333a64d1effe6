"""Dataset examples: the natural image patches that excite, and most inhibit, each filter.

One forward pass per batch of images gives the pre-activation maps (conv + bias, before the ReLU)
of every wanted layer. For each image and every filter of those layers, the best ``m`` and the
worst ``m`` positions at distinct places are kept (greedy: best position, drop the positions whose
receptive-field box overlaps it by more than half, next best...), with the filter's mean activation
after ReLU. These per-image results are cached in SQLite, keyed by the file's content, so a later
pass over the same images never calls the model. Over the set, each filter keeps its ``k`` best and
worst positions only, so memory does not grow with the set; the winning patches are cropped at the
end by re-reading just those files.
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from keras import ops
from tqdm import tqdm

from .engine import backend, objectives, targets
from .errors import AtlasError
from .models import LoadedModel, Size, as_size, receptive_geometry, size_text
from .naturals import ImageSet, load_image
from .store import slug

MODEL_CALLS = 0  # forward batches run, all calls together (a cached pass adds none)
BATCH = 8  # images per forward pass
LARGE_SET = 100  # from this many images on, one top and one bottom position per image and filter
MERGE_EVERY = 256  # images whose candidates are gathered before the running top k is updated
CACHE_VERSION = 1  # bump when a change alters the cached values (image loading, selection)


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


def default_cache_dir() -> Path:
    """``$FILTER_ATLAS_CACHE``, else ``$XDG_CACHE_HOME/filter-atlas/examples``, else
    ``~/.cache/filter-atlas/examples``."""
    if os.environ.get("FILTER_ATLAS_CACHE"):
        return Path(os.environ["FILTER_ATLAS_CACHE"])
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "filter-atlas" / "examples"


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
    layers = [_Layer(model, conv, size, k, image_set) for conv in model.resolve_layers(tuple(wanted), size)]
    for layer in layers:
        bad = [i for i in wanted[layer.name] if not 0 <= i < layer.filters]
        if bad:
            raise AtlasError(f"filter {bad[0]} is out of range for {layer.name} ({layer.filters} filters)")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    identity = [model.slug, model.weights_sha256, model.preprocess, CACHE_VERSION]
    caches = [_Cache(root, identity, layer.name, size, layer.m) for layer in layers]
    forward, queue, skipped = None, [], []
    try:
        for order, natural in enumerate(tqdm(image_set.sources, desc=f"examples {image_set.name}",
                                             unit="img", disable=not progress, dynamic_ncols=True)):
            try:
                data = natural.path.read_bytes()
            except OSError:
                skipped.append(natural.name)
                continue
            key = hashlib.sha256(data).hexdigest()
            cached = [cache.get(key) for cache in caches]
            if all(entry is not None for entry in cached):
                for layer, entry in zip(layers, cached, strict=True):
                    layer.add(order, entry)
                continue
            image = load_image(io.BytesIO(data), size, model.channels)
            if image is None:
                skipped.append(natural.name)
                continue
            queue.append((order, key, image))
            if len(queue) == BATCH:
                forward = forward or _Forward(model, [layer.name for layer in layers], BATCH)
                _run(forward, queue, layers, caches)
                queue = []
        if queue:
            forward = forward or _Forward(model, [layer.name for layer in layers], min(BATCH, len(queue)))
            _run(forward, queue, layers, caches)
    finally:
        for cache in caches:
            cache.close()
    used = len(image_set.sources) - len(skipped)
    if skipped:
        print(f"filter-atlas: skipped {len(skipped)} unreadable image(s) in {image_set.name}, "
              f"e.g. {skipped[0]}", file=sys.stderr)
    if not used:
        raise AtlasError(f"no readable image in {image_set.name}")
    picks = {layer.name: layer.finish() for layer in layers}
    sides = [side for top, bottom, _ in picks.values() for side in (top, bottom)]
    crops = _crops(image_set, size, model.channels, sides)
    filters = {}
    for layer in layers:
        top, bottom, best = picks[layer.name]
        for index in wanted[layer.name]:
            filters[layer.name, index] = FilterExamples(
                top=layer.patches(top, index, image_set, crops),
                bottom=layer.patches(bottom, index, image_set, crops),
                best_mean=float(best[index]))
    return ExamplesResult(image_set, used, tuple(skipped), filters)


def _run(forward: _Forward, queue: list, layers: list[_Layer], caches: list[_Cache]) -> None:
    """One forward batch: each image's candidates into every layer, and into the cache."""
    outputs = forward(np.stack([image for _, _, image in queue]))
    for layer, cache, (maps, means) in zip(layers, caches, outputs, strict=True):
        rows = []
        for (order, key, _), image_maps, image_means in zip(queue, maps, means, strict=True):
            entry = (*layer.select(image_maps), image_means)
            layer.add(order, entry)
            rows.append((key, entry))
        cache.put(rows)


class _Forward:
    """The compiled forward pass: uint8 images -> per layer, the pre-activation maps and the mean
    activations after ReLU (NumPy)."""

    def __init__(self, model: LoadedModel, names: list[str], batch: int):
        convs = [model.target(name) for name in names]
        trunk = model.trunks(names)
        weights = ([v.value for v in trunk.trainable_variables],
                   [v.value for v in trunk.non_trainable_variables],
                   [targets.weights(conv) for conv in convs])
        preprocess = model.preprocess_fn()

        def run(images01, weights):
            features, _ = trunk.stateless_call(weights[0], weights[1], preprocess(images01))
            features = features if isinstance(features, (list, tuple)) else [features]
            out = []
            for f, conv, target in zip(features, convs, weights[2], strict=True):
                maps = targets.preact(f, conv, target)
                # Filters first: each filter's positions are contiguous for the selection.
                out.append((ops.transpose(maps, (0, 3, 1, 2)), objectives.channel_mean(ops.relu(maps))))
            return out

        # A plain graph on TensorFlow: for a forward pass through deep layers it beats XLA on CPUs.
        self._run = backend.jit(run, xla=False)
        self._weights = weights
        self.batch = batch

    def __call__(self, images: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(B, size, size, 3) uint8, B <= batch -> per layer, maps (B, filters, H, W) and ReLU means
        (B, filters), float32."""
        global MODEL_CALLS
        MODEL_CALLS += 1
        n = len(images)
        padded = np.zeros((self.batch, *images.shape[1:]), dtype="float32")
        padded[:n] = images / 255.0
        outputs = self._run(ops.convert_to_tensor(padded), self._weights)
        return [tuple(np.asarray(ops.convert_to_numpy(a), dtype="float32")[:n] for a in pair)
                for pair in outputs]


class _Layer:
    """One wanted layer: its positions' boxes, per-image selection, and the running top/bottom k."""

    def __init__(self, model: LoadedModel, conv, size: Size, k: int, image_set: ImageSet):
        self.name, self.filters, self.k = conv.name, conv.filters, k
        self.m = 1 if len(image_set.sources) >= LARGE_SET else 3
        self.h, self.w = int(conv.output_shape[0]), int(conv.output_shape[1])
        g = receptive_geometry(model.model, size)[conv.name]
        spans = []
        for axis, count in enumerate((self.h, self.w)):  # rows, then columns
            low = np.floor(g.start[axis] + np.arange(count) * g.jump[axis] - (g.field[axis] - 1) / 2)
            low = low.astype("int64")
            spans.append((np.clip(low, 0, size[axis]), np.clip(low + g.field[axis], 0, size[axis])))
        (y_lo, y_hi), (x_lo, x_hi) = spans
        y, x = np.divmod(np.arange(self.h * self.w), self.w)
        self.boxes = np.stack([x_lo[x], y_lo[y], x_hi[x], y_hi[y]], axis=1)  # (positions, 4)
        self.areas = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        # Positions farther apart than this (in map cells) have disjoint boxes.
        self.reach = min(max(-(-f // j) for f, j in zip(g.field, g.jump, strict=True)), max(self.h, self.w))
        f = self.filters
        self.best = np.zeros(f, dtype="float32")
        # Running top k per filter: sort key (activation; for bottom, its negative), image, position.
        self.running = [(np.full((f, 0), -np.inf, "float32"), np.zeros((f, 0), "int64"),
                         np.zeros((f, 0), "int64")) for _ in range(2)]
        self.pending: list[tuple[int, tuple]] = []

    def select(self, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One image's maps (filters, H, W) -> positions (2, filters, m) int32 (top, bottom; -1
        where fewer exist) and their activations (2, filters, m) float32."""
        values = maps.reshape(self.filters, -1)
        top, bottom = self._distinct(values, largest=True), self._distinct(values, largest=False)
        return np.stack([top[0], bottom[0]]), np.stack([top[1], bottom[1]])

    def _distinct(self, values: np.ndarray, largest: bool) -> tuple[np.ndarray, np.ndarray]:
        """Greedy per filter: the best position, then the best whose box overlaps no chosen box by
        more than half of the smaller box, ... (m of them). Ties: the lower position index."""
        values = values.copy() if self.m > 1 else values
        pick, done = (values.argmax, -np.inf) if largest else (values.argmin, np.inf)
        f = self.filters
        positions = np.full((f, self.m), -1, dtype="int32")
        activations = np.zeros((f, self.m), dtype="float32")
        rows = np.arange(f)
        offsets = np.arange(-self.reach, self.reach + 1)
        for j in range(self.m):
            best = pick(axis=1)
            value = values[rows, best]
            found = np.isfinite(value)
            positions[found, j], activations[found, j] = best[found], value[found]
            if j == self.m - 1 or not found.any():
                break
            by, bx = np.divmod(best, self.w)
            ys = np.clip(by[:, None] + offsets, 0, self.h - 1)
            xs = np.clip(bx[:, None] + offsets, 0, self.w - 1)
            near = (ys[:, :, None] * self.w + xs[:, None, :]).reshape(f, -1)  # (filters, window)
            a, b = self.boxes[best][:, None, :], self.boxes[near]
            inter = (np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
                     * np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None))
            hit = 2 * inter > np.minimum(self.areas[best][:, None], self.areas[near])
            values[np.broadcast_to(rows[:, None], near.shape)[hit], near[hit]] = done
        return positions, activations

    def add(self, order: int, entry: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Count image ``order``'s entry in the running results: positions and activations
        (``select``'s result) and the ReLU means (filters,)."""
        self.best = np.maximum(self.best, entry[2])
        self.pending.append((order, entry))
        if len(self.pending) >= MERGE_EVERY:
            self._merge()

    def _merge(self) -> None:
        """Fold the pending images' candidates into the running top / bottom k of every filter."""
        shape = (self.filters, self.m)
        for side, sign in enumerate((1.0, -1.0)):
            acts, images, positions = self.running[side]
            acts = np.concatenate([acts] + [np.where(pos[side] < 0, -np.inf, sign * act[side])
                                            for _, (pos, act, _) in self.pending], axis=1)
            images = np.concatenate([images] + [np.full(shape, order) for order, _ in self.pending], axis=1)
            positions = np.concatenate([positions] + [pos[side] for _, (pos, _, _) in self.pending], axis=1)
            keep = np.lexsort((positions, images, -acts), axis=1)[:, : self.k]
            self.running[side] = tuple(np.take_along_axis(a, keep, axis=1) for a in (acts, images, positions))
        self.pending = []

    def finish(self) -> tuple[tuple, tuple, np.ndarray]:
        """(top, bottom, best ReLU means): top and bottom are (activations, images, positions),
        each (filters, <= k), best first; an image of -1 marks no candidate."""
        self._merge()
        out = []
        for side, sign in enumerate((1.0, -1.0)):
            acts, images, positions = self.running[side]
            out.append((sign * acts, np.where(np.isfinite(acts), images, -1), positions))
        return out[0], out[1], self.best

    def patches(self, pick: tuple, index: int, image_set: ImageSet,
                crops: dict[int, np.ndarray]) -> tuple[Patch, ...]:
        """Filter ``index``'s patches of one side (``finish``'s top or bottom)."""
        acts, images, positions = (a[index] for a in pick)
        out = []
        for act, order, position in zip(acts, images, positions, strict=True):
            if order < 0 or order not in crops:
                continue
            x0, y0, x1, y1 = (int(v) for v in self.boxes[position])
            out.append(Patch(image_set.sources[order].name, (x0, y0, x1, y1), float(act),
                             crops[order][y0:y1, x0:x1].copy()))
        return tuple(out)


def _crops(image_set: ImageSet, size: Size, channels: int, picks: list[tuple]) -> dict[int, np.ndarray]:
    """The processed image of every set image that some pick uses (each file read once)."""
    orders = sorted({int(o) for _, images, _ in picks for o in np.unique(images) if o >= 0})
    out = {}
    for order in orders:
        image = load_image(image_set.sources[order].path, size, channels)
        if image is not None:
            out[order] = image
    return out


class _Cache:
    """Per-image entries of one (model identity, layer, size) in one SQLite file."""

    def __init__(self, root: Path, identity: list, layer: str, size: Size, m: int):
        ident = hashlib.sha256(repr(identity).encode()).hexdigest()[:16]
        path = root / f"{slug(identity[0])}-{ident}" / f"{slug(layer)}-{size_text(size)}.sqlite"
        self.m = m
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=60)
            with self._db:
                self._db.execute("CREATE TABLE IF NOT EXISTS entries (sha256 TEXT, m INTEGER, "
                                 "filters INTEGER, positions BLOB, activations BLOB, means BLOB, "
                                 "PRIMARY KEY (sha256, m))")
        except (OSError, sqlite3.Error) as exc:
            raise AtlasError(f"cannot open the examples cache {path}: {exc}") from exc

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        row = self._db.execute("SELECT filters, positions, activations, means FROM entries "
                               "WHERE sha256 = ? AND m = ?", (key, self.m)).fetchone()
        if row is None:
            return None
        f, positions, activations, means = row
        shape = (2, f, self.m)
        return (np.frombuffer(positions, "<i4").reshape(shape),
                np.frombuffer(activations, "<f4").reshape(shape), np.frombuffer(means, "<f4"))

    def put(self, rows: list[tuple[str, tuple]]) -> None:
        """Store entries in one transaction (an interrupted run loses only that batch)."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                [(key, self.m, means.shape[0], positions.astype("<i4").tobytes(),
                  activations.astype("<f4").tobytes(), means.astype("<f4").tobytes())
                 for key, (positions, activations, means) in rows])

    def close(self) -> None:
        self._db.close()
