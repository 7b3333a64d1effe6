"""Sharding: split the atlas's batches across machines, and merge the shards' outputs.

The unit of work is a batch (a fixed group of one layer's selected filters), so a shard renders
exactly the batches the unsharded run would, and merging gives byte-identical images.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import AtlasError
from .imaging import pixels
from .keys import digest
from .store import (
    LOCK,
    MANIFEST,
    FilterEntry,
    Manifest,
    ShardLabel,
    Store,
    atlas_lock,
    atomic_write,
    read_manifest,
)
from .store.files import swap_folder

Shards = list[tuple[Path, ShardLabel, Manifest]]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise AtlasError(f"--shard must look like 2/4, got {text!r}") from None
        if not 1 <= index <= count:
            raise AtlasError(f"--shard {text}: need 1 <= i <= n")
        return cls(index, count)


def partition(costs: list[float], count: int) -> list[int]:
    """Assign each job (by cost) to one of ``count`` shards, balancing the total cost.

    Longest job first onto the least-loaded shard (ties: the lower job and shard number), so
    the result depends only on the costs.
    """
    loads = [0.0] * count
    owner = [0] * len(costs)
    for job in sorted(range(len(costs)), key=lambda j: (-costs[j], j)):
        shard = min(range(count), key=lambda s: (loads[s], s))
        owner[job] = shard
        loads[shard] += costs[job]
    return owner


def merge(shard_dirs: list[Path], out: Path, replace: bool = False) -> tuple[int, int]:
    """Merge shard output trees into ``out``, all or nothing.

    Every shard must come from the same plan, each of 1..n exactly once, every file its manifest
    lists must be there (and match its sha256), and no filter may be claimed with two different
    results. The merged atlas (with whatever ``out`` held) is built in a folder beside ``out``,
    then renamed into place, so ``out`` is never left half-written. A filter that ``out`` holds
    rendered with other settings (another key) is replaced only with ``replace``.

    Args:
        shard_dirs: the shards' output folders.
        out: the merged atlas's folder; not a shard's folder nor inside one.
        replace: replace the filters ``out`` holds with other settings.

    Returns:
        (filters merged, filters of ``out`` replaced that had other settings).

    Raises:
        AtlasError: in one line, naming the shard, file or folder at fault.
    """
    shards = [(directory, *_read_shard(directory)) for directory in shard_dirs]
    _check_labels(shards)
    held = _check_out(out, shard_dirs)
    claimed: dict[tuple[str, str, int, str], tuple[str, str | None]] = {}  # identity -> (key, sha256)
    for directory, _, manifest in shards:
        for entry in manifest.filters:
            result = (entry.key, entry.sha256)
            if claimed.setdefault(entry.identity, result) != result:
                which = "/".join(map(str, entry.identity))
                raise AtlasError(f"conflicting results for {which} in {directory}")
            _check_files(directory, entry)
    others = [(identity, held[identity]) for identity in claimed
              if identity in held and held[identity].key != claimed[identity][0]]
    if others and not replace:
        (_, layer, index, recipe), entry = others[0]
        raise AtlasError(f"{out} holds {len(others)} of these filters rendered with other settings "
                         f"(e.g. {layer} #{index}, {recipe}, {_settings(entry)}); pass --replace to "
                         "replace them, or merge into another folder")
    try:
        _stage_and_swap(shards, out.resolve())
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise AtlasError(f"cannot merge into {out}: {exc.strerror or exc}{where}") from exc
    return len(claimed), len(others)


def _settings(entry: FilterEntry) -> str:
    """A stored filter's settings, as a refusal names them."""
    size = f"{entry.size}x{entry.width}" if entry.width else str(entry.size)
    return f"{size} px, {entry.steps} steps, seed {entry.seed}"


def _check_labels(shards: Shards) -> None:
    """Refuse shards of different plans or counts, a shard given twice, or one missing."""
    if len({label.plan for _, label, _ in shards}) != 1:
        raise AtlasError("shards come from different plans (settings differ); render them again")
    count = shards[0][1].count
    seen: dict[int, Path] = {}
    for directory, label, _ in shards:
        if label.count != count:
            raise AtlasError(f"{directory} is shard {label.index}/{label.count}, expected n={count}")
        if label.index in seen:
            raise AtlasError(f"shard {label.index}/{count} given twice: {seen[label.index]} and {directory}")
        seen[label.index] = directory
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        raise AtlasError(f"missing shard(s) {', '.join(f'{i}/{count}' for i in missing)}")


def _check_out(out: Path, shard_dirs: list[Path]) -> dict[tuple[str, str, int, str], FilterEntry]:
    """Refuse an ``out`` that is a file, lies in a shard, or holds a manifest that cannot be read;
    return the entries it holds, by identity."""
    for directory in shard_dirs:
        if out.resolve().is_relative_to(directory.resolve()):
            raise AtlasError(f"--out {out} is inside shard {directory}: merge into another folder")
    if out.exists() and not out.is_dir():
        raise AtlasError(f"--out {out} is a file, not a directory")
    if not (out / MANIFEST).exists():
        return {}
    try:
        return {entry.identity: entry for entry in read_manifest(out).filters}
    except AtlasError as exc:
        raise AtlasError(f"{exc}; move it away") from exc


def _check_files(directory: Path, entry: FilterEntry) -> None:
    """Refuse a shard's filter whose files are missing, empty, undecodable (thumbnails: no sha256
    is recorded for them) or do not match their sha256."""
    for rel, sha in entry.files():
        path = directory / rel
        if not path.is_file() or not path.stat().st_size:
            raise AtlasError(f"{path} is missing or empty, yet {directory / MANIFEST} lists it")
        if sha is not None and hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            raise AtlasError(f"{path} does not match its manifest entry")
        if sha is None and pixels(path) is None:
            raise AtlasError(f"{path} is damaged (not a readable image), yet {directory / MANIFEST} lists it")


def _stage_and_swap(shards: Shards, out: Path) -> None:
    """Build the merged atlas in a new folder beside ``out`` (starting from ``out``'s files, hard
    linked), then put it in ``out``'s place; the folder is removed if anything fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.merge-"))
    stage.chmod(0o755)  # mkdtemp makes 0700; an atlas is served and shared (a copied out keeps its own)
    try:
        with atlas_lock(out) if out.is_dir() else contextlib.nullcontext():
            if out.is_dir():
                shutil.copytree(out, stage, ignore=shutil.ignore_patterns(LOCK, "*.tmp"),
                                copy_function=_link, dirs_exist_ok=True)
            store = Store(stage)
            for directory, _, manifest in sorted(shards, key=lambda shard: shard[1].index):
                for entry in manifest.filters:
                    for rel, _ in entry.files():
                        atomic_write(store.inside(rel), (directory / rel).read_bytes())
                store.adopt(manifest)
            store.save()
            swap_folder(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _link(source: str, target: str) -> None:
    """Hard-link ``source`` at ``target`` (files are only ever replaced, never changed in place),
    or copy it where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _read_shard(directory: Path) -> tuple[ShardLabel, Manifest]:
    """A shard's label and manifest; AtlasError if it has none or is not a shard's."""
    try:
        manifest = read_manifest(directory)
    except AtlasError as exc:
        raise AtlasError(f"cannot read shard manifest: {exc}") from exc
    if manifest.shard is None:
        raise AtlasError(f"{directory / MANIFEST} is not a shard's manifest (rendered without --shard)")
    return manifest.shard, manifest


def plan_digest(keys: list[str]) -> str:
    """Identifies one sharded render: the same for every shard of it."""
    return digest(sorted(keys))[:16]
