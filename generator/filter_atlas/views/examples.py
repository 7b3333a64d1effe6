"""The examples view: the filter's top and bottom natural-image patches in one natural set (the
receptive field of the position where it fires most, or least, in each chosen image)."""

from __future__ import annotations

import msgspec

from ..naming import view_paths
from .base import Made, Panel, Record, Row, Shot, Target, View, size_fields

K = 9  # top and bottom natural patches per filter


class PatchRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One natural-image patch as the manifest lists it."""

    source: str  # the image's name in the natural set
    box: tuple[int, ...]  # x0, y0, x1, y1 in the source image as the model saw it
    activation: float  # the filter's pre-activation at that position
    image: str
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
        return [(p.image, None) for p in (*self.top, *self.bottom)]


class Examples(View):
    name = "examples"
    record = ExamplesRecord
    images = 0  # measured on the natural set, not optimized

    def found(self, target: Target, found, set_name: str) -> Made:
        """The files and record of one filter's patches (``found``: its ``FilterExamples``)."""
        rows, files = {}, {}
        for side in ("top", "bottom"):
            patches = getattr(found, side)
            paths = view_paths(target.identity, f"examples-{side}", len(patches))
            rows[side] = tuple(PatchRecord(p.source, tuple(p.box), round(p.activation, 4), path, p.label)
                               for p, (path, _) in zip(patches, paths, strict=True))
            files.update({path: p.image for p, (path, _) in zip(patches, paths, strict=True)})

        def record(hashes: dict[str, str], run: str) -> ExamplesRecord:
            return ExamplesRecord(set=set_name, key=target.key, **rows, **size_fields(target.size))

        return Made(files, record)

    def panel(self, record: ExamplesRecord, layer: str, index: int) -> Panel:
        if not record.top:
            return Panel()

        def row(side: str, verb: str) -> Row:
            shots = tuple(Shot(p.label or p.source, p.image, p.image, p.activation,
                               f"{side.capitalize()} natural patch {k + 1} of filter {index} of {layer}, "
                               f"from {p.source}", "example", "pre-activation at the patch's position",
                               "pre-act.", p.box)
                          for k, p in enumerate(getattr(record, side)))
            return Row(side, f"natural patches that most {verb} filter {index}", shots)

        return Panel(rows=(row("top", "excite"), row("bottom", "inhibit")))
