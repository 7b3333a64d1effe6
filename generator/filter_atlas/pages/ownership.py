"""Which files of the docs directory are filter-atlas's to replace or remove: those it wrote and
nobody changed since.

``RECORD`` (``.filter-atlas-pages.json`` in the docs directory; MkDocs leaves dotfiles out of the
site) maps the path of every file the last run wrote to the sha256 of its bytes. A file is the
tool's when its bytes still have the recorded hash, or equal what it is about to write (so
pages generated before the record existed, such as a fresh clone's, are adopted). Anything else
is the user's: a page they wrote, or a generated one they edited. The record, not a marker
inside the pages, because it leaves the pages' bytes as they were, tells an edited page from an
untouched one, and works for Markdown, CSS and JavaScript alike.

The derived images (``derived``) are recorded apart, each with the key of what it was made from:
one whose file and key are unchanged is kept as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AtlasError
from ..store import atomic_write
from .text import plural

RECORD = ".filter-atlas-pages.json"
SHOWN = 3  # other refused files named after the first


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Record:
    """What the last run wrote: the pages (path -> sha256) and the derived images (path ->
    (sha256, key of their sources))."""

    files: dict[str, str] = field(default_factory=dict)
    derived: dict[str, tuple[str, str]] = field(default_factory=dict)

    def hashes(self) -> dict[str, str]:
        """Every recorded file's sha256, by path."""
        return {**{rel: sha for rel, (sha, _) in self.derived.items()}, **self.files}


def read_record(docs_dir: Path) -> Record:
    """The record; empty where it is missing or unreadable (then only files equal to what is
    written now count as the tool's)."""
    try:
        data = json.loads((docs_dir / RECORD).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return Record()
    files = data.get("files") if isinstance(data, dict) else None
    derived = data.get("derived") if isinstance(data, dict) else None
    return Record(
        {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(files, dict) else {},
        {k: (v["sha256"], v["from"]) for k, v in derived.items() if isinstance(v, dict)
         and isinstance(v.get("sha256"), str) and isinstance(v.get("from"), str)}
        if isinstance(derived, dict) else {})


def write_record(docs_dir: Path, written: Mapping[str, bytes],
                 derived: Mapping[str, tuple[str, str]] | None = None) -> None:
    """Record ``written`` (path relative to ``docs_dir`` -> bytes) and ``derived`` (path ->
    (sha256, key)), unless already recorded."""
    record = Record({rel: sha256(data) for rel, data in sorted(written.items())},
                    dict(sorted((derived or {}).items())))
    if read_record(docs_dir) != record:
        data: dict[str, object] = {"generator": "filter-atlas pages", "files": record.files}
        if record.derived:
            data["derived"] = {rel: {"sha256": sha, "from": key}
                               for rel, (sha, key) in record.derived.items()}
        atomic_write(docs_dir / RECORD, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def owned(path: Path, recorded: str | None, new: bytes | None) -> bool:
    """Whether the existing file at ``path`` is the tool's to replace with ``new`` (None: to remove)."""
    if not path.is_file() or path.is_symlink():
        return False
    data = path.read_bytes()
    return data == new or (recorded is not None and sha256(data) == recorded)


def refuse_foreign(docs_dir: Path, writes: Mapping[str, bytes | None], removals: Iterable[str]) -> None:
    """Refuse, naming the first, if any file to be written (``writes``: path relative to
    ``docs_dir`` -> its new bytes, None where not known yet) or removed is the user's.

    Raises:
        AtlasError: One line naming the file and what to do; nothing has been written.
    """
    record = read_record(docs_dir).hashes()
    foreign = [(rel, "overwriting") for rel, data in writes.items()
               if present(docs_dir / rel) and not owned(docs_dir / rel, record.get(rel), data)]
    foreign += [(rel, "deleting") for rel in removals
                if not owned(docs_dir / rel, record.get(rel), None)]
    if not foreign:
        return
    (rel, verb), others = foreign[0], [str(docs_dir / rel) for rel, _ in foreign[1:]]
    also = ""
    if others:
        listed = ", ".join(others[:SHOWN]) + (", ..." if len(others) > SHOWN else "")
        also = f"; {plural(len(others), 'other file')} likewise: {listed}"
    raise AtlasError(f"{docs_dir / rel} is not a file filter-atlas wrote, or was edited since (see "
                     f"{docs_dir / RECORD}): not {verb} it; move it out of {docs_dir / Path(rel).parent}, "
                     f"then run again{also}")


def present(path: Path) -> bool:
    """Whether anything is at ``path``, a dangling link included."""
    return path.exists() or path.is_symlink()
