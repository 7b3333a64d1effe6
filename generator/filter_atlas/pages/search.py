"""Words for the search. MkDocs' search and Zensical's index what a page says, one entry per
heading (with the text up to the next); nothing is added to their indexes after the build. A tile
says in words which filter it shows, so that "block5_conv2 17" finds it: ``tile_words``, the
``words`` filter of the templates, for a line of small text in its figure (``.fa-words``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tiles import Tile


def tile_words(t: Tile) -> str:
    """``"Filter 17 of block5_conv2, vgg16, lucid recipe."``, and whether it is dead or failed."""
    state = " Dead: no image activates it." if t.dead else \
        " Failed: its render gave no finite value." if t.failed else ""
    return f"Filter {t.index} of {t.layer}, {t.model}, {t.recipe} recipe.{state}"
