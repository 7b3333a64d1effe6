"""Search entries for the tiles: MkDocs' index holds the pages' sections, one per heading; these
add one per tile, at its anchor, with its layer, index, model and recipe, and for the primary
variant its block's description, so that "block5_conv2 17" or "eyes" lead to the tile itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from markupsafe import escape

from .notes import block_note, plain

if TYPE_CHECKING:
    from .arrangement import Arrangement


def tile_entries(atlas: Arrangement) -> list[dict[str, str]]:
    """One search-index entry (location, title, text; HTML-escaped as the index expects) per tile;
    the block's description, which is about the primary variant's images, only on those."""
    notes = {layer.name: plain(block_note(atlas, block)) for block in atlas.blocks for layer in block.layers}
    entries = []
    for t in atlas.tiles:
        primary = (t.model, t.recipe) == (atlas.primary.model, atlas.primary.recipe)
        variant = "" if primary else f" ({t.model}, {t.recipe})"
        state = " Dead: no image activates it." if t.dead else \
            " Failed: its render gave no finite value." if t.failed else ""
        note = notes[t.layer] if primary else ""
        text = f"Filter {t.index} of {t.layer}, {t.model}, {t.recipe} recipe.{state} {note}"
        entries.append({"location": t.href, "title": str(escape(f"{t.layer} · filter {t.index}{variant}")),
                        "text": str(escape(text.strip()))})
    return entries
