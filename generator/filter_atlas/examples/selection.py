"""The selection of the examples: per image, each filter's best and worst positions at distinct
places; over the set, each filter's running top and bottom ``k``.

Per image, the best ``m`` and the worst ``m`` positions are kept, greedily: the best position, then
the best whose receptive-field box overlaps no chosen box by more than half of the smaller box...
Over the set, only each filter's ``k`` best and worst candidates are kept, so memory does not grow
with the set.
"""

from __future__ import annotations

import numpy as np

from ..models import ConvLayer, LoadedModel, Size, position_boxes, receptive_geometry
from .cache import Entry

LARGE_SET = 100  # from this many images on, one top and one bottom position per image and filter
MERGE_EVERY = 256  # images whose candidates are gathered before the running top k is updated

# One side of a result: activations, image orders and positions, each (filters, <= k), best first.
Pick = tuple[np.ndarray, np.ndarray, np.ndarray]


class LayerSelection:
    """One wanted layer: its positions' boxes, per-image selection, and the running top/bottom k."""

    def __init__(self, model: LoadedModel, conv: ConvLayer, size: Size, k: int, images: int):
        """Prepare the selection of ``conv``.

        Args:
            model: From ``load_model``.
            conv: The layer (``LoadedModel.resolve_layers``).
            size: The (height, width) the images are measured at.
            k: Candidates kept per filter and side.
            images: How many images the set holds (from ``LARGE_SET`` on, ``m`` is 1, else 3).
        """
        self.name, self.filters, self.k = conv.name, conv.filters, k
        self.m = 1 if images >= LARGE_SET else 3
        self.h, self.w = int(conv.output_shape[0]), int(conv.output_shape[1])
        g = receptive_geometry(model.model, size)[conv.name]
        self.boxes = position_boxes(size, (self.h, self.w), g)  # (positions, 4)
        self.areas = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        # Positions farther apart than this (in map cells) have disjoint boxes.
        self.reach = min(max(-(-f // j) for f, j in zip(g.field, g.jump, strict=True)), max(self.h, self.w))
        f = self.filters
        self.best = np.zeros(f, dtype="float32")
        self.active = np.zeros(f, dtype="int64")  # images on which the filter is positive somewhere
        self.sums = np.zeros((2, f), dtype="float64")  # over the images: ReLU means, and their squares
        # Running top k per filter: sort key (activation; for bottom, its negative), image, position.
        self.running = [(np.full((f, 0), -np.inf, "float32"), np.zeros((f, 0), "int64"),
                         np.zeros((f, 0), "int64")) for _ in range(2)]
        self.pending: list[tuple[int, Entry]] = []

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

    def add(self, order: int, entry: Entry) -> None:
        """Count image ``order``'s entry in the running results: positions and activations
        (``select``'s result) and the ReLU means (filters,)."""
        self.best = np.maximum(self.best, entry[2])
        means = entry[2].astype("float64")
        self.sums += (means, means * means)
        self.active += (entry[0][0, :, 0] >= 0) & (entry[1][0, :, 0] > 0)
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

    def sparsity(self, images: int) -> np.ndarray:
        """Each filter's lifetime sparsity over ``images`` added images (Vinje & Gallant 2000):
        (1 - (sum r / n)^2 / (sum r^2 / n)) / (1 - 1/n), r its ReLU mean per image; 0 when every image
        drives it equally, 1 when one image alone does; 0 for a filter no image drives."""
        if images < 2:
            return np.zeros(self.filters)
        total, squares = self.sums
        ratio = np.divide(total**2 / images, squares, out=np.ones_like(total), where=squares > 0)
        return np.clip((1 - ratio) / (1 - 1 / images), 0.0, 1.0)

    def finish(self) -> tuple[Pick, Pick, np.ndarray]:
        """(top, bottom, best ReLU means): top and bottom are (activations, images, positions),
        each (filters, <= k), best first; an image of -1 marks no candidate. ``active`` then
        holds, per filter, the images on which it is positive at some position."""
        self._merge()
        out = []
        for side, sign in enumerate((1.0, -1.0)):
            acts, images, positions = self.running[side]
            out.append((sign * acts, np.where(np.isfinite(acts), images, -1), positions))
        return out[0], out[1], self.best
