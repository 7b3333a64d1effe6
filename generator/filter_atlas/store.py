"""The store: PNG images, thumbnails and ``manifest.json``, written atomically.

The manifest is one typed record (``Manifest``), read and validated by ``read_manifest`` alone and
written by ``Store`` alone. A filter whose inputs are unchanged (same cache key) and whose image
is intact is skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import io
import json
import os
import re
import tempfile
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import numpy as np
from PIL import Image

from .errors import AtlasError
from .spec import MODEL_FILES

MANIFEST = "manifest.json"
LOCK = ".manifest.lock"  # exists only while a process writes the manifest
SCHEMA = 1
THUMB_SIDE = 112
SMALL_VIEW = 168  # view images up to this side are their own thumbnails (a 112 px copy saves little)


_SAFE = re.compile(r"[a-z0-9_-]{1,64}")  # lower case: no two names meet on a case-blind disk


def slug(name: str) -> str:
    """A single path component for a model, layer or recipe name, distinct for distinct names.

    Args:
        name: any name.

    Returns:
        ``name`` itself when it is a safe component (lower-case letters, digits, ``_`` and ``-``,
        up to 64), else its cleaned form plus the first 8 hex digits of its sha256
        (``a b c`` -> ``a_b_c-<hash>``), so that ``a b c`` and ``a_b_c`` never share a folder.
    """
    if _SAFE.fullmatch(name):
        return name
    cleaned = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_")[:48] or "x"
    return f"{cleaned}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def digest(data: Any) -> str:
    """sha256 of a JSON-able value, keys sorted."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def pil_image(image: np.ndarray) -> Image.Image:
    """A uint8 (H, W, C) array as a Pillow image: one channel is grayscale, three are RGB."""
    return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)


def png_bytes(image: np.ndarray) -> bytes:
    """Deterministic PNG encoding (no metadata, no timestamps); one channel is saved as grayscale."""
    buffer = io.BytesIO()
    pil_image(image).save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def webp_bytes(image: np.ndarray, method: int = 6) -> bytes:
    """The extra views' encoding: lossy WebP (quality 90; by default the slowest, smallest method),
    about a fifth of a PNG's bytes; deterministic for one libwebp version."""
    buffer = io.BytesIO()
    pil_image(image).save(buffer, format="WEBP", quality=90, method=method)
    return buffer.getvalue()


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """``image`` resized (Lanczos) so that its longer side is ``side``; the aspect is kept."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (side, side) if h == w else (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(pil_image(image).resize(size, Image.Resampling.LANCZOS))


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    Args:
        path: the file to (re)place; its folder is made if need be.
        data: the file's new contents.

    Raises:
        AtlasError: naming the path and the reason when the disk refuses (no space, a file where
            a folder should be, no permission); the temporary file is removed.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AtlasError(f"cannot write {path}: cannot make folder {exc.filename}: {exc.strerror}") from exc
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise AtlasError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o644)  # mkstemp makes 0600; these files are meant to be served and shared
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise AtlasError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


@contextlib.contextmanager
def manifest_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive lock of the atlas in ``root`` for the block (``flock`` on ``root/LOCK``).

    The holder removes the lock file on release, so no lock file stays in the atlas; a process
    that wakes up holding a removed file tries again with the current one.

    Args:
        root: the atlas folder (it must exist).
    """
    path = root / LOCK
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise AtlasError(f"cannot lock {path}: {exc.strerror}") from exc
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _is_file_at(fd, path):
            break
        os.close(fd)
    try:
        yield
    finally:
        if _is_file_at(fd, path):
            path.unlink()
        os.close(fd)  # releases the lock


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file now at ``path``."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (found.st_dev, found.st_ino)


