"""What each VGG block's images show, as read from the committed atlas: the gallery pages' intros
and the words that make a block's tiles findable by search. The receptive fields in them are those
of the layers the page shows, from the manifest."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .arrangement import Arrangement, BlockGallery

# Nouns in the plural: search matches word prefixes, so "eye" and "eyes" both find "eyes".
NOTES = {
    "block1": "**Oriented edges and colour.** With {fields}, the images are one small pattern tiled "
              "across the frame: fine ridges at a single orientation, often with a colour fringe, that "
              "look embossed, or fields of one colour pair such as magenta against blue or red against "
              "cyan. A first-layer filter is a single linear kernel on the pixels followed by a ReLU, "
              "and its image is that kernel's matched pattern, repeated.",
    "block2": "**Textures built from edges.** With {fields}, the filters combine first-layer edges into "
              "small repeated motifs: wavy stripes, scale-like and dotted patterns, cross-hatching, "
              "usually in stronger colour than block 1. The motif still repeats uniformly, because the "
              "objective is the mean over all positions.",
    "block3": "**Repeated shapes.** With {fields}, the motifs become small shapes with a definite form, "
              "such as ringed dots, zigzags, short hatched strokes and woven or scale-like patterns, in "
              "saturated colour and still tiled across the frame.",
    "block4": "**Complex textures.** With {fields}, the sampled filters show lattices, interlocking "
              "grids, rows of beads and fur- or feather-like diagonal strands, more regular and more "
              "specific than in block 3, but still textures tiled across the frame rather than objects.",
    "block5": "**Object parts.** With {fields} on a {input}-pixel input, the sampled filters show "
              "reptile scales, coiled bodies like snakes and clusters of blobs like eyes and faces, parts "
              "of ImageNet objects repeated across the frame. These are the hardest to read, and the "
              "place where the caveats on the Activation Maximization page matter most.",
}


def block_note(atlas: Arrangement, block: BlockGallery) -> str:
    """The block's intro in Markdown, or "" for a block or model it does not describe."""
    note = NOTES.get(block.name)
    if not note or atlas.model is None or not atlas.model.name.startswith("vgg"):
        return ""
    return note.format(fields=_fields(block), input=atlas.model.input_size)


def plain(markdown: str) -> str:
    """A note as plain text (for the search index)."""
    return re.sub(r"\*\*(.*?)\*\*", r"\1", markdown)


def _fields(block: BlockGallery) -> str:
    """``a receptive field of 32 pixels`` or ``receptive fields of 24 to 40 pixels``: those of
    the layers shown."""
    fields = sorted({layer.receptive_field for layer in block.layers if layer.receptive_field})
    if not fields:
        return "receptive fields not recorded"
    if len(fields) == 1:
        return f"a receptive field of {fields[0]} pixels"
    return f"receptive fields of {fields[0]} to {fields[-1]} pixels"
