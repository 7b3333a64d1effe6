"""Every filter's card on its layer's gallery page: its top natural patches with their classes,
drawn from the set's downscaled copies by box (``store.evidence``), and its numbers."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import AtlasError
from ..semantics import Concentration, category, concentration
from ..store.evidence import EVIDENCE, Evidence, LayerEvidence, evidence_path, read_evidence
from ..views.examples import MIN_WINDOW, window

SHOWN = 4  # top patches a card shows (the evidence holds 9 per side)


@dataclass(frozen=True)
class Crop:
    """One natural patch as a window onto its image's copy."""

    image: str  # the copy's URL, relative to the docs directory
    label: str  # its class, else the image's name
    source: str  # the image's name in the set
    activation: float  # the filter's pre-activation there
    width: int  # whole CSS percentages of the window's side: the copy's width, and its offsets
    left: int
    top: int


@dataclass(frozen=True)
class Card:
    """One filter of a layer, with or without rendered views."""

    layer: str
    index: int
    anchor: str
    top: tuple[Crop, ...]
    classes: tuple[str, ...]  # distinct classes of its top patches, most frequent first
    best: float  # best mean activation (after ReLU) over the set
    active: float  # share of the set's images on which it is positive somewhere, 0..1
    previous: str | None  # anchors of its neighbours in the layer
    next: str | None
    theme: Concentration | None = None  # the coarse category its top images share, beyond chance

    shown: int = SHOWN
    min_window: int = MIN_WINDOW

    @property
    def silent(self) -> bool:
        """Whether no image of the set activates it anywhere."""
        return self.active == 0


def read_all(atlas_dir: Path) -> dict[str, Evidence]:
    """The evidence of every model in the atlas that has some, by model slug."""
    found = {}
    for path in sorted(Path(atlas_dir).glob(f"*/{EVIDENCE}")):
        evidence = read_evidence(path)
        if evidence is not None and path == evidence_path(atlas_dir, evidence.model):
            found[evidence.model] = evidence
    return found


def evidence_layers(evidence: Evidence | None) -> dict[str, LayerEvidence]:
    """The layers an evidence holds, by name (none without evidence)."""
    return {layer.name: layer for layer in evidence.layers} if evidence else {}


def layer_cards(evidence: Evidence, layer: LayerEvidence, anchor, url,
                threshold: int | None = None) -> list[Card]:
    """Every filter's card of ``layer`` (``anchor(index)``: its stable address; ``url``: a path
    relative to the atlas folder as a URL relative to the docs directory; ``threshold``: the count
    of top images in one coarse category from which a card names it, None for none)."""
    h, w = evidence.size
    images = evidence.images
    categories = [category(image.name) for image in images]
    cards = []
    for f in range(layer.filters):
        crops = []
        for image, box, activation in zip(layer.top.image[f][:SHOWN], layer.top.box[f][:SHOWN],
                                          layer.top.activation[f][:SHOWN], strict=True):
            record = images[image]
            if record.copy is None:
                raise AtlasError(f"evidence of {evidence.model}: image {record.name} has no copy: "
                                 "run `filter-atlas naturals` again")
            crops.append(_crop(url(record.copy), record.label or record.name, record.name, activation,
                               box, (h, w)))
        labels = [images[i].label for i in layer.top.image[f] if images[i].label]
        classes = tuple(label for label, _ in Counter(labels).most_common())
        shared = concentration([categories[i] for i in layer.top.image[f]])
        cards.append(Card(layer.name, f, anchor(f), tuple(crops), classes, layer.best[f],
                          layer.active[f] / evidence.used if evidence.used else 0.0,
                          anchor(f - 1) if f else None, anchor(f + 1) if f + 1 < layer.filters else None,
                          shared if threshold is not None and shared.count >= threshold else None))
    return cards


def _crop(image: str, label: str, source: str, activation: float, box: tuple[int, int, int, int],
          size: tuple[int, int]) -> Crop:
    """The window onto ``image`` (a copy's URL) that shows ``box`` (``views.examples.window``)."""
    return Crop(image, label, source, activation, *window(box, size))
