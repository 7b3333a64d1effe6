"""The diversity view: ``IMAGES`` images of one filter optimized jointly for
``channel - w * diversity`` (Lucid's Gram-matrix cosine penalty), the penalty gated: it pushes an
image only while the image's activation is at least ``GATE`` of the filter's scale."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..naming import view_paths
from ..numbers import number
from .base import Made, Outcome, Panel, Record, Shot, Target, View, shown, size_fields

IMAGES = 4
# Weight of the diversity term relative to the filter's channel-view activation: the penalty is
# a cosine similarity (0..1, scale-free) while activations run from 1 to 10^4 across VGG16's
# layers, and Adam follows the ratio of the two gradients, so the weight scales with the filter.
WEIGHT = 1.0
# Ungated, the penalty drove 20 of 120 diverse images under a tenth of their channel activation:
# the cosine is scale-free, so an image pushed down gets ever larger pushes and never climbs back.
# Gated at 0.6 of the scale, an image pushed below climbs back alone (benchmarks/diversity_check.py).
GATE = 0.6
FLOOR = 1 / 3  # of the channel image's activation: a diverse image below it is labelled failed

if TYPE_CHECKING:
    from ..engine.objectives import Objective


class ImagesRecord(Record, frozen=True):
    """``n`` images of one filter optimized jointly with a diversity penalty."""

    images: tuple[str, ...]
    thumbnails: tuple[str, ...]
    activations: tuple[float, ...]  # the filter's mean activation (after ReLU) of each image
    similarity: float  # mean pairwise cosine similarity of the images' Gram matrices
    weight: float  # of the diversity term in the optimized objective
    size: int
    steps: int
    seconds: float
    key: str
    sha256: tuple[str, ...]
    run: str
    width: int | None = None  # a non-square image's width (``size`` is then its height)

    def files(self) -> list[tuple[str, str | None]]:
        return [*zip(self.images, self.sha256, strict=True), *((t, None) for t in self.thumbnails)]

    def thumbnailed(self) -> list[tuple[str, str, str | None]]:
        rows = zip(self.images, self.thumbnails, self.sha256, strict=True)
        return [(image, thumb, sha) for image, thumb, sha in rows if thumb != image]


def scale(channel_activation: float | None) -> float:
    """The filter's activation scale for the diversity weight: its channel-view activation to one
    significant figure (stable across CPUs that differ in the last bits), 1 when it has none."""
    if channel_activation is None or channel_activation <= 0:
        return 1.0
    return float(f"{channel_activation:.0e}")


def entry_scale(entry) -> float:
    """``scale`` of a stored filter (a ``FilterEntry`` or None): 1 when dead, failed or absent."""
    return scale(None if entry is None or entry.dead or entry.failed else entry.activation)


class Diversity(View):
    name = "diversity"
    record = ImagesRecord
    images = IMAGES
    scaled = True
    place = 2

    def objective(self, layer: str, index: int, scale: float = 1.0) -> Objective:
        from ..engine.objectives import channel, diversity

        return channel(layer, index) - WEIGHT * scale * diversity(layer, gate=GATE / WEIGHT)

    def made(self, model, target: Target, outcome: Outcome) -> Made:
        from ..api import score
        from ..engine.objectives import channel, diversity

        n = len(outcome.images)
        activations = score(model, channel(target.layer, target.index), outcome.images)
        similarity = float(np.mean(score(model, diversity(target.layer), outcome.images))) * n / (n - 1)
        paths = view_paths(target.identity, self.name, n)
        placed = [shown(p, t, image) for (p, t), image in zip(paths, outcome.images, strict=True)]
        files = {rel: image for _, written in placed for rel, image in written.items()}

        def record(hashes: dict[str, str], run: str) -> ImagesRecord:
            return ImagesRecord(
                images=tuple(p for p, _ in paths), thumbnails=tuple(t for t, _ in placed),
                activations=tuple(round(float(a), 4) for a in activations), similarity=round(similarity, 4),
                weight=WEIGHT * target.scale, steps=outcome.steps, seconds=round(outcome.seconds, 3),
                key=target.key, sha256=tuple(hashes[p] for p, _ in paths), run=run,
                **size_fields(target.size))

        return Made(files, record)

    def panel(self, record: ImagesRecord, layer: str, index: int, channel: float | None = None) -> Panel:
        n = len(record.images)
        shots = tuple(Shot(f"diverse {k + 1}", image, thumb, value,
                           f"Diverse image {k + 1} of {n} for filter {index} of {layer}", "diverse",
                           failed=weak(value, channel))
                      for k, (image, thumb, value) in enumerate(zip(record.images, record.thumbnails,
                                                                    record.activations, strict=True)))
        return Panel(shots, notes=(f"diverse images' mean Gram similarity {number(record.similarity, 2)}",),
                     size=record.size)


def weak(activation: float, channel: float | None) -> str | None:
    """Why a diverse image is no result, where it reaches under ``FLOOR`` of its filter's channel
    image (``channel``; None: no judge), else None."""
    if channel is not None and channel > 0 and activation < FLOOR * channel:
        return f"failed: {number(activation)}, under a third of the channel image's {number(channel)}"
    return None