def _pixels(path: Path, sha: str | None = None) -> np.ndarray | None:
    """The pixels of the image file ``path`` (as ``png_bytes`` got them); None when it is missing,
    empty, undecodable or its sha256 is not ``sha``."""
    try:
        data = path.read_bytes()
        if sha and hashlib.sha256(data).hexdigest() != sha:
            return None
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image)
    except Exception:  # OSError for the file; PIL signals bad data with many exception types
        return None


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
    width: int | None = None  # a non-square image's width (``size`` is then its height)

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
    width: int | None = None  # a non-square image's width (``size`` is then its height)

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
    width: int | None = None  # a non-square image's width (``size`` is then its height)

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
    width: int | None = None  # measured at a non-square size (``size`` is then its height)


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
    trained: bool | None  # None: weights from a file, not known to be trained
    seconds: float
    key: str  # cache key: digest of everything that determines the image
    sha256: str | None  # of the image file; None for a dead filter
    run: str  # a key of Manifest.runs
    views: Views | None = None  # absent from manifests before the views
    width: int | None = None  # a non-square image's width (``size`` is then its height)
    precision: str | None = None  # "bfloat16" when the model computed in it while optimizing; None: float32

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
    trained: bool | None  # None: weights from a file, not known to be trained
    preprocess: str
    input_size: int  # the input's height (and width, unless ``input_width`` says otherwise)
    layers: tuple[ConvLayerRecord, ...]
    source: str | None = None  # the model file's path (``spec.shown_path``) or the keras.applications name
    input_width: int | None = None  # for a non-square input
    weights_file_sha256: str | None = None  # sha256 of the file the weights were read from, if any

    @property
    def from_file(self) -> bool:
        """Whether the model was loaded from a saved model file (not ``keras.applications``)."""
        return (self.source or "").endswith(MODEL_FILES)


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
        self._seen = self._signature()  # before reading: a manifest saved meanwhile is merged later
        manifest = self._load()
        self.models = dict(manifest.models)
        self.runs = dict(manifest.runs)
        self.shard = manifest.shard
        self.naturals = manifest.naturals
        self._by_id = {e.identity: e for e in manifest.filters}
        # What this store changed since it last saved: kept over what other processes saved meanwhile.
        self._changed: dict[tuple[str, str, int, str], set[str]] = {}  # identity -> "entry" or views
        self._changed_models: set[str] = set()
        self._changed_meta: set[str] = set()  # "naturals", "shard"

    def _check_writable(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise AtlasError(f"--out {self.root} is a file, not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            raise AtlasError(f"output directory {self.root} is not writable: {exc.strerror}") from exc

    def _signature(self) -> tuple[int, int, int] | None:
        """Which ``manifest.json`` is on disk (inode, mtime, size; every save makes a new file)."""
        try:
            found = (self.root / MANIFEST).stat()
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_mtime_ns, found.st_size

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
        """Record (or refresh) what the manifest says about a model.

        Args:
            slug_: the model's key in the manifest.
            record: a ``ModelRecord`` as a dict.

        Raises:
            AtlasError: the atlas already holds a model ``slug_`` from another source.
        """
        model = parse(ModelRecord, record, f"models.{slug_}")
        self._check_source(slug_, self.models.get(slug_), model)
        self.models[slug_] = model
        self._changed_models.add(slug_)

    def _check_source(self, slug_: str, held: ModelRecord | None, model: ModelRecord) -> None:
        """Refuse ``model`` where ``held``, of the same slug, comes from another known source."""
        if held and held.source and model.source and held.source != model.source:
            raise AtlasError(f"{self.root} already holds model {slug_!r} from {held.source}; "
                             "use another --out or rename the file")

    def _touch(self, identity: tuple[str, str, int, str], *parts: str) -> None:
        """Note that this store changed ``parts`` ("entry" or a view's name) of a filter."""
        self._changed.setdefault(identity, set()).update(parts)

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
            self._touch(record.identity, "entry", "channel")
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
        self._touch(identity, view)

    def set_naturals(self, record: dict[str, Any]) -> None:
        """Record the natural image set in use (a ``NaturalSetRecord`` as a dict)."""
        self.naturals = parse(NaturalSetRecord, record, "naturals")
        self._changed_meta.add("naturals")

    def set_natural_activation(self, identity: tuple[str, str, int, str], value: float) -> None:
        """Update a filter's best natural activation (the natural set changed; pixels did not)."""
        entry = self._by_id[identity]
        if entry.natural_activation != value:
            self._by_id[identity] = replace(entry, natural_activation=value)
            self._touch(identity, "entry", "channel")

    def adopt(self, manifest: Manifest) -> None:
        """Take another manifest's models, runs and entries (their images already in place)."""
        self.models.update(manifest.models)
        self._changed_models.update(manifest.models)
        self.runs.update(manifest.runs)
        if manifest.naturals:
            self.naturals = manifest.naturals
            self._changed_meta.add("naturals")
        for entry in manifest.filters:
            self._by_id[entry.identity] = entry
            self._touch(entry.identity, "entry", *VIEW_NAMES)

    def mark_shard(self, info: dict[str, Any]) -> None:
        """Label this tree as one shard of a sharded render (a ``ShardLabel`` as a dict)."""
        self.shard = parse(ShardLabel, info, "shard")
        self._changed_meta.add("shard")

    def inside(self, rel: str) -> Path:
        """``root / rel``, refusing any path that would land outside the root."""
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise AtlasError(f"refusing to write outside {self.root}: {rel}")
        return path

    def repair_thumbnails(self) -> int:
        """Rebuild each thumbnail that is missing, empty or undecodable from its intact image, as
        it was first made: ``thumbnail()``, then PNG (channel view) or WebP (the other views).

        Returns:
            The number of thumbnails rebuilt. One whose image is damaged too is left alone: the
            freshness checks render that filter again.
        """
        rebuilt = 0
        for image, thumb, sha, encode in self._thumbnailed():
            if thumb != image and _pixels(self.root / thumb) is None:
                pixels = _pixels(self.root / image, sha)
                if pixels is not None:
                    atomic_write(self.inside(thumb), encode(thumbnail(pixels)))
                    rebuilt += 1
        return rebuilt

    def _thumbnailed(self) -> Iterator[tuple[str, str, str | None, Callable[[np.ndarray], bytes]]]:
        """(image, thumbnail, the image's sha256, encoding) of every listed image with a thumbnail."""
        for entry in self._by_id.values():
            if entry.image and entry.thumbnail:
                yield entry.image, entry.thumbnail, entry.sha256, png_bytes
            views = entry.views or Views()
            for view in (views.negative, views.neuron):
                if view and view.image and view.thumbnail:
                    yield view.image, view.thumbnail, view.sha256, webp_bytes
            if views.diversity:
                rows = zip(views.diversity.images, views.diversity.thumbnails, views.diversity.sha256,
                           strict=False)
                yield from ((image, thumb, sha, webp_bytes) for image, thumb, sha in rows)

    def save(self) -> None:
        """Write ``manifest.json`` under the atlas's lock, merged with what other processes saved.

        The manifest on disk is read again first: its entries, views, models and runs are kept,
        except those this store changed, where this store's win. Entries are sorted by identity,
        and only the runs they name are kept.
        """
        with manifest_lock(self.root):
            if self._signature() not in (None, self._seen):  # another process saved since
                self._merge(self._load())
            self._write()
            self._seen = self._signature()
        self._changed.clear()
        self._changed_models.clear()
        self._changed_meta.clear()

    def _merge(self, theirs: Manifest) -> None:
        """Adopt what the manifest on disk (``theirs``) holds, except what this store changed."""
        for name, model in theirs.models.items():
            if name in self._changed_models:
                self._check_source(name, model, self.models[name])
            else:
                self.models[name] = model
        self.runs = {**theirs.runs, **self.runs}
        if "naturals" not in self._changed_meta:
            self.naturals = theirs.naturals or self.naturals
        if "shard" not in self._changed_meta:
            self.shard = theirs.shard or self.shard
        for entry in theirs.filters:
            ours, parts = self._by_id.get(entry.identity), self._changed.get(entry.identity)
            self._by_id[entry.identity] = _combine(ours, entry, parts) if ours and parts else entry

    def _write(self) -> None:
        """Write this store's manifest, atomically."""
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
        _drop_unset(data)
        atomic_write(self.root / MANIFEST, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


# Left out of the manifest when None, so older manifests and the default settings read and write as before.
OPTIONAL = frozenset({"source", "width", "input_width", "weights_file_sha256", "precision"})


def _drop_unset(data: Any) -> None:
    """Remove the ``OPTIONAL`` fields that are None from a manifest's dicts, at any depth, so a
    square image or a model of unknown source writes the manifest it always did."""
    if isinstance(data, dict):
        for name in [k for k in OPTIONAL if k in data and data[k] is None]:
            del data[name]
        for value in data.values():
            _drop_unset(value)
    elif isinstance(data, list | tuple):
        for value in data:
            _drop_unset(value)


def _combine(ours: FilterEntry, theirs: FilterEntry, parts: set[str]) -> FilterEntry:
    """One filter as two processes saved it: the ``parts`` this one changed ("entry", or a view's
    name) from ``ours``, the rest from ``theirs`` (from ``ours`` where ``theirs`` lacks a view)."""
    mine, other = ours.views or Views(), theirs.views or Views()
    views = {name: getattr(mine, name) if name in parts else getattr(other, name) or getattr(mine, name)
             for name in VIEW_NAMES}
    base = ours if "entry" in parts else theirs
    return replace(base, views=Views(**views) if any(views.values()) else None)
