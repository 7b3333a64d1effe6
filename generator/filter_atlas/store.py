"""The store: PNG images, thumbnails and ``manifest.json``, written atomically.

The manifest is one typed record (``Manifest``), read and validated by ``read_manifest`` alone and
written by ``Store`` alone. A filter whose inputs are unchanged (same cache key) and whose image
is intact is skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import re
import tempfile
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import numpy as np
from PIL import Image

from .errors import AtlasError

MANIFEST = "manifest.json"
SCHEMA = 1
THUMB_SIDE = 112
SMALL_VIEW = 168  # view images up to this side are their own thumbnails (a 112 px copy saves little)


def slug(name: str) -> str:
    """A safe single path component for a model or layer name."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    if not cleaned:
        return "x" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return cleaned


def digest(data: Any) -> str:
    """sha256 of a JSON-able value, keys sorted."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def png_bytes(image: np.ndarray) -> bytes:
    """Deterministic PNG encoding (no metadata, no timestamps)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def webp_bytes(image: np.ndarray) -> bytes:
    """The extra views' encoding: lossy WebP (quality 90, slowest method), about a fifth of a PNG's
    bytes; deterministic for one libwebp version."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="WEBP", quality=90, method=6)
    return buffer.getvalue()


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.LANCZOS))


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; these files are meant to be served and shared
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ImageView:
    """A view rendered as one image: ``channel``, ``negative`` or ``neuron``.

    ``activation`` is the view's own measure on the saved pixels: the filter's mean activation
    after ReLU (channel), its mean pre-activation (negative), its activation at the centre
    position (neuron). ``crop`` (neuron) is the box [x0, y0, x1, y1] of the rendered image that
    was saved: the receptive field around the centre with a margin.
    """

    image: str | None  # None for a dead channel
    thumbnail: str | None
    activation: float
    start_activation: float
    size: int
    steps: int
    seconds: float
    key: str
    sha256: str | None
    run: str
    crop: tuple[int, ...] | None = None
    radius90: float | None = None  # neuron: radius (px) holding 90% of the deviation from grey

    def files(self) -> list[tuple[str, str | None]]:
        """(path, sha256 or None) of every file the view lists."""
        return [(p, h) for p, h in ((self.image, self.sha256), (self.thumbnail, None)) if p]


@dataclass(frozen=True)
class ImagesView:
    """The diversity view: ``n`` images of one filter optimized jointly with a diversity penalty."""

    images: tuple[str, ...]
    thumbnails: tuple[str, ...]
    activations: tuple[float, ...]  # the filter's mean activation (after ReLU) of each image
    similarity: float  # mean pairwise cosine similarity of the images' Gram matrices
    weight: float  # of the diversity term in the optimized objective
    size: int
    steps: int
    seconds: float
    key: str
    sha256: tuple[str, ...]
    run: str

    def files(self) -> list[tuple[str, str | None]]:
        return [*zip(self.images, self.sha256, strict=True), *((t, None) for t in self.thumbnails)]


@dataclass(frozen=True)
class ExamplePatch:
    """One natural-image patch: the receptive field of one position of the filter's map."""

    source: str  # the image's name in the natural set
    box: tuple[int, ...]  # x0, y0, x1, y1 in the source image as the model saw it (size x size)
    activation: float  # the filter's pre-activation at that position
    image: str


@dataclass(frozen=True)
class ExamplesView:
    """The filter's top and bottom natural-image patches in one natural set."""

    set: str
    size: int
    key: str
    top: tuple[ExamplePatch, ...]
    bottom: tuple[ExamplePatch, ...]

    def files(self) -> list[tuple[str, str | None]]:
        return [(p.image, None) for p in (*self.top, *self.bottom)]


@dataclass(frozen=True)
class Views:
    """Every view of one filter that has been made (see ``views.VIEWS``)."""

    channel: ImageView | None = None
    negative: ImageView | None = None
    neuron: ImageView | None = None
    diversity: ImagesView | None = None
    examples: ExamplesView | None = None

    def files(self) -> list[tuple[str, str | None]]:
        """(path, sha256 or None) of every file of every view, each once (a small view image is
        its own thumbnail)."""
        found: dict[str, str | None] = {}
        for name in VIEW_NAMES:
            if (v := getattr(self, name)) is not None:
                for path, sha in v.files():
                    found[path] = found.get(path) or sha
        return list(found.items())

    def runs(self) -> set[str]:
        return {v.run for name in VIEW_NAMES if (v := getattr(self, name)) is not None and hasattr(v, "run")}


VIEW_RECORDS: dict[str, type] = {"channel": ImageView, "negative": ImageView, "neuron": ImageView,
                                  "diversity": ImagesView, "examples": ExamplesView}
VIEW_NAMES = tuple(VIEW_RECORDS)


