"""The ``Store``: an atlas folder of images and its ``manifest.json``, read and written as records.

A filter whose inputs are unchanged (same cache key) and whose files are intact is fresh and is
skipped, so an interrupted run resumes where it stopped. Several processes may render into one
atlas at once: each save merges with what the others saved (``merge.combine``).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from msgspec.structs import replace

from ..errors import AtlasError
from ..imaging import pixels, png_bytes, thumbnail, webp_bytes
from ..keys import digest
from ..naming import Identity
from ..views import NAMES, Record
from .files import atlas_lock, atomic_write, remove_leftovers
from .manifest import MANIFEST, encode, read_manifest
from .merge import ENTRY, combine
from .records import (
    SCHEMA,
    FilterEntry,
    Manifest,
    ModelRecord,
    NaturalSetRecord,
    RunRecord,
    ShardLabel,
    view_records,
)


class Store:
    """The output tree: ``<model>/<layer>/<index>-<recipe>.webp``, the views' files, the manifest."""

    def __init__(self, root: Path):
        self.root = root
        self._check_writable()
        remove_leftovers(root)
        self._seen = self._signature()  # before reading: a manifest saved meanwhile is merged later
        manifest = self._load()
        self.models = dict(manifest.models)
        self.runs = dict(manifest.runs)
        self.shard = manifest.shard
        self.naturals = manifest.naturals
        self._by_id = {e.identity: e for e in manifest.filters}
        # What this store changed since it last saved: kept over what other processes saved meanwhile.
        self._changed: dict[Identity, set[str]] = {}  # identity -> ENTRY and/or view names
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

    @property
    def filters(self) -> list[FilterEntry]:
        """Every entry, sorted by identity."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def entry(self, identity: Identity) -> FilterEntry | None:
        """The stored entry of (model, layer, index, recipe), if any."""
        return self._by_id.get(identity)

    def fresh(self, identity: Identity, key: str) -> bool:
        """True when this filter is stored with the same key, did not fail, and its image is intact."""
        return self.view_fresh(identity, "channel", key)

    def view_fresh(self, identity: Identity, view: str, key: str) -> bool:
        """True when the filter has this view with the same key and its files intact (a failed
        filter's views are never fresh)."""
        entry = self._by_id.get(identity)
        record = getattr(entry.views, view) if entry else None
        if record is None or entry.failed or record.key != key:
            return False
        return all(self._intact(rel, sha) for rel, sha in record.files())

    def listed_files(self) -> set[str]:
        """Every file the manifest lists, relative to the atlas folder."""
        return {rel for entry in self._by_id.values() for rel, _ in entry.files()}

    def _intact(self, rel: str, sha: str | None) -> bool:
        path = self.root / rel
        return path.is_file() and (sha is None or hashlib.sha256(path.read_bytes()).hexdigest() == sha)

    def describe_model(self, slug: str, model: ModelRecord) -> None:
        """Record (or refresh) what the manifest says about a model.

        Raises:
            AtlasError: the atlas already holds a model ``slug`` from another source.
        """
        self._check_source(slug, self.models.get(slug), model)
        self.models[slug] = model
        self._changed_models.add(slug)

    def _check_source(self, slug: str, held: ModelRecord | None, model: ModelRecord) -> None:
        """Refuse ``model`` where ``held``, of the same slug, comes from another known source."""
        if held and held.source and model.source and held.source != model.source:
            raise AtlasError(f"{self.root} already holds model {slug!r} from {held.source}; "
                             "use another --out or rename the file")

    def add_run(self, run: RunRecord) -> str:
        """Record the software and hardware of a run; returns its id (a digest of the record)."""
        run_id = digest({"backend": run.backend, "device": run.device, "versions": run.versions})[:12]
        self.runs[run_id] = run
        return run_id

    def write(self, files: dict[str, bytes]) -> dict[str, str]:
        """Write files (path relative to the atlas -> bytes), each atomically.

        Returns:
            The sha256 of each file, by path.

        Raises:
            AtlasError: the disk refused one; the files this call wrote that the manifest does not
                list are removed again, so nothing unlisted stays.
        """
        written: list[str] = []
        try:
            for rel, data in files.items():
                atomic_write(self.inside(rel), data)
                written.append(rel)
        except AtlasError:
            listed = self.listed_files()
            for rel in written:
                if rel not in listed:
                    (self.root / rel).unlink(missing_ok=True)
            raise
        return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}

    def put_entry(self, entry: FilterEntry) -> None:
        """Record a filter with its channel view (``entry.views.channel``); the other views it
        held are kept."""
        old = self._by_id.get(entry.identity)
        if old is not None:
            entry = replace(entry, views=replace(old.views, channel=entry.views.channel))
        self._by_id[entry.identity] = entry
        self._touch(entry.identity, ENTRY, "channel")

    def put_view(self, identity: Identity, view: str, record: Record) -> None:
        """Record a view of a stored filter (its files already written)."""
        entry = self._by_id.get(identity)
        if entry is None:
            raise AtlasError(f"no filter {'/'.join(map(str, identity))} to add the {view} view to")
        self._by_id[identity] = replace(entry, views=replace(entry.views, **{view: record}))
        self._touch(identity, view)

    def set_naturals(self, record: NaturalSetRecord) -> None:
        """Record the natural image set in use."""
        self.naturals = record
        self._changed_meta.add("naturals")

    def set_natural_activation(self, identity: Identity, value: float | None) -> None:
        """Update a filter's best natural activation (the natural set changed; pixels did not)."""
        entry = self._by_id[identity]
        if entry.natural_activation != value:
            self._by_id[identity] = replace(entry, natural_activation=value)
            self._touch(identity, ENTRY)

    def adopt(self, manifest: Manifest) -> None:
        """Take another manifest's models, runs and entries (their files already in place)."""
        self.models.update(manifest.models)
        self._changed_models.update(manifest.models)
        self.runs.update(manifest.runs)
        if manifest.naturals:
            self.naturals = manifest.naturals
            self._changed_meta.add("naturals")
        for entry in manifest.filters:
            self._by_id[entry.identity] = entry
            self._touch(entry.identity, ENTRY, *NAMES)

    def mark_shard(self, label: ShardLabel) -> None:
        """Label this tree as one shard of a sharded render."""
        self.shard = label
        self._changed_meta.add("shard")

    def inside(self, rel: str) -> Path:
        """``root / rel``, refusing any path that would land outside the root."""
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise AtlasError(f"refusing to write outside {self.root}: {rel}")
        return path

    def repair_thumbnails(self) -> int:
        """Rebuild each thumbnail that is missing, empty or undecodable from its intact image, as
        it was first made: WebP, or PNG where the atlas's channel images are PNG (rendered before
        every view was WebP).

        Returns:
            The number rebuilt. One whose image is damaged too is left alone: the freshness checks
            render that filter again.
        """
        rebuilt = 0
        for entry in self._by_id.values():
            for record in view_records(entry.views).values():
                for image, thumb, sha in record.thumbnailed():
                    encode = png_bytes if thumb.endswith(".png") else webp_bytes
                    if pixels(self.root / thumb) is not None:
                        continue
                    if (found := pixels(self.root / image, sha)) is not None:
                        atomic_write(self.inside(thumb), encode(thumbnail(found)))
                        rebuilt += 1
        return rebuilt

    def _touch(self, identity: Identity, *parts: str) -> None:
        self._changed.setdefault(identity, set()).update(parts)

    def save(self) -> None:
        """Write ``manifest.json`` under the atlas's lock, merged with what other processes saved.

        Entries are sorted by identity, and only the runs they name are kept.
        """
        with atlas_lock(self.root):
            if self._signature() not in (None, self._seen):  # another process saved since
                self._merge(self._load())
            filters = tuple(self.filters)
            used = {r for e in filters for r in e.runs()}
            manifest = Manifest(SCHEMA, {k: v for k, v in self.runs.items() if k in used}, filters,
                                self.models, self.shard, self.naturals)
            atomic_write(self.root / MANIFEST, encode(manifest))
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
            self._by_id[entry.identity] = combine(ours, entry, parts) if ours and parts else entry
