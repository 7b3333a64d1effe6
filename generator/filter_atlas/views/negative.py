"""The negative view: the image that minimizes the filter's mean pre-activation, from the same
start as the channel image; its record holds the pre-activation itself (negative when it worked)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..naming import view_paths
from .base import ImageRecord, Made, Outcome, Target, View, shown, size_fields

if TYPE_CHECKING:
    from ..engine.objectives import Objective


class Negative(View):
    name = "negative"
    record = ImageRecord

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