@dataclass(frozen=True)
class NaturalImageRecord:
    """One image of the natural set: its name, where it comes from and its licence."""

    name: str
    source: str
    licence: str


LISTED = 100  # natural sets up to this size are listed image by image in the manifest


@dataclass(frozen=True)
class NaturalSetRecord:
    """The natural image set behind the examples and every "vs the best photo" number."""

    name: str
    description: str
    size: int
    count: int  # images used
    skipped: int  # unreadable files
    images: tuple[NaturalImageRecord, ...]  # every image used, for sets under LISTED images
    key: str = ""  # digest of the images' names and contents and the size (atlas._set_key)


@dataclass(frozen=True)
class FilterEntry:
    """One rendered filter: where its images are, how it was made, and what it reached."""

    model: str  # the model's slug, its key in Manifest.models
    layer: str
    index: int
    recipe: str
    image: str | None  # paths relative to the manifest; None for a dead filter
    thumbnail: str | None
    steps: int
    size: int
    seed: int
    start_activation: float
    activation: float
    natural_activation: float  # the best over the natural photos
    dead: bool
    trained: bool
    seconds: float
    key: str  # cache key: digest of everything that determines the image
    sha256: str | None  # of the image file; None for a dead filter
    run: str  # a key of Manifest.runs
    views: Views | None = None  # absent from manifests before the views

    @property
    def identity(self) -> tuple[str, str, int, str]:
        """What the manifest holds at most one entry for: model, layer, filter and recipe."""
        return self.model, self.layer, self.index, self.recipe


@dataclass(frozen=True)
class ConvLayerRecord:
    """One conv layer of a model, at the model's input size."""

    name: str
    filters: int
    output_shape: tuple[int | None, ...]
    receptive_field: int  # input pixels (per side) one output position sees


@dataclass(frozen=True)
class ModelRecord:
    """What the manifest says about a model: weights, preprocessing and its conv layers."""

    name: str
    weights: str  # 'imagenet', 'random' or 'file:<name>'
    weights_sha256: str
    trained: bool
    preprocess: str
    input_size: int
    layers: tuple[ConvLayerRecord, ...]


@dataclass(frozen=True)
class RunRecord:
    """The software and hardware that rendered a set of images."""

    backend: str
    device: str
    versions: dict[str, str]


@dataclass(frozen=True)
class ShardLabel:
    """Marks the output of one shard of a sharded render (``merge`` checks the labels)."""

    index: int
    count: int
    plan: str  # the same for every shard of one render


@dataclass(frozen=True)
class Manifest:
    """The contents of ``manifest.json``."""

    schema: int
    runs: dict[str, RunRecord]
    filters: tuple[FilterEntry, ...]  # sorted by identity
    models: dict[str, ModelRecord] = field(default_factory=dict)  # absent from the earliest manifests
    shard: ShardLabel | None = None
    naturals: NaturalSetRecord | None = None


def read_manifest(source: Path) -> Manifest:
    """The manifest in the atlas directory ``source``, or in the file ``source``.

    Raises AtlasError, in one line naming the file, when it is missing, unreadable, of another
    schema, or has a key missing, unknown or of the wrong type.
    """
    path = source / MANIFEST if source.is_dir() else source
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AtlasError(f"no manifest at {path}: run 'filter-atlas render' first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AtlasError(f"{path} is not a readable manifest ({exc})") from exc
    if isinstance(data, dict) and data.get("schema") != SCHEMA:
        raise AtlasError(f"{path} has an unknown schema ({data.get('schema')!r}, expected {SCHEMA})")
    try:
        return parse(Manifest, data)
    except ValueError as exc:
        raise AtlasError(f"{path}: malformed manifest: {exc}") from None


Record = TypeVar("Record")


def parse(cls: type[Record], data: Any, where: str = "") -> Record:
    """The record ``cls`` (a dataclass above) from JSON-like ``data``, checked key by key.

    Raises ValueError naming the key (``filters[3].index``) that is missing, unknown or mistyped.
    A field with a default may be absent; int stands for float, as in JSON.
    """
    name = where or "the top level"
    if not isinstance(data, dict):
        raise ValueError(f"{name} must be an object, not {_kind(data)}")
    hints, required = _fields(cls)
    if unknown := sorted(set(data) - set(hints)):
        raise ValueError(f"{name} has unknown key(s) {', '.join(map(repr, unknown))}")
    if missing := [key for key in required if key not in data]:
        raise ValueError(f"{name} lacks key(s) {', '.join(map(repr, missing))}")
    return cls(**{key: _value(hints[key], value, f"{where}.{key}" if where else key)
                  for key, value in data.items()})


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], list[str]]:
    """(type of each field, the fields without a default) of a record class."""
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return get_type_hints(cls), required


