"""Merging what two processes saved into one atlas: each keeps what it changed.

Two renders of one atlas may run at once (other layers, other views). Before a process writes
the manifest, it reads the one on disk again and keeps every entry, view, model and run there,
except the parts it changed itself since it last saved.
"""

from __future__ import annotations

from msgspec.structs import replace

from ..views import NAMES
from .records import FilterEntry, Views

ENTRY = "entry"  # a changed part: the filter's own fields (the views are named by their names)


def combine(ours: FilterEntry, theirs: FilterEntry, parts: set[str]) -> FilterEntry:
    """One filter as two processes saved it.

    Args:
        ours: This process's entry.
        theirs: The entry on disk.
        parts: What this process changed: ``ENTRY`` and/or view names.

    Returns:
        The ``parts`` from ``ours``, the rest from ``theirs`` (from ``ours`` where ``theirs`` lacks
        a view).
    """
    views = {name: getattr(ours.views, name) if name in parts
             else getattr(theirs.views, name) or getattr(ours.views, name) for name in NAMES}
    base = ours if ENTRY in parts else theirs
    return replace(base, views=Views(**views))
