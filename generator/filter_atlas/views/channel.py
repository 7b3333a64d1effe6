"""The channel view: the image that maximizes the filter's mean activation (the gallery tile).

Its record is the filter's own: its key is the filter's key, and a filter enters the manifest
when its channel view is rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..imaging import thumbnail
from ..naming import entry_paths
from .base import ImageRecord, Made, Outcome, Target, View, size_fields

if TYPE_CHECKING:
    from ..engine.objectives import Objective


class Channel(View):
    name = "channel"
    record = ImageRecord

    def objective(self, layer: str, index: int, scale: float = 1.0) -> Objective:
        from ..engine.objectives import channel

        return channel(layer, index)

    def key_part(self, layer: str, index: int, scale: float = 1.0) -> dict | None:
        return None

    def made(self, model, target: Target, outcome: Outcome) -> Made:
        image, activation = outcome.images[0], float(outcome.activations[0])
        dead = activation <= 0.0
        path, thumb = entry_paths(target.identity)
        files = {} if dead else {path: image, thumb: thumbnail(image)}

        def record(hashes: dict[str, str], run: str) -> ImageRecord:
            return ImageRecord(
                image=None if dead else path, thumbnail=None if dead else thumb,
                activation=round(activation, 4),
                start_activation=round(float(outcome.start_activations[0]), 4),
                steps=outcome.steps, seconds=round(outcome.seconds, 3), key=target.key,
                sha256=hashes.get(path), run=run, **size_fields(target.size))

        return Made(files, record)
