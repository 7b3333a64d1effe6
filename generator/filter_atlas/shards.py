"""Sharding: split the atlas's batches across machines, and merge the shards' outputs.

The unit of work is a batch (a fixed group of one layer's selected filters), so a shard renders
exactly the batches the unsharded run would, and merging gives byte-identical images.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import AtlasError
from .store import MANIFEST, Store, atomic_write, digest


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
    manifests = []
    for directory in shard_dirs:
        path = directory / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AtlasError(f"cannot read shard manifest {path}: {exc}") from exc
        if "shard" not in manifest:
            raise AtlasError(f"{path} is not a shard's manifest (rendered without --shard)")
        manifests.append((directory, manifest))
    plans = {m["shard"]["plan"] for _, m in manifests}
    if len(plans) != 1:
        raise AtlasError("shards come from different plans (settings differ); render them again")
    count = manifests[0][1]["shard"]["count"]
    seen: dict[int, Path] = {}
    for directory, manifest in manifests:
        index = manifest["shard"]["index"]
        if manifest["shard"]["count"] != count:
            raise AtlasError(f"{directory} is shard {index}/{manifest['shard']['count']}, expected n={count}")
        if index in seen:
            raise AtlasError(f"shard {index}/{count} given twice: {seen[index]} and {directory}")
        seen[index] = directory
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        raise AtlasError(f"missing shard(s) {', '.join(f'{i}/{count}' for i in missing)}")

    claimed: dict[tuple, str] = {}
    for directory, manifest in manifests:
        for entry in manifest["filters"]:
            ident = (entry["model"], entry["layer"], entry["index"], entry["recipe"])
            result = f"{entry['key']}:{entry['sha256']}"
            if claimed.setdefault(ident, result) != result:
                raise AtlasError(f"conflicting results for {'/'.join(map(str, ident))} in {directory}")
            if entry["image"] is not None:
                data = (directory / entry["image"]).read_bytes()
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise AtlasError(f"{directory / entry['image']} does not match its manifest entry")

    store = Store(out)
    total = 0
    for directory, manifest in sorted(manifests, key=lambda item: item[1]["shard"]["index"]):
        for slug_, record in manifest["models"].items():
            store.describe_model(slug_, record)
        entries = []
        for entry in manifest["filters"]:
            for rel in (entry["image"], entry["thumbnail"]):
                if rel is not None:
                    atomic_write(store.inside(rel), (directory / rel).read_bytes())
            entries.append(entry)
        store.adopt(manifest["runs"], entries)
        total += len(entries)
    store.save()
    return total


def plan_digest(keys: list[str]) -> str:
    """Identifies one sharded render: the same for every shard of it."""
    return digest(sorted(keys))[:16]
