"""The neuron view: the filter at the centre position only, one untiled pattern the size of its
receptive field; saved cropped to that field plus a margin, with its ``effective_radius``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..imaging import as_saved
from ..naming import view_paths
from ..numbers import number
from .base import ImageRecord, Made, Outcome, Panel, Shot, Target, View, no_better, shown, size_fields

if TYPE_CHECKING:
    from ..engine.objectives import Objective
    from ..engine.recipes import Recipe


class Neuron(View):
    name = "neuron"
    record = ImageRecord
    place = 1

    def fitted(self, recipe: Recipe, field: int | None) -> Recipe:
        """The recipe with each jitter at most a quarter of the receptive field: a larger shift moves
        the centre position off the pattern it is learning from one step to the next, and on
        block1_conv1 (3 px) Lucid's jitter of 8 and 4 px left 3 of 4 neuron images at 0."""
        return recipe if field is None else recipe.jitter_at_most(field // 4)

    def objective(self, layer: str, index: int, scale: float = 1.0) -> Objective:
        from ..engine.objectives import neuron

        return neuron(layer, index)

    def made(self, model, target: Target, outcome: Outcome) -> Made:
        from ..api import gradient
        from ..engine.objectives import neuron
        from ..models.geometry import centre_field, neuron_crop

        box, centre = centre_field(model, target.layer, target.size)
        x0, y0, x1, y1 = crop = neuron_crop(target.size, box)
        image = outcome.images[0]
        ((path, thumb),) = view_paths(target.identity, self.name)
        thumb, files = shown(path, thumb, image[y0:y1, x0:x1])
        # Measured on the saved pixels, set in grey: the crop holds the whole receptive field, so
        # nothing outside it moves the centre position.
        canvas = np.full_like(image, 128)
        canvas[y0:y1, x0:x1] = as_saved(files[path])
        sensitivity = gradient(model, neuron(target.layer, target.index), canvas[None])[0]
        radius = effective_radius(sensitivity, centre)

        def record(hashes: dict[str, str], run: str) -> ImageRecord:
            return ImageRecord(
                image=path, thumbnail=thumb, activation=round(float(outcome.activations[0]), 4),
                start_activation=round(float(outcome.start_activations[0]), 4), steps=outcome.steps,
                seconds=round(outcome.seconds, 3), key=target.key, sha256=hashes[path], run=run,
                crop=crop, effective_radius=None if radius is None else round(radius, 2),
                **size_fields(target.size))

        return Made(files, record)

    def panel(self, record: ImageRecord, layer: str, index: int, channel: float | None = None) -> Panel:
        shot = Shot("neuron", record.image, record.thumbnail, record.activation,
                    f"Image that most excites the centre position of filter {index} of {layer}", "neuron",
                    "activation at the centre position", "centre",
                    failed=no_better(record.activation, record.start_activation))
        notes = () if record.effective_radius is None else \
            (f"neuron: 90% of its gradient within {number(record.effective_radius)} px of the centre",)
        return Panel((shot,), notes=notes, size=record.size)


def effective_radius(gradient: np.ndarray, centre: tuple[float, float], share: float = 0.9) -> float | None:
    """The radius (px) around ``centre`` holding ``share`` of a gradient's magnitude: how far from
    the centre the pixels lie that move the neuron (its effective receptive field).

    Args:
        gradient: (H, W, channels), the neuron's activation with respect to the image's pixels.
        centre: The neuron's centre (x, y) in pixel coordinates (pixel i spans [i, i + 1)).
        share: The share of the summed magnitude (over pixels and channels) the disc holds.

    Returns:
        The smallest distance from ``centre`` to a pixel's centre such that the pixels no farther
        hold ``share``; None for a zero gradient (nothing moves the neuron).
    """
    magnitude = np.abs(gradient).sum(axis=-1)
    total = magnitude.sum()
    if not total > 0:
        return None
    y, x = np.mgrid[: magnitude.shape[0], : magnitude.shape[1]]
    radius = np.hypot(x + 0.5 - centre[0], y + 0.5 - centre[1]).ravel()
    order = np.argsort(radius, kind="stable")
    held = np.cumsum(magnitude.ravel()[order])
    return float(radius[order][min(np.searchsorted(held, share * total), radius.size - 1)])
