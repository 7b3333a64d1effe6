"""The file work of ``gpu_atlas.py``, with no Keras or JAX: the weights in parts, the atlas's compact
form (one small WebP per filter), and the chunks that carry a render back from the GPU machine.

Weights: the file is byte-shuffled (every element's first byte, then every second byte, ...: the
exponent bytes of float32 values sit together and compress) and zlib-compressed, then cut into
parts that travel in separate calls; each part names its place, the whole file's length and
SHA-256, and its own payload's SHA-256, so a damaged, missing or foreign part is refused by name.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import tarfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MiB = 1 << 20
WIDTH = 4  # bytes per element that the shuffle regroups (float32)
PART_FORMAT = "filter-atlas-weights/1"
CHUNKS = "atlas.tgz"  # chunk names: atlas.tgz.00, atlas.tgz.01, ...
POOL_FROM = 64  # images from which compact encodes in worker processes
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")  # what the device tool brings back from $OUT


class PackError(Exception):
    """A refusal, in one line."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shuffle(data: bytes, width: int = WIDTH) -> bytes:
    """Byte ``k`` of every ``width``-byte element, for k = 0..width-1; a ragged tail stays last."""
    n = len(data) // width * width
    return np.frombuffer(data, np.uint8, n).reshape(-1, width).T.tobytes() + data[n:]


def unshuffle(data: bytes, width: int = WIDTH) -> bytes:
    """The inverse of ``shuffle``."""
    n = len(data) // width * width
    return np.frombuffer(data, np.uint8, n).reshape(width, -1).T.tobytes() + data[n:]


def pack_weights(src: Path, outdir: Path, parts: int) -> list[Path]:
    """Shuffle and compress ``src`` and cut it into ``parts`` files, each in a folder of its own
    (``outdir/part1/NAME.part1of2``, ...), so that each can be carried on its own."""
    data = src.read_bytes()
    blob = zlib.compress(shuffle(data), 9)
    cut = math.ceil(len(blob) / parts)
    written = []
    for i in range(parts):
        payload = blob[i * cut:(i + 1) * cut]
        header = {"format": PART_FORMAT, "name": src.name, "part": i + 1, "parts": parts, "size": len(data),
                  "sha256": sha256(data), "width": WIDTH, "payload_sha256": sha256(payload)}
        path = outdir / f"part{i + 1}" / f"{src.name}.part{i + 1}of{parts}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
        written.append(path)
    return written


