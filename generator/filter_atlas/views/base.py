"""What every view of a filter is: a name, a record in the manifest, and how its images are made.

A view that the engine optimizes (``images`` > 0) gives an objective per filter; the runner
renders a batch of them and hands each filter's ``Outcome`` to ``View.made``, which says which
files to write and how to record them. ``examples`` is measured on natural images instead.

Importing the views loads no Keras (the command line picks the backend first): what needs the
model or the engine is imported inside the methods that use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import msgspec
import numpy as np

from ..imaging import SMALL_VIEW, thumbnail
from ..naming import Identity
from ..numbers import number
from ..sizes import Size

if TYPE_CHECKING:
    from ..engine.objectives import Objective
    from ..engine.recipes import Recipe


class Record(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A view's entry in the manifest."""

    def files(self) -> list[tuple[str, str | None]]:
        """(path, sha256 or None) of every file the record lists."""
        raise NotImplementedError

    def thumbnailed(self) -> list[tuple[str, str, str | None]]:
        """(image, thumbnail, the image's sha256) of every image with a thumbnail of its own."""
        return []

    @property
    def run_id(self) -> str | None:
        """The run that rendered it (a key of the manifest's ``runs``); None if not rendered."""
        return getattr(self, "run", None)


class ImageRecord(Record, frozen=True):
    """A view rendered as one image: ``channel``, ``negative`` or ``neuron``.

    ``activation`` is the view's own measure on the saved pixels: the filter's mean activation
    after ReLU (channel), its mean pre-activation (negative), its activation at the centre
    position (neuron). ``crop`` (neuron) is the box [x0, y0, x1, y1] of the rendered image that
    was saved: the receptive field around the centre with a margin.
    """

    image: str | None  # None for a dead or failed channel
    thumbnail: str | None
    activation: float | None  # None: the render gave a non-finite value (failed)
    start_activation: float | None
    size: int
    steps: int
    seconds: float
    key: str
    sha256: str | None
    run: str
    crop: tuple[int, ...] | None = None
    effective_radius: float | None = None  # neuron: px around the centre holding 90% of its gradient
    width: int | None = None  # a non-square image's width (``size`` is then its height)

    def files(self) -> list[tuple[str, str | None]]:
        return [(p, h) for p, h in ((self.image, self.sha256), (self.thumbnail, None)) if p]

    def thumbnailed(self) -> list[tuple[str, str, str | None]]:
        if self.image and self.thumbnail and self.thumbnail != self.image:
            return [(self.image, self.thumbnail, self.sha256)]
        return []


@dataclass(frozen=True)
class Target:
    """One filter as a view renders it."""

    identity: Identity
    size: Size
    key: str
    scale: float | None = 1.0  # the filter's diversity scale (``diversity.scale``); None: not known yet

    @property
    def layer(self) -> str:
        return self.identity[1]

    @property
    def index(self) -> int:
        return self.identity[2]


@dataclass(frozen=True)
class Outcome:
    """One filter's images from one render, in the engine's terms."""

    images: np.ndarray  # (n, H, W, channels) uint8
    activations: np.ndarray  # (n,) each image's own objective
    start_activations: np.ndarray
    seconds: float  # per filter
    steps: int

    @property
    def failed(self) -> bool:
        """Whether any value is not finite (a NaN or inf in the model reached this filter)."""
        return not (np.isfinite(self.activations).all() and np.isfinite(self.start_activations).all())


@dataclass(frozen=True)
class Made:
    """What a view made of one filter: files to write, and its record once they are written."""

    files: dict[str, np.ndarray]
    record: Callable[[dict[str, str], str], Record]  # (sha256 by path, run id) -> the record


def size_fields(size: Size, height: str = "size", width: str = "width") -> dict[str, int]:
    """A size as record fields: the height, and the width only when it differs."""
    return {height: size[0], **({width: size[1]} if size[1] != size[0] else {})}


def shown(image_rel: str, thumb_rel: str, image: np.ndarray) -> tuple[str, dict[str, np.ndarray]]:
    """The thumbnail path to record for a view image and the files to write: a separate thumbnail
    only for an image larger than ``SMALL_VIEW``, else the image serves as its own."""
    if max(image.shape[:2]) <= SMALL_VIEW:
        return image_rel, {image_rel: image}
    return thumb_rel, {image_rel: image, thumb_rel: thumbnail(image)}


@dataclass(frozen=True)
class Shot:
    """One image of a unit panel: a view's image or a natural patch."""

    label: str  # what it is: "neuron", "negative", "diverse 2", a photo's name
    image: str  # paths as the manifest lists them (the pages make them URLs)
    thumbnail: str
    value: float | None  # the number shown under it; None: failed
    alt: str
    kind: str  # its CSS class: fa-<kind>
    measure: str = "mean activation"  # what ``value`` is, in words
    unit: str = "mean"  # the same, short, shown before it
    box: tuple[int, ...] | None = None  # natural patches: where in the photo
    window: tuple[int, int, int] | None = None  # natural patches: shown as a window onto ``image``,
    # the photo's copy (``copies.window``: width, left, top in percent)
    failed: str | None = None  # why the image is not a result (it ended no better than its start)


def no_better(value: float, start: float, lower: bool = False) -> str | None:
    """Why an optimized image failed, where it ended no better than where it started (``lower``:
    the view minimizes), else None."""
    if (value >= start) if lower else (value <= start):
        way = "lower" if lower else "higher"
        return f"failed: {number(value)}, no {way} than {number(start)} at the start"
    return None


@dataclass(frozen=True)
class Row:
    """A labelled row of shots below the unit panel's first row (the top natural patches)."""

    label: str
    description: str  # for screen readers
    shots: tuple[Shot, ...]


@dataclass(frozen=True)
class Panel:
    """What one view shows in its filter's unit panel (the Distill appendix's row)."""

    shots: tuple[Shot, ...] = ()  # in the first row, after the channel image
    rows: tuple[Row, ...] = ()
    notes: tuple[str, ...] = ()  # clauses of the panel's note, with their numbers
    size: int | None = None  # the size its images were optimized at


class View:
    """One of a filter's views. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    record: ClassVar[type[Record]]
    place: ClassVar[int] = 0  # where its shots sit in the unit panel's first row, left to right
    images: ClassVar[int] = 1  # images optimized per filter; 0: not optimized (measured instead)
    scaled: ClassVar[bool] = False  # its objective is weighted by the filter's channel activation

    def objective(self, layer: str, index: int, scale: float = 1.0) -> Objective:
        """The objective it optimizes for filter ``index`` of ``layer``."""
        raise NotImplementedError

    def fitted(self, recipe: Recipe, field: int | None) -> Recipe:
        """The recipe this view renders with on a layer whose receptive field is ``field`` px (None:
        unknown); most views render with the recipe as it is."""
        return recipe

    def key_part(self, layer: str, index: int, scale: float = 1.0) -> dict | None:
        """What the view adds to the filter's cache key (None: nothing, the channel view)."""
        return {"name": self.name, "objective": self.objective(layer, index, scale).key(), "n": self.images}

    def made(self, model, target: Target, outcome: Outcome) -> Made:
        """The files and record of one filter's outcome (``model``: the ``LoadedModel``)."""
        raise NotImplementedError

    def panel(self, record: Record, layer: str, index: int, channel: float | None = None) -> Panel | None:
        """What it shows in the unit panel of filter ``index`` of ``layer`` (None: nothing; the
        channel image is the panel's own, whose activation ``channel`` is, where it has one)."""
        return None
