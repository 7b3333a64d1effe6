"""The store: PNG images, thumbnails and ``manifest.json``, written atomically.

A filter whose inputs are unchanged (same cache key) and whose image is intact is skipped, so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import AtlasError

MANIFEST = "manifest.json"
SCHEMA = 1
THUMB_SIDE = 112


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


class Store:
    """The output tree: ``<model>/<layer>/<index>-<recipe>.png``, thumbnails, and the manifest."""

    def __init__(self, root: Path):
        self.root = root
        self._check_writable()
        self.manifest = self._load()
        self._by_id = {self._identity(e): e for e in self.manifest["filters"]}

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            raise AtlasError(f"output directory {self.root} is not writable: {exc.strerror}") from exc

    def _load(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            return {"schema": SCHEMA, "models": {}, "runs": {}, "filters": []}
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AtlasError(f"{path} is not a readable manifest ({exc}); move it away") from exc
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise AtlasError(f"{path} has an unknown schema; move it away")
        return manifest

    @staticmethod
    def _identity(entry: dict[str, Any]) -> tuple[str, str, int, str]:
        return entry["model"], entry["layer"], entry["index"], entry["recipe"]

    def paths(self, model: str, layer: str, index: int, recipe: str) -> tuple[str, str]:
        """Image and thumbnail paths, relative to the manifest; stable per model/layer/filter."""
        base = f"{slug(model)}/{slug(layer)}"
        name = f"{index:04d}-{slug(recipe)}.png"
        return f"{base}/{name}", f"{base}/thumbs/{name}"

    def fresh(self, model: str, layer: str, index: int, recipe: str, key: str) -> bool:
        """True when this filter is stored with the same key and its image is intact."""
        entry = self._by_id.get((model, layer, index, recipe))
        if entry is None or entry["key"] != key:
            return False
        if entry["dead"]:
            return True
        image = self.root / entry["image"]
        return image.is_file() and hashlib.sha256(image.read_bytes()).hexdigest() == entry["sha256"]

    def describe_model(self, slug_: str, record: dict[str, Any]) -> None:
        """Record (or refresh) what the manifest says about a model."""
        self.manifest["models"][slug_] = record

    def put(self, run: dict[str, Any], entries: list[tuple[dict[str, Any], np.ndarray]]) -> None:
        """Write each live filter's image and thumbnail, then the manifest that lists them."""
        run_id = digest(run)[:12]
        self.manifest["runs"][run_id] = run
        for entry, image in entries:
            entry = dict(entry, run=run_id)
            if entry["dead"]:
                entry.update(image=None, thumbnail=None, sha256=None)
            else:
                data = png_bytes(image)
                for rel, blob in ((entry["image"], data), (entry["thumbnail"], png_bytes(thumbnail(image)))):
                    atomic_write(self.inside(rel), blob)
                entry["sha256"] = hashlib.sha256(data).hexdigest()
            self._by_id[self._identity(entry)] = entry
        self.save()

    def adopt(self, runs: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        """Take finished entries (images already in place) and the runs they name."""
        self.manifest["runs"].update(runs)
        for entry in entries:
            self._by_id[self._identity(entry)] = entry

    def mark_shard(self, info: dict[str, Any]) -> None:
        """Label this tree as one shard of a sharded render (merge checks the labels)."""
        self.manifest["shard"] = info

    def inside(self, rel: str) -> Path:
        """``root / rel``, refusing any path that would land outside the root."""
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise AtlasError(f"refusing to write outside {self.root}: {rel}")
        return path

    def save(self) -> None:
        self.manifest["filters"] = [self._by_id[k] for k in sorted(self._by_id)]
        used = {e["run"] for e in self.manifest["filters"]}
        self.manifest["runs"] = {k: v for k, v in sorted(self.manifest["runs"].items()) if k in used}
        self.manifest["models"] = dict(sorted(self.manifest["models"].items()))
        text = json.dumps(self.manifest, indent=1, sort_keys=True) + "\n"
        atomic_write(self.root / MANIFEST, text.encode())
