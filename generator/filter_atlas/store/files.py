"""Files of an atlas: atomic writes and the atlas's lock, on any platform.

Every file is written to a temporary file beside it and renamed into place, so a reader never
sees half a file; a write that fails removes its temporary file. The lock (``filelock``, an
empty hidden file in the atlas) serializes the processes that save one atlas's manifest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from ..errors import AtlasError

LOCK = ".manifest.lock"  # the atlas's lock file: empty, hidden (MkDocs and merge skip it)
TEMPORARY = ".tmp"  # the suffix of files being written
LEFTOVER_AGE = 600.0  # seconds after which a temporary file is a leftover


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    Args:
        path: The file to (re)place; its folder is made if need be.
        data: The file's new contents.

    Raises:
        AtlasError: naming the path and the reason when the disk refuses (no space, a file where
            a folder should be, no permission); the temporary file is removed.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AtlasError(f"cannot write {path}: cannot make folder {exc.filename}: {exc.strerror}") from exc
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY)
    except OSError as exc:
        raise AtlasError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files are meant to be served and shared
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
def atlas_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive lock of the atlas in ``root`` (which must exist) for the block."""
    try:
        lock = FileLock(root / LOCK, mode=0o644)
        lock.acquire()
    except OSError as exc:
        raise AtlasError(f"cannot lock {root / LOCK}: {exc.strerror or exc}") from exc
    try:
        yield
    finally:
        lock.release()


def remove_leftovers(root: Path, age: float = LEFTOVER_AGE) -> int:
    """Remove the temporary files that a killed process left in the atlas: those not modified for
    ``age`` seconds (a live write takes milliseconds, and concurrent renders may be writing now).

    Returns:
        The number removed.
    """
    removed, now = 0, time.time()
    for path in root.rglob(f".*{TEMPORARY}"):
        with contextlib.suppress(OSError):
            if path.is_file() and now - path.stat().st_mtime > age:
                path.unlink()
                removed += 1
    return removed


def swap_folder(stage: Path, target: Path) -> None:
    """Put the folder ``stage`` in ``target``'s place: what ``target`` held is moved aside, then
    removed; if the rename fails, it is put back.

    Args:
        stage: A finished folder beside ``target`` (on the same disk).
        target: The folder to replace; made if missing.
    """
    if not target.exists():
        os.rename(stage, target)
        return
    old = stage.with_name(f"{stage.name}-old")
    os.rename(target, old)
    try:
        os.rename(stage, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
