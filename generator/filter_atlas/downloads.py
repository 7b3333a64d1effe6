"""Pinned file sets: a local copy of a set of files whose every SHA-256 the package ships, from a
folder the user names, else the user's cache, else a download of a zip archive into that cache.

Every copy is checked file by file against the pinned list before use (once per process and
folder): a missing or altered file is refused, naming it; files the list does not name are ignored.
A download is extracted and checked in a temporary folder beside the cache, then moved into place
in one rename, so the cache never holds a partial or unchecked copy.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .errors import AtlasError

DATA = Path(__file__).parent / "data"
IMAGENET_SAMPLES_ENV = "FILTER_ATLAS_IMAGENET_SAMPLES"  # a local copy of the imagenet-samples files
IMAGENET_SAMPLES_COMMIT = "bc69043e2862758a1906c6a24a792bb28c6bb2ff"
IMAGENET_SAMPLES_URL = ("https://github.com/EliSchwartz/imagenet-sample-images/archive/"
                        f"{IMAGENET_SAMPLES_COMMIT}.zip")
TIMEOUT = 60  # seconds without data before a download gives up


@dataclass(frozen=True)
class PinnedSet:
    """A set of files pinned by SHA-256, and where to get them."""

    name: str  # the set's name, and its folder in the cache
    url: str  # a zip archive holding every file (at any depth: files are matched by name)
    hashes: Path  # the pinned list: ``<sha256>  <file name>`` lines, as ``sha256sum`` writes them
    env: str  # the environment variable that names a local copy
    copy_name: str  # the folder name of a copy, as the user may have it (for messages)


IMAGENET_SAMPLES = PinnedSet("imagenet-samples", IMAGENET_SAMPLES_URL,
                             DATA / "imagenet-sample-images.sha256", IMAGENET_SAMPLES_ENV,
                             "imagenet-sample-images")

_VERIFIED: set[tuple[str, str]] = set()  # (folder, pinned list's digest) checked in this process


def naturals_cache_dir() -> Path:
    """``$FILTER_ATLAS_CACHE/naturals``, else ``$XDG_CACHE_HOME/filter-atlas/naturals``, else
    ``~/.cache/filter-atlas/naturals``."""
    from .examples.cache import CACHE_ENV  # here: the examples package imports naturals

    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "naturals"
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "filter-atlas" / "naturals"


def read_hashes(path: Path) -> dict[str, str]:
    """A pinned list.

    Args:
        path: ``<sha256>  <file name>`` lines (a ``*`` before the name is allowed).

    Returns:
        File name -> lowercase hex SHA-256, in the list's order.

    Raises:
        AtlasError: The list is unreadable, or a line is not a digest and a plain file name.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AtlasError(f"cannot read the pinned SHA-256 list {path}: {exc.strerror}") from exc
    hashes = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().removeprefix("*")
        if len(digest) != 64 or not name or "/" in name or "\\" in name or name.startswith("."):
            raise AtlasError(f"{path}:{number}: not '<sha256>  <file name>'")
        hashes[name] = digest.lower()
    return hashes


