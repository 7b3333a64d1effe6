"""The neuron view: the filter at the centre position only, one untiled pattern the size of its
receptive field; saved cropped to that field plus a margin, with ``radius90``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..naming import view_paths
from ..numbers import number
from .base import ImageRecord, Made, Outcome, Panel, Shot, Target, View, no_better, shown, size_fields

Box = tuple[int, int, int, int]

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
        from ..models.geometry import centre_field, neuron_crop

        box, centre = centre_field(model, target.layer, target.size)
        crop = neuron_crop(target.size, box)
        image = outcome.images[0]
        spread = round(radius90(image, centre), 2)
        ((path, thumb),) = view_paths(target.identity, self.name)
        thumb, files = shown(path, thumb, image[crop[1] : crop[3], crop[0] : crop[2]])

        def record(hashes: dict[str, str], run: str) -> ImageRecord:
            return ImageRecord(
                image=path, thumbnail=thumb, activation=round(float(outcome.activations[0]), 4),
                start_activation=round(float(outcome.start_activations[0]), 4), steps=outcome.steps,
                seconds=round(outcome.seconds, 3), key=target.key, sha256=hashes[path], run=run,
                crop=crop, radius90=spread, **size_fields(target.size))

        return Made(files, record)

    def panel(self, record: ImageRecord, layer: str, index: int, channel: float | None = None) -> Panel:
        shot = Shot("neuron", record.image, record.thumbnail, record.activation,
                    f"Image that most excites the centre position of filter {index} of {layer}", "neuron",
                    "activation at the centre position", "centre",
                    failed=no_better(record.activation, record.start_activation))
        notes = () if record.radius90 is None else \
            (f"neuron: 90% of its contrast within {number(record.radius90)} px of the centre",)
        return Panel((shot,), notes=notes, size=record.size)


def radius90(image: np.ndarray, centre: tuple[float, float]) -> float:
    """The radius (px) around ``centre`` (x, y) holding 90% of the image's deviation from grey.

    Deviation is |pixel - 127.5| - 0.5 (so 127 and 128 both count as grey) summed over channels;
    0 for a flat grey image.

    Args:
        image: (H, W, 3) uint8.
        centre: The neuron's centre in pixel coordinates.

    Returns:
        The smallest radius whose disc holds 90% of the total deviation.
    """
    deviation = (np.abs(image.astype("float64") - 127.5) - 0.5).sum(axis=-1)
    total = deviation.sum()
    if total <= 0:
        return 0.0
    y, x = np.mgrid[: image.shape[0], : image.shape[1]]
    radius = np.hypot(x + 0.5 - centre[0], y + 0.5 - centre[1]).ravel()
    order = np.argsort(radius, kind="stable")
    held = np.cumsum(deviation.ravel()[order])
    return float(radius[order][np.searchsorted(held, 0.9 * total)])
