"""The manifest's records: typed, immutable, decoded and validated by msgspec.

``manifest.json`` is one ``Manifest``. Unknown keys are refused, a missing key is named, and
numbers keep their JSON types (an int stands for a float, a bool for nothing else). Each view's
record is defined by the view itself (``filter_atlas.views``); ``Views`` has one field per view.
"""

from __future__ import annotations

import msgspec

from ..naming import Identity
from ..spec import MODEL_FILES
from ..views import VIEWS, ImageRecord, Record

SCHEMA = 4  # 4: the neuron view's effective radius replaces its contrast radius
LISTED = 100  # natural sets up to this size are listed image by image in the manifest


class Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of the manifest's records."""


# One optional field per view, in the registry's order: adding a view adds its field.
Views = msgspec.defstruct(
    "Views", [(name, view.record | None, None) for name, view in VIEWS.items()],
    bases=(Strict,), frozen=True, module=__name__)
Views.__doc__ = "Every view of one filter that has been made (see ``filter_atlas.views``)."


def view_records(views: Views) -> dict[str, Record]:
    """The views that have been made, by name, in the registry's order."""
    return {name: record for name in VIEWS if (record := getattr(views, name)) is not None}


def _from_channel(name: str) -> property:
    """A read-only attribute of a ``FilterEntry`` that is its channel view's field ``name``."""
    return property(lambda entry: getattr(entry.views.channel, name), doc=f"``views.channel.{name}``")


class FilterEntry(Strict, frozen=True):
    """One filter of one model and recipe: how it was made, what it reached, and its views.

    Its channel view (``views.channel``) is the filter's own image; the properties below read it.
    """

    model: str  # the model's slug, its key in Manifest.models
    layer: str
    index: int
    recipe: str
    seed: int
    trained: bool | None  # None: weights from a file, not known to be trained
    natural_activation: float | None  # the best mean activation over the natural set
    dead: bool  # the channel view's best activation stays <= 0: no image
    views: Views
    failed: bool = False  # a non-finite value in the render: no image, never fresh
    precision: str | None = None  # "bfloat16" when the model computed in it while optimizing

    @property
    def identity(self) -> Identity:
        """What the manifest holds at most one entry for: model, layer, filter and recipe."""
        return self.model, self.layer, self.index, self.recipe

    @property
    def channel(self) -> ImageRecord:
        return self.views.channel

    # The channel view's fields, read through the entry (the pages and merge read them so).
    image = _from_channel("image")
    thumbnail = _from_channel("thumbnail")
    activation = _from_channel("activation")
    start_activation = _from_channel("start_activation")
    size = _from_channel("size")
    width = _from_channel("width")
    steps = _from_channel("steps")
    seconds = _from_channel("seconds")
    key = _from_channel("key")
    sha256 = _from_channel("sha256")
    run = _from_channel("run")

    def files(self) -> list[tuple[str, str | None]]:
        """(path, sha256 or None) of every file of every view, each once (a small view image is
        its own thumbnail)."""
        found: dict[str, str | None] = {}
        for record in view_records(self.views).values():
            for path, sha in record.files():
                found[path] = found.get(path) or sha
        return list(found.items())

    def runs(self) -> set[str]:
        """The runs its views name."""
        return {r.run_id for r in view_records(self.views).values() if r.run_id}


class ConvLayerRecord(Strict, frozen=True):
    """One conv layer of a model, at the model's input size."""

    name: str
    filters: int
    output_shape: tuple[int | None, ...]
    receptive_field: int  # input pixels (per side) one output position sees


class KernelsRecord(Strict, frozen=True):
    """The weights of a model's first conv layer where its input is the image's three colour
    channels: what can be drawn directly."""

    layer: str
    shape: tuple[int, int, int, int]  # kernel height, width, 3 (R, G, B), filters
    weights: tuple[float, ...]  # in ``shape``'s order (C order), colour channels as R, G, B


class ModelRecord(Strict, frozen=True):
    """What the manifest says about a model: weights, preprocessing and its conv layers."""

    name: str
    weights: str  # 'imagenet', 'random' or 'file:<name>'
    weights_sha256: str
    trained: bool | None  # None: weights from a file, not known to be trained
    preprocess: str
    input_size: int  # the input's height (and width, unless ``input_width`` says otherwise)
    layers: tuple[ConvLayerRecord, ...]
    source: str | None = None  # the model file's path (``spec.shown_path``) or the keras.applications name
    input_width: int | None = None  # for a non-square input
    weights_file_sha256: str | None = None  # sha256 of the file the weights were read from, if any
    kernels: KernelsRecord | None = None  # its first conv layer's, where they act on R, G and B

    @property
    def from_file(self) -> bool:
        """Whether the model was loaded from a saved model file (not ``keras.applications``)."""
        return (self.source or "").endswith(MODEL_FILES)


class RunRecord(Strict, frozen=True):
    """The software and hardware that rendered a set of images."""

    backend: str
    device: str
    versions: dict[str, str]


class ShardLabel(Strict, frozen=True):
    """Marks the output of one shard of a sharded render (``merge`` checks the labels)."""

    index: int
    count: int
    plan: str  # the same for every shard of one render


class NaturalImageRecord(Strict, frozen=True):
    """One image of the natural set: its name, where it comes from and its licence."""

    name: str
    source: str
    licence: str
    label: str | None = None  # its class, where the set is labelled


class NaturalSetRecord(Strict, frozen=True):
    """The natural image set behind the examples and every "vs the best photo" number."""

    name: str
    description: str
    size: int
    count: int  # images used
    skipped: int  # unreadable files
    images: tuple[NaturalImageRecord, ...]  # every image used, for sets under LISTED images
    key: str = ""  # digest of the images' names and contents and the size (``keys.set_key``)
    width: int | None = None  # measured at a non-square size (``size`` is then its height)


class Manifest(Strict, frozen=True):
    """The contents of ``manifest.json``."""

    schema: int
    runs: dict[str, RunRecord]
    filters: tuple[FilterEntry, ...]  # sorted by identity
    models: dict[str, ModelRecord] = {}
    shard: ShardLabel | None = None
    naturals: NaturalSetRecord | None = None
