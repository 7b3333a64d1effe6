"""The examples cache: each image's selection per layer (``LayerSelection.select``) and its ReLU
means, in one SQLite file per (model identity, layer, size), keyed by the image file's sha256, so a
later pass over the same images never calls the model.

It is only a cache, so it never stops a pass: a corrupt file is deleted and rebuilt, and a cache
that cannot be written (or opened) leaves the pass uncached; each says so in one line on stderr,
and the results are the same either way.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..naming import slug
from ..sizes import Size, size_text

CACHE_ENV = "FILTER_ATLAS_CACHE"
CACHE_VERSION = 2  # bump when a change alters the cached values (image loading, selection)
WRITE_EVERY = 256  # entries a file gathers before they are written, in one transaction

# An image's entry for one layer: positions (2, filters, m) int32 (top, bottom; -1 where fewer
# exist), their activations (2, filters, m) float32, and the ReLU means (filters,) float32.
Entry = tuple[np.ndarray, np.ndarray, np.ndarray]
T = TypeVar("T")


def default_cache_dir() -> Path:
    """``$FILTER_ATLAS_CACHE``, else ``$XDG_CACHE_HOME/filter-atlas/examples``, else
    ``~/.cache/filter-atlas/examples``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "filter-atlas" / "examples"


class ExamplesCache:
    """The entries of one pass: one SQLite file per layer, in one folder per model identity."""

    def __init__(self, root: Path, identity: list, layers: list[tuple[str, int]], size: Size):
        """Open (creating where missing) the files of ``layers``.

        Args:
            root: The cache folder (``default_cache_dir()``).
            identity: What the entries depend on besides the image: model slug first, weights,
                preprocessing, ``CACHE_VERSION``.
            layers: (layer name, entries per image and side ``m``), in the pass's order.
            size: The (height, width) the images are measured at.
        """
        ident = hashlib.sha256(repr(identity).encode()).hexdigest()[:16]
        self.folder = Path(root) / f"{slug(identity[0])}-{ident}"
        self.on = True
        self._tables = [_Table(self.folder / f"{slug(name)}-{size_text(size)}.sqlite", m)
                        for name, m in layers]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._off(exc)
        for table in self._tables:
            self._use(table, _Table.open)

    def get(self, key: str) -> list[Entry | None]:
        """The image's entry in every layer, not yet written ones included (None where missing, or
        when running uncached)."""
        return [self._use(table, lambda t: t.pending[key] if key in t.pending else t.get(key))
                for table in self._tables]

    def put(self, layer: int, rows: list[tuple[str, Entry]]) -> None:
        """Store (image sha256, entry) rows of the ``layer``-th layer: written ``WRITE_EVERY`` at
        a time, in one transaction (a commit per batch costs seconds per thousand images), the
        rest at ``close``."""
        table = self._tables[layer]
        table.pending.update(rows)
        if len(table.pending) >= WRITE_EVERY:
            self._write(table)

    def close(self) -> None:
        """Write the pending entries, then close every file."""
        for table in self._tables:
            self._write(table)
        for table in self._tables:
            table.close()

    def _write(self, table: _Table) -> None:
        rows, table.pending = list(table.pending.items()), {}
        if rows:
            self._use(table, lambda t: t.put(rows))

    def _use(self, table: _Table, action: Callable[[_Table], T]) -> T | None:
        """``action(table)``; a corrupt file is deleted and rebuilt (once), and any other failure
        turns the cache off for the rest of the pass."""
        if not self.on:
            return None
        try:
            try:
                return action(table)
            except (sqlite3.DatabaseError, ValueError) as exc:
                if not _corrupt(exc) or table.rebuilt:
                    raise
                _warn(f"the examples cache {table.path} is corrupt ({_reason(exc)}); deleted, rebuilding it")
                table.rebuild()
                return action(table)
        except (OSError, sqlite3.Error, ValueError) as exc:
            self._off(exc)
            return None

    def _off(self, exc: Exception) -> None:
        self.on = False
        self.close()
        _warn(f"cannot use the examples cache in {self.folder} ({_reason(exc)}); running uncached "
              f"(set {CACHE_ENV}=<writable folder> to cache)")


class _Table:
    """One SQLite file: the entries of one layer."""

    def __init__(self, path: Path, m: int):
        self.path, self.m = path, m
        self.db: sqlite3.Connection | None = None
        self.rebuilt = False
        self.pending: dict[str, Entry] = {}  # put, not yet written

    def open(self) -> None:
        self.db = sqlite3.connect(self.path, timeout=60)
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS entries (sha256 TEXT, m INTEGER, "
                            "filters INTEGER, positions BLOB, activations BLOB, means BLOB, "
                            "PRIMARY KEY (sha256, m))")

    def get(self, key: str) -> Entry | None:
        row = self.db.execute("SELECT filters, positions, activations, means FROM entries "
                              "WHERE sha256 = ? AND m = ?", (key, self.m)).fetchone()
        if row is None:
            return None
        f, positions, activations, means = row
        shape = (2, f, self.m)  # a blob of another length: ValueError, a corrupt file
        return (np.frombuffer(positions, "<i4").reshape(shape),
                np.frombuffer(activations, "<f4").reshape(shape), np.frombuffer(means, "<f4").reshape(f))

    def put(self, rows: list[tuple[str, Entry]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                [(key, self.m, means.shape[0], positions.astype("<i4").tobytes(),
                  activations.astype("<f4").tobytes(), means.astype("<f4").tobytes())
                 for key, (positions, activations, means) in rows])

    def rebuild(self) -> None:
        """Delete the file (and any journal: a stale one would be replayed into the new file), then
        create it empty."""
        self.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.rebuilt = True
        self.open()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


def _corrupt(exc: Exception) -> bool:
    """Whether ``exc`` says the file's content is damaged: SQLite's 'not a database' and
    'malformed' raise the bare DatabaseError (locked, read-only or unopenable files raise its
    OperationalError), a blob of the wrong length a ValueError."""
    return type(exc) is sqlite3.DatabaseError or isinstance(exc, ValueError)


def _reason(exc: Exception) -> str:
    """The failure in a few words: the OS's, or the first line of the message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _warn(text: str) -> None:
    print(f"filter-atlas: {text}", file=sys.stderr)
