"""A filter's unit panel (the Distill appendix's row): what each of its views shows
(``View.panel``), gathered in the views' places, with their paths as URLs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..store import FilterEntry
from ..store.records import Views
from ..views import VIEWS, Row, Shot


@dataclass(frozen=True)
class UnitPanel:
    """One filter's unit panel: every view it has."""

    shots: tuple[Shot, ...]  # the first row, after the channel image
    rows: tuple[Row, ...]
    notes: tuple[str, ...]
    views_size: int | None  # the size its optimized views were rendered at
    records: Views  # the views' manifest records


def unit_panel(e: FilterEntry, layer: str, url: Callable[[str], str]) -> UnitPanel | None:
    """The unit panel of an entry, None where no view of it shows anything there.

    Args:
        e: The filter's manifest entry.
        layer: Its layer's name, for the alt texts.
        url: An image path from the manifest as a URL relative to the docs directory.
    """
    if not e.views:
        return None
    channel = e.views.channel.activation if e.views.channel and not e.failed else None
    parts = [(view.place, panel) for name, view in VIEWS.items()
             if (record := getattr(e.views, name)) and (panel := view.panel(record, layer, e.index, channel))]
    if not parts:
        return None

    def located(s: Shot) -> Shot:
        return replace(s, image=url(s.image), thumbnail=url(s.thumbnail))

    placed = [p for _, p in sorted(parts, key=lambda part: part[0])]
    return UnitPanel(tuple(located(s) for p in placed for s in p.shots),
                     tuple(replace(r, shots=tuple(map(located, r.shots))) for p in placed for r in p.rows),
                     tuple(n for p in placed for n in p.notes),
                     next((p.size for _, p in parts if p.size), None), e.views)
