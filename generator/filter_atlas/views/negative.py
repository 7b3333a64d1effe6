"""The negative view: the image that minimizes the filter's mean pre-activation, from the same
start as the channel image; its record holds the pre-activation itself (negative when it worked)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..naming import view_paths
from ..numbers import activation, number
from .base import ImageRecord, Made, Outcome, Panel, Shot, Target, View, no_better, shown, size_fields

if TYPE_CHECKING:
    from ..engine.objectives import Objective


class Negative(View):
    name = "negative"
    record = ImageRecord
    place = 3

    def objective(self, layer: str, index: int, scale: float = 1.0) -> Objective:
        from ..engine.objectives import channel

        return -channel(layer, index, relu=False)

    def made(self, model, target: Target, outcome: Outcome) -> Made:
        ((path, thumb),) = view_paths(target.identity, self.name)
        thumb, files = shown(path, thumb, outcome.images[0])

        def record(hashes: dict[str, str], run: str) -> ImageRecord:
            return ImageRecord(
                image=path, thumbnail=thumb, activation=round(-float(outcome.activations[0]), 4),
                start_activation=round(-float(outcome.start_activations[0]), 4), steps=outcome.steps,
                seconds=round(outcome.seconds, 3), key=target.key, sha256=hashes[path], run=run,
                **size_fields(target.size))

        return Made(files, record)

    def panel(self, record: ImageRecord, layer: str, index: int, channel: float | None = None) -> Panel:
        shot = Shot("negative", record.image, record.thumbnail, record.activation,
                    f"Image that most inhibits filter {index} of {layer}", "negative", "mean pre-activation",
                    "mean pre-act.", failed=no_better(record.activation, record.start_activation, lower=True))
        note = (f"negative: mean pre-activation {activation(record.activation)} "
                f"from {number(record.start_activation)} at the start")
        return Panel((shot,), notes=(note,), size=record.size)