def local_copy(pinned: PinnedSet, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """A checked local copy of a pinned set: ``$<pinned.env>``, else the cached copy, else a
    download into the cache (a damaged cached copy is deleted and downloaded again).

    Args:
        pinned: The set.
        cache_dir: Where cached sets live (default ``naturals_cache_dir()``); the set is its
            ``pinned.name`` folder.
        progress: Show a progress bar while downloading (on a terminal).

    Returns:
        The folder that holds every pinned file, each checked against its SHA-256.

    Raises:
        AtlasError: The named folder is relative, missing or holds a missing or altered file; the
            download failed (offline) or its archive holds a missing or altered file; the cache
            cannot be written.
    """
    hashes = read_hashes(pinned.hashes)
    where = f"{pinned.env}=/absolute/path/to/{pinned.copy_name}"
    named = os.environ.get(pinned.env)
    if named:
        folder = Path(named)
        if not folder.is_absolute():
            raise AtlasError(f"{pinned.env} must be an absolute path, got {named!r}; set {where}")
        if not folder.is_dir():
            raise AtlasError(f"{pinned.env}={named}: no such folder; set {where}")
        problem = _check(folder, hashes)
        if problem:
            raise AtlasError(f"{pinned.env}={named}: {problem}; point it at an unaltered copy")
        return folder
    target = Path(cache_dir if cache_dir is not None else naturals_cache_dir()) / pinned.name
    if target.is_dir():
        problem = _check(target, hashes)
        if not problem:
            return target
        _warn(f"the cached {pinned.name} copy {target} is damaged ({problem}); deleted, downloading it again")
        shutil.rmtree(target, ignore_errors=True)
    _download(pinned, hashes, target, progress)
    problem = _check(target, hashes)  # already checked, unless another process cached it meanwhile
    if problem:
        raise AtlasError(f"the cached {pinned.name} copy {target} is damaged ({problem}); delete it")
    return target


def _check(folder: Path, hashes: dict[str, str]) -> str | None:
    """What is wrong with ``folder`` (a missing or altered file, named), or None when every pinned
    file is there and intact; a folder that passed is not read again in this process."""
    if _key(folder, hashes) in _VERIFIED:
        return None
    missing = [name for name in hashes if not (folder / name).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more of {len(hashes)})" if len(missing) > 1 else ""
        return f"{missing[0]} is missing{more}"
    for name, expected in hashes.items():
        try:
            actual = _sha256(folder / name)
        except OSError as exc:
            return f"cannot read {name}: {exc.strerror}"
        if actual != expected:
            return f"{name} does not match its pinned SHA-256 (altered or damaged)"
    _VERIFIED.add(_key(folder, hashes))
    return None


def _key(folder: Path, hashes: dict[str, str]) -> tuple[str, str]:
    return str(folder.resolve()), hashlib.sha256(repr(sorted(hashes.items())).encode()).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download(pinned: PinnedSet, hashes: dict[str, str], target: Path, progress: bool) -> None:
    """Download, extract and check the archive in a temporary folder beside ``target``, then
    rename the checked folder to ``target``; the temporary folder is removed either way."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{pinned.name}-", dir=target.parent))
    except OSError as exc:
        raise AtlasError(f"cannot write the cache folder {target.parent} ({exc.strerror}); set "
                         f"{pinned.env}=/absolute/path/to/{pinned.copy_name}") from exc
    try:
        archive, folder = work / "archive.zip", work / pinned.name
        _fetch(pinned, archive, progress)
        _extract(pinned, archive, folder, hashes)
        problem = _check(folder, hashes)
        if problem:
            raise AtlasError(f"the {pinned.name} archive from {pinned.url} is refused: {problem}; "
                             "nothing was cached")
        try:
            folder.rename(target)
        except OSError as exc:  # another process cached it meanwhile: use that copy
            if not target.is_dir():
                raise AtlasError(f"cannot write {target} ({exc.strerror})") from exc
        else:
            _VERIFIED.add(_key(target, hashes))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch(pinned: PinnedSet, dest: Path, progress: bool) -> None:
    """``pinned.url`` into ``dest``, with a progress bar on a terminal."""
    try:
        with urllib.request.urlopen(pinned.url, timeout=TIMEOUT) as response, dest.open("wb") as out, \
                tqdm(total=int(response.headers.get("Content-Length") or 0) or None, unit="B",
                     unit_scale=True, desc=f"downloading {pinned.name}", leave=False,
                     disable=None if progress else True) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise AtlasError(f"cannot download {pinned.name} from {pinned.url} ({reason}); offline? "
                         f"set {pinned.env}=/absolute/path/to/{pinned.copy_name} (a local copy)") from exc
    except OSError as exc:
        raise AtlasError(f"cannot write {dest} ({exc.strerror})") from exc


def _extract(pinned: PinnedSet, archive: Path, folder: Path, hashes: dict[str, str]) -> None:
    """The archive's files that the pinned list names (at any depth), flat into ``folder``; other
    members are skipped, so no member can write outside it."""
    folder.mkdir()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = PurePosixPath(info.filename).name
                if not info.is_dir() and name in hashes:
                    with zf.open(info) as src, (folder / name).open("wb") as dst:
                        shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise AtlasError(f"the {pinned.name} download from {pinned.url} is not a readable zip "
                         f"archive ({exc}); nothing was cached") from exc


def _warn(text: str) -> None:
    print(f"filter-atlas: {text}", file=sys.stderr)