def _read_part(path: Path) -> tuple[dict, bytes]:
    try:
        head, payload = path.read_bytes().split(b"\n", 1)
        header = json.loads(head)
    except (OSError, ValueError) as exc:
        raise PackError(f"{path} is not a weights part ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != PART_FORMAT:
        raise PackError(f"{path} is not a weights part ({PART_FORMAT})")
    if sha256(payload) != header["payload_sha256"]:
        raise PackError(f"{path} is damaged: its payload does not match its SHA-256")
    return header, payload


def unpack_weights(parts: list[Path], dest: Path, expected_sha256: str) -> int:
    """Restore the file that ``parts`` were cut from into ``dest`` (written whole, then renamed)
    after checking every part and the restored file's SHA-256; returns its size in bytes."""
    found = [_read_part(p) for p in parts]
    if not found:
        raise PackError("no weights part given")
    first = found[0][0]
    if first["sha256"] != expected_sha256.lower():
        raise PackError(f"{parts[0]} is a part of a file with SHA-256 {first['sha256']}, "
                        f"not {expected_sha256}")
    by_index: dict[int, bytes] = {}
    for path, (header, payload) in zip(parts, found, strict=True):
        if any(header[k] != first[k] for k in ("name", "parts", "size", "sha256", "width")):
            raise PackError(f"{path} belongs to another file or cut than {parts[0]}")
        if header["part"] in by_index:
            raise PackError(f"part {header['part']}/{header['parts']} is given twice")
        by_index[header["part"]] = payload
    count = first["parts"]
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise PackError(f"missing weights part(s) {', '.join(missing)} (a part that an earlier call "
                        "stored under /tmp is gone once that machine was given back)")
    try:
        data = unshuffle(zlib.decompress(b"".join(by_index[i] for i in sorted(by_index))), first["width"])
    except zlib.error as exc:
        raise PackError(f"the weights parts do not decompress ({exc})") from None
    if len(data) != first["size"] or sha256(data) != first["sha256"]:
        raise PackError(f"the restored {first['name']} does not match its SHA-256 {first['sha256']}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return len(data)


@dataclass
class Compacted:
    """What ``compact`` did: channel images converted, their bytes, and files copied as they were."""

    converted: int = 0
    webp_bytes: int = 0
    copied: int = 0


def _webp(job: tuple[str, str | None, int, int]) -> bytes:
    """One channel image (checked against its SHA-256) as a WebP of at most ``side`` px."""
    from filter_atlas.imaging import pil_image, pixels, thumbnail

    path, sha, side, quality = job
    image = pixels(Path(path), sha)
    if image is None:
        raise PackError(f"{path} is missing or does not match its manifest entry")
    if path.endswith(".webp") and max(image.shape[:2]) <= side:
        return Path(path).read_bytes()  # small enough as it is: not encoded twice
    if max(image.shape[:2]) > side:
        image = thumbnail(image, side)
    buffer = io.BytesIO()
    pil_image(image).save(buffer, format="WEBP", quality=quality, method=6)
    return buffer.getvalue()


def compact(src: Path, dst: Path, side: int = 128, quality: int = 90, workers: int | None = None
            ) -> Compacted:
    """Copy the atlas (or shard) ``src`` to ``dst`` in the compact form: each channel image with a
    thumbnail of its own (a WebP, or a PNG in atlases from before every view was WebP) becomes one
    WebP of at most ``side`` px (``<index>-<recipe>-channel.webp``, named as the other views' images
    are) that is its own thumbnail, and its manifest record names it with its SHA-256; the other
    files the manifest lists are copied as they are (files it does not list stay behind). The
    record's ``size`` stays the size the image was optimized at (its cache key's). ``dst`` may be
    ``src``: then the replaced files are removed once the manifest no longer lists them."""
    from filter_atlas.store import MANIFEST, atlas_lock, atomic_write, encode, read_manifest
    from msgspec.structs import replace

    manifest = read_manifest(src)
    jobs, entries, done = [], [], Compacted()
    for entry in manifest.filters:
        channel = entry.views.channel
        if channel is not None and channel.image and channel.thumbnail != channel.image:
            jobs.append((entry, channel))
    with ProcessPoolExecutor(workers) if len(jobs) > POOL_FROM else _Serial() as pool:
        work = [(str(src / c.image), c.sha256, side, quality) for _, c in jobs]
        encoded = pool.map(_webp, work, chunksize=32)
        converted = {id(e): (c, data) for (e, c), data in zip(jobs, encoded, strict=True)}
    old: list[Path] = []
    for entry in manifest.filters:
        keep = {rel for rel, _ in entry.files()}
        if id(entry) in converted:
            channel, data = converted[id(entry)]
            rel = channel.image.rsplit(".", 1)[0] + "-channel.webp"  # a new name: nothing overwritten
            atomic_write(dst / rel, data)
            old += [src / channel.image] + ([src / channel.thumbnail] if channel.thumbnail else [])
            keep -= {channel.image, channel.thumbnail}
            entry = replace(entry, views=replace(entry.views, channel=replace(
                channel, image=rel, thumbnail=rel, sha256=sha256(data))))
            done.converted += 1
            done.webp_bytes += len(data)
        if dst.resolve() != src.resolve():
            for rel in sorted(keep):
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, dst / rel)
                done.copied += 1
        entries.append(entry)
    dst.mkdir(parents=True, exist_ok=True)
    with atlas_lock(dst):
        atomic_write(dst / MANIFEST, encode(replace(manifest, filters=tuple(entries))))
    if dst.resolve() == src.resolve():
        for path in old:
            path.unlink(missing_ok=True)
    return done


class _Serial:
    """A stand-in for a process pool where a few images are not worth the processes."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, items, chunksize: int = 1):  # the pool's signature
        return [fn(item) for item in items]


def pack(sources: list[Path], out: Path, scratch: Path, max_files: int, max_bytes: int, max_total: int
         ) -> list[Path]:
    """The folders ``sources`` as one gzipped tar cut into chunks ``out/atlas.tgz.NN`` of at most
    ``max_bytes``; refused (nothing written to ``out``) past ``max_files`` chunks or ``max_total``
    bytes. ``scratch`` holds the whole archive meanwhile."""
    scratch.mkdir(parents=True, exist_ok=True)
    archive = scratch / CHUNKS
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for source in sources:
            tar.add(source, arcname=source.name, filter=_no_lock)
    size = archive.stat().st_size
    count = max(1, math.ceil(size / max_bytes))
    if count > max_files or size > max_total:
        raise PackError(f"the packed render is {size / MiB:.1f} MiB: more than {max_files} chunks of "
                        f"{max_bytes / MiB:.0f} MiB or {max_total / MiB:.0f} MiB in all")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{CHUNKS}.*"):  # an earlier pack's chunks would join this one's
        stale.unlink()
    chunks = []
    with archive.open("rb") as whole:
        for i in range(count):
            chunk = out / f"{CHUNKS}.{i:02d}"
            chunk.write_bytes(whole.read(max_bytes))
            chunks.append(chunk)
    archive.unlink()
    return chunks


def _no_lock(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    name = Path(info.name).name
    return None if name == ".manifest.lock" or name.endswith(".tmp") else info


def unpack(files: list[Path], dest: Path) -> list[Path]:
    """Join the chunks among ``files`` (others, such as the summary, are skipped) and extract them
    into ``dest``; returns the folders that hold a manifest (the shards)."""
    chunks = sorted((f for f in files if re.fullmatch(rf"{re.escape(CHUNKS)}\.\d\d", f.name)),
                    key=lambda f: f.name)
    if not chunks:
        raise PackError(f"no {CHUNKS}.NN chunk among {', '.join(str(f) for f in files)}")
    numbers = [int(c.name.rsplit(".", 1)[1]) for c in chunks]
    if numbers != list(range(len(chunks))):
        raise PackError(f"chunks {numbers} are not 00..{len(chunks) - 1:02d}: one is missing or doubled")
    blob = b"".join(c.read_bytes() for c in chunks)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise PackError(f"the chunks do not make a readable archive ({exc})") from None
    return sorted(p.parent for p in dest.glob("*/manifest.json"))


def adapt(shard: Path, out: Path, held: str) -> list[str]:
    """Prepare the shard ``shard`` for merging into the atlas ``out`` (its manifest rewritten);
    returns what was done, one line each.

    ``held="keep"`` drops the shard's filters that ``out`` holds rendered with other settings, so
    ``out``'s entries (and their other views) stay; ``"replace"`` leaves them for ``merge
    --replace``. Where the shard measured another natural set than ``out`` names and ``out`` holds
    that set's evidence for the model (``<model>/evidence.json``, every filter's best mean
    activation at the set's size), each filter's ``natural_activation`` is taken from it and
    ``out``'s set stays, so every "vs the best photo" number refers to one set.
    """
    from filter_atlas.store import MANIFEST, atomic_write, encode, read_manifest
    from msgspec.structs import replace

    mine = read_manifest(shard)
    theirs = read_manifest(out) if (out / MANIFEST).is_file() else None
    notes, entries = [], list(mine.filters)
    held_keys = {e.identity: e.key for e in theirs.filters} if theirs else {}
    if held == "keep":
        kept = [e for e in entries if held_keys.get(e.identity, e.key) == e.key]
        if len(kept) < len(entries):
            notes.append(f"{shard.name}: {len(entries) - len(kept)} filters {out} holds with other settings "
                         "are left as they are there (--held replace replaces them)")
        entries = kept
    naturals = mine.naturals
    if theirs and theirs.naturals and naturals and naturals.key != theirs.naturals.key:
        best = _evidence_best(out, theirs.naturals, {e.model for e in entries})
        if best is None:
            notes.append(f"{shard.name}: its natural set {naturals.name} replaces {theirs.naturals.name} "
                         f"({out} holds no matching evidence.json)")
        else:
            entries = [replace(e, natural_activation=best[e.model, e.layer][e.index]) for e in entries]
            naturals = None
            notes.append(f"{shard.name}: natural activations taken from {theirs.naturals.name} "
                         f"({theirs.naturals.size} px, evidence.json) instead of {mine.naturals.name}")
    atomic_write(shard / MANIFEST, encode(replace(mine, filters=tuple(entries), naturals=naturals)))
    return notes


def _evidence_best(out: Path, naturals, models: set[str]) -> dict[tuple[str, str], list[float]] | None:
    """Every filter's best mean activation by (model, layer), from ``out``'s evidence of the set
    ``naturals`` at its size; None unless every model in ``models`` has it."""
    best = {}
    for model in models:
        path = out / model / "evidence.json"
        if not path.is_file():
            return None
        evidence = json.loads(path.read_text())
        size = [naturals.size, naturals.width or naturals.size]
        if evidence.get("set") != naturals.name or evidence.get("size") != size:
            return None
        best.update({(model, layer["name"]): layer["best"] for layer in evidence["layers"]})
    return best


def tree_bytes(repo: Path) -> int:
    """The bytes of the working tree that every device call sends: tracked files and untracked
    ones that git does not ignore (carried paths come on top)."""
    total = 0
    for extra in ([], ["--others", "--exclude-standard"]):
        names = subprocess.run(["git", "ls-files", "-z", *extra], cwd=repo, capture_output=True,
                               check=True).stdout.split(b"\0")
        total += sum(p.stat().st_size for n in names if n and (p := repo / os.fsdecode(n)).is_file())
    return total


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