def _value(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against ``hint``: a scalar, ``X | None``, ``tuple[X, ...]``, ``dict[str, X]``
    or a record; JSON lists become tuples."""
    if isinstance(hint, types.UnionType):  # X | None
        inner = next(arg for arg in get_args(hint) if arg is not type(None))
        return None if value is None else _value(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, where)
    origin, args = get_origin(hint), get_args(hint)
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(_value(args[0], item, f"{where}[{n}]") for n, item in enumerate(value))
    if origin is dict and isinstance(value, dict):
        return {key: _value(args[1], item, f"{where}.{key}") for key, item in value.items()}
    if origin is None and _is_scalar(hint, value):
        return value
    raise ValueError(f"{where} must be {_KINDS[origin or hint]}, not {_kind(value)}")


_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null",
          list: "a list", tuple: "a list", dict: "an object"}


def _kind(value: Any) -> str:
    """How an error message names the JSON type of ``value``."""
    return _KINDS.get(type(value), type(value).__name__)


def _is_scalar(hint: type, value: Any) -> bool:
    """Whether ``value`` is a ``hint``: true and false are bools only, and an int is also a float."""
    if hint is bool or isinstance(value, bool):
        return hint is bool and isinstance(value, bool)
    return isinstance(value, int | float if hint is float else hint)


class Store:
    """The output tree: ``<model>/<layer>/<index>-<recipe>.png``, thumbnails, and the manifest."""

    def __init__(self, root: Path):
        self.root = root
        self._check_writable()
        manifest = self._load()
        self.models = dict(manifest.models)
        self.runs = dict(manifest.runs)
        self.shard = manifest.shard
        self.naturals = manifest.naturals
        self._by_id = {e.identity: e for e in manifest.filters}

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            raise AtlasError(f"output directory {self.root} is not writable: {exc.strerror}") from exc

    def _load(self) -> Manifest:
        if not (self.root / MANIFEST).exists():
            return Manifest(SCHEMA, runs={}, filters=())
        try:
            return read_manifest(self.root)
        except AtlasError as exc:
            raise AtlasError(f"{exc}; move it away") from exc

    def paths(self, model: str, layer: str, index: int, recipe: str) -> tuple[str, str]:
        """Image and thumbnail paths, relative to the manifest; stable per model/layer/filter."""
        base = f"{slug(model)}/{slug(layer)}"
        name = f"{index:04d}-{slug(recipe)}.png"
        return f"{base}/{name}", f"{base}/thumbs/{name}"

    def fresh(self, model: str, layer: str, index: int, recipe: str, key: str) -> bool:
        """True when this filter is stored with the same key and its image is intact."""
        entry = self._by_id.get((model, layer, index, recipe))
        if entry is None or entry.key != key:
            return False
        if entry.dead:
            return True
        image = self.root / entry.image
        return image.is_file() and hashlib.sha256(image.read_bytes()).hexdigest() == entry.sha256

    def describe_model(self, slug_: str, record: dict[str, Any]) -> None:
        """Record (or refresh) what the manifest says about a model (a ``ModelRecord`` as a dict)."""
        self.models[slug_] = parse(ModelRecord, record, f"models.{slug_}")

    def put(self, run: dict[str, Any], entries: list[tuple[dict[str, Any], np.ndarray]]) -> None:
        """Write each live filter's image and thumbnail, then the manifest that lists them.

        ``run`` is a ``RunRecord`` and each entry a ``FilterEntry`` without run and sha256, as dicts.
        """
        run_id = digest(run)[:12]
        self.runs[run_id] = parse(RunRecord, run, f"runs.{run_id}")
        for entry, image in entries:
            if entry["dead"]:
                entry = dict(entry, image=None, thumbnail=None, sha256=None)
            else:
                data = png_bytes(image)
                for rel, blob in ((entry["image"], data), (entry["thumbnail"], png_bytes(thumbnail(image)))):
                    atomic_write(self.inside(rel), blob)
                entry = dict(entry, sha256=hashlib.sha256(data).hexdigest())
            record = parse(FilterEntry, dict(entry, run=run_id), "entry")
            old = self._by_id.get(record.identity)
            channel = ImageView(record.image, record.thumbnail, record.activation, record.start_activation,
                                record.size, record.steps, record.seconds, record.key, record.sha256, run_id)
            views = replace(old.views if old and old.views else Views(), channel=channel)
            self._by_id[record.identity] = replace(record, views=views)
        self.save()

    def entry(self, identity: tuple[str, str, int, str]) -> FilterEntry | None:
        """The stored entry of (model, layer, index, recipe), if any."""
        return self._by_id.get(identity)

    def view_paths(self, identity: tuple[str, str, int, str], view: str, count: int | None = None
                   ) -> list[tuple[str, str]]:
        """(image, thumbnail) paths of a view's images: one, or ``count`` numbered ones."""
        model, layer, index, recipe = identity
        base = f"{slug(model)}/{slug(layer)}"
        stems = [f"{index:04d}-{slug(recipe)}-{view}"] if count is None else \
            [f"{index:04d}-{slug(recipe)}-{view}-{k}" for k in range(count)]
        return [(f"{base}/{stem}.webp", f"{base}/thumbs/{stem}.webp") for stem in stems]

    def with_thumbnail(self, image_rel: str, thumb_rel: str, image: np.ndarray
                       ) -> tuple[str, dict[str, np.ndarray]]:
        """The thumbnail path to record for a view image, and the files to write: a separate
        thumbnail only for an image larger than ``SMALL_VIEW``, else the image serves as its own."""
        if max(image.shape[:2]) <= SMALL_VIEW:
            return image_rel, {image_rel: image}
        return thumb_rel, {image_rel: image, thumb_rel: thumbnail(image)}

    def view_fresh(self, identity: tuple[str, str, int, str], view: str, key: str) -> bool:
        """True when the filter has this view with the same key and its files intact."""
        entry = self._by_id.get(identity)
        record = getattr(entry.views, view) if entry and entry.views else None
        if record is None or record.key != key:
            return False
        for rel, sha in record.files():
            path = self.root / rel
            if not path.is_file() or (sha and hashlib.sha256(path.read_bytes()).hexdigest() != sha):
                return False
        return True

    def put_view(self, identity: tuple[str, str, int, str], view: str, record: dict[str, Any],
                 files: dict[str, np.ndarray], run: dict[str, Any] | None = None) -> None:
        """Write a view's files (path -> uint8 image, WebP) and record the view on its filter.

        ``record`` is the view's record (``ImageView``, ``ImagesView`` or ``ExamplesView``) as a
        dict; ``sha256`` fields are filled from the written images, ``run`` from ``run``.
        """
        entry = self._by_id.get(identity)
        if entry is None:
            raise AtlasError(f"no filter {'/'.join(map(str, identity))} to add the {view} view to")
        hashes = {}
        for rel, image in files.items():
            data = webp_bytes(image)
            atomic_write(self.inside(rel), data)
            hashes[rel] = hashlib.sha256(data).hexdigest()
        if run is not None:
            run_id = digest(run)[:12]
            self.runs[run_id] = parse(RunRecord, run, f"runs.{run_id}")
            record = dict(record, run=run_id)
        if "images" in record:
            record = dict(record, sha256=[hashes[rel] for rel in record["images"]])
        elif "image" in record:
            record = dict(record, sha256=hashes.get(record["image"]))
        parsed = parse(VIEW_RECORDS[view], record, f"views.{view}")
        self._by_id[identity] = replace(entry, views=replace(entry.views or Views(), **{view: parsed}))

    def set_naturals(self, record: dict[str, Any]) -> None:
        """Record the natural image set in use (a ``NaturalSetRecord`` as a dict)."""
        self.naturals = parse(NaturalSetRecord, record, "naturals")

    def set_natural_activation(self, identity: tuple[str, str, int, str], value: float) -> None:
        """Update a filter's best natural activation (the natural set changed; pixels did not)."""
        entry = self._by_id[identity]
        if entry.natural_activation != value:
            self._by_id[identity] = replace(entry, natural_activation=value)

    def adopt(self, manifest: Manifest) -> None:
        """Take another manifest's models, runs and entries (their images already in place)."""
        self.models.update(manifest.models)
        self.runs.update(manifest.runs)
        self.naturals = manifest.naturals or self.naturals
        self._by_id.update((e.identity, e) for e in manifest.filters)

    def mark_shard(self, info: dict[str, Any]) -> None:
        """Label this tree as one shard of a sharded render (a ``ShardLabel`` as a dict)."""
        self.shard = parse(ShardLabel, info, "shard")

    def inside(self, rel: str) -> Path:
        """``root / rel``, refusing any path that would land outside the root."""
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise AtlasError(f"refusing to write outside {self.root}: {rel}")
        return path

    def save(self) -> None:
        """Write ``manifest.json``: entries sorted by identity, only the runs they name."""
        filters = tuple(self._by_id[k] for k in sorted(self._by_id))
        used = {e.run for e in filters} | {r for e in filters if e.views for r in e.views.runs()}
        manifest = Manifest(SCHEMA, {k: v for k, v in self.runs.items() if k in used}, filters, self.models,
                            self.shard, self.naturals)
        data = {k: v for k, v in dataclasses.asdict(manifest).items()
                if k not in ("shard", "naturals") or v is not None}
        for entry in data["filters"]:
            if entry["views"] is None:
                del entry["views"]
            else:
                entry["views"] = {k: v for k, v in entry["views"].items() if v is not None}
        atomic_write(self.root / MANIFEST, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
