"""Sharding: split the atlas's batches across machines, and merge the shards' outputs.

The unit of work is a batch (a fixed group of one layer's selected filters), so a shard renders
exactly the batches the unsharded run would, and merging gives byte-identical images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import AtlasError
from .store import MANIFEST, FilterEntry, Manifest, ShardLabel, Store, atomic_write, digest, read_manifest


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


def merge(shard_dirs: list[Path], out: Path) -> int:
    """Merge shard output trees into ``out``; returns the number of filters merged.

    Every shard must come from the same plan, each of 1..n exactly once, and no filter may be
    claimed with two different results.
    """
    shards = [(directory, *_read_shard(directory)) for directory in shard_dirs]
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

    claimed: dict[tuple[str, str, int, str], str] = {}
    for directory, _, manifest in shards:
        for entry in manifest.filters:
            result = f"{entry.key}:{entry.sha256}"
            if claimed.setdefault(entry.identity, result) != result:
                which = "/".join(map(str, entry.identity))
                raise AtlasError(f"conflicting results for {which} in {directory}")
            for rel, sha in _files(entry):
                if sha is not None and hashlib.sha256((directory / rel).read_bytes()).hexdigest() != sha:
                    raise AtlasError(f"{directory / rel} does not match its manifest entry")

    store = Store(out)
    for directory, _, manifest in sorted(shards, key=lambda shard: shard[1].index):
        for entry in manifest.filters:
            for rel, _ in _files(entry):
                atomic_write(store.inside(rel), (directory / rel).read_bytes())
        store.adopt(manifest)
    store.save()
    return sum(len(manifest.filters) for _, _, manifest in shards)


def _files(entry: FilterEntry) -> list[tuple[str, str | None]]:
    """(path, sha256 or None) of every file of a filter: its image, thumbnail and views."""
    own = [(p, h) for p, h in ((entry.image, entry.sha256), (entry.thumbnail, None)) if p is not None]
    extra = [f for f in entry.views.files() if f[0] not in {p for p, _ in own}] if entry.views else []
    return own + extra


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
