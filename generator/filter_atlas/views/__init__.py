"""The views of one filter, as in the Distill appendix's rows, found through one registry.

- ``channel``: the filter's mean activation, maximized (the atlas's image).
- ``negative``: the filter's mean pre-activation, minimized (``-channel(relu=False)``).
- ``neuron``: the filter's activation at the centre position only.
- ``diversity``: 4 images optimized jointly for ``channel - w * diversity``.
- ``examples``: the top and bottom natural-image patches.

To add a view: a module here with a ``View`` subclass (its objective, key, record, files and
panel), and one line in ``VIEWS``; the manifest, plan, runner and pages find it here.
"""

from __future__ import annotations

from .base import ImageRecord, Made, Outcome, Panel, Record, Row, Shot, Target, View
from .channel import Channel
from .diversity import Diversity, ImagesRecord
from .examples import Examples, ExamplesRecord, PatchRecord
from .negative import Negative
from .neuron import Neuron

# Every view, in the order the pages show them and the runner renders them (channel first).
VIEWS: dict[str, View] = {view.name: view for view in
                          (Channel(), Negative(), Neuron(), Diversity(), Examples())}
NAMES = tuple(VIEWS)
OPTIMIZED = tuple(name for name, view in VIEWS.items() if view.images and name != "channel")

__all__ = ["NAMES", "OPTIMIZED", "VIEWS", "ExamplesRecord", "ImageRecord", "ImagesRecord", "Made", "Outcome",
           "Panel", "PatchRecord", "Record", "Row", "Shot", "Target", "View"]
