"""The examples view: the filter's top and bottom natural-image patches in one natural set (the
receptive field of the position where it fires most, or least, in each chosen image), each shown
as a window onto its image's downscaled copy (``copies``), which every filter that uses the image
shares."""

from __future__ import annotations

import msgspec

from ..naming import copy_path
from ..sizes import Size
from .base import Panel, Record, Row, Shot, Target, View, size_fields

K = 9  # top and bottom natural patches per filter
MIN_WINDOW = 32  # px of the measured image: smaller receptive fields are shown with context


class PatchRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One natural-image patch as the manifest lists it."""

    source: str  # the image's name in the natural set
    box: tuple[int, ...]  # x0, y0, x1, y1 in the source image as the model saw it
    activation: float  # the filter's pre-activation at that position
    copy: str  # the image's copy, relative to the atlas folder
    label: str | None = None  # the image's class, where the set is labelled


class ExamplesRecord(Record, frozen=True):
    """The filter's top and bottom natural-image patches in one natural set."""

    set: str
    size: int
    key: str
    top: tuple[PatchRecord, ...]
    bottom: tuple[PatchRecord, ...]
    width: int | None = None  # a non-square image's width (``size`` is then its height)

    def files(self) -> list[tuple[str, str | None]]:
        return [(copy, None) for copy in dict.fromkeys(p.copy for p in (*self.top, *self.bottom))]


class Examples(View):
    name = "examples"
    record = ExamplesRecord
    images = 0  # measured on the natural set, not optimized

    def found(self, target: Target, found, set_name: str) -> ExamplesRecord:
        """The record of one filter's patches (``found``: its ``FilterExamples``); the copies it
        lists are the runner's to write."""
        rows = {side: tuple(PatchRecord(p.source, tuple(p.box), round(p.activation, 4),
                                        copy_path(set_name, p.source), p.label)
                            for p in getattr(found, side))
                for side in ("top", "bottom")}
        return ExamplesRecord(set=set_name, key=target.key, **rows, **size_fields(target.size))

    def panel(self, record: ExamplesRecord, layer: str, index: int, channel: float | None = None) -> Panel:
        if not record.top:
            return Panel()

        size = (record.size, record.width or record.size)

        def row(side: str, verb: str) -> Row:
            shots = tuple(Shot(p.label or p.source, p.copy, p.copy, p.activation,
                               f"{side.capitalize()} natural patch {k + 1} of filter {index} of {layer}, "
                               f"from {p.source}", "example", "pre-activation at the patch's position",
                               "pre-act.", p.box, window(p.box, size))
                          for k, p in enumerate(getattr(record, side)))
            return Row(side, f"natural patches that most {verb} filter {index}", shots)

        return Panel(rows=(row("top", "excite"), row("bottom", "inhibit")))


def window(box: tuple[int, ...], size: Size, min_side: int = MIN_WINDOW) -> tuple[int, int, int]:
    """The square window (at least ``min_side``) centred on a patch's box, inside its image, as
    whole CSS percentages of the window's side: the copy's width, and its left and top offsets.

    Args:
        box: x0, y0, x1, y1 (exclusive) in the measured image.
        size: (height, width) of the measured image.
        min_side: Smallest side in measured pixels: smaller boxes are shown with context.

    Returns:
        (width, left, top) in percent.
    """
    h, w = size
    x0, y0, x1, y1 = box
    side = min(max(x1 - x0, y1 - y0, min_side), h, w)
    left = min(max((x0 + x1) / 2 - side / 2, 0), w - side)
    top = min(max((y0 + y1) / 2 - side / 2, 0), h - side)
    return round(100 * w / side), round(100 * left / side), round(100 * top / side)
