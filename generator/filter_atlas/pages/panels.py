"""A filter's unit panel (the Distill appendix's row): its views other than the channel image
(negative, neuron, diversity) and its natural examples, as the gallery shows them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..store import FilterEntry
from ..views import NAMES

VIEWS = tuple(name for name in NAMES if name != "channel")  # the views a unit panel shows


@dataclass(frozen=True)
class Shot:
    """One image of a unit panel (a view's image or a natural patch)."""

    label: str  # what it is: "neuron", "negative", "diverse 2", a photo's name
    image: str  # URLs relative to the docs directory
    thumbnail: str
    value: float | None  # the number shown under it (see the panel's legend); None: failed
    alt: str
    box: tuple[int, ...] | None = None  # natural patches: where in the photo


@dataclass(frozen=True)
class UnitPanel:
    """One filter's unit panel: every view it has."""

    neuron: Shot | None
    negative: Shot | None
    diverse: tuple[Shot, ...]
    top: tuple[Shot, ...]
    bottom: tuple[Shot, ...]
    similarity: float | None  # mean pairwise Gram cosine of the diverse images
    negative_start: float | None  # the negative image's start, same seed as the channel view
    radius90: float | None  # neuron view: px around the centre holding 90% of the deviation
    views_size: int | None
    examples_set: str | None


def has_panel(e: FilterEntry) -> bool:
    """Whether the entry has a view that a unit panel shows."""
    return bool(e.views) and any(getattr(e.views, v) for v in VIEWS)


def unit_panel(e: FilterEntry, layer: str, url: Callable[[str], str]) -> UnitPanel:
    """The unit panel of an entry with views (``FilterEntry.views``).

    Args:
        e: The filter's manifest entry.
        layer: Its layer's name, for the alt texts.
        url: An image path from the manifest as a URL relative to the docs directory.
    """
    v = e.views
    what = f"filter {e.index} of {layer}"

    def shot(label: str, rel: str, thumb: str | None, value: float | None, alt: str,
             box: tuple[int, ...] | None = None) -> Shot:
        return Shot(label, url(rel), url(thumb or rel), value, alt, box)

    neuron = v.neuron and shot("neuron", v.neuron.image, v.neuron.thumbnail, v.neuron.activation,
                               f"Image that most excites the centre position of {what}")
    negative = v.negative and shot("negative", v.negative.image, v.negative.thumbnail, v.negative.activation,
                                   f"Image that most inhibits {what}")
    diverse = tuple(shot(f"diverse {k + 1}", img, th, act, f"Diverse image {k + 1} of 4 for {what}")
                    for k, (img, th, act) in enumerate(zip(v.diversity.images, v.diversity.thumbnails,
                                                           v.diversity.activations, strict=True))
                    ) if v.diversity else ()
    sides = {side: tuple(shot(p.source, p.image, None, p.activation,
                              f"{'Top' if side == 'top' else 'Bottom'} natural patch {k + 1} of {what}, "
                              f"from {p.source}", p.box)
                         for k, p in enumerate(getattr(v.examples, side)))
             for side in ("top", "bottom")} if v.examples else {"top": (), "bottom": ()}
    sized = v.negative or v.neuron or v.diversity
    return UnitPanel(neuron, negative, diverse, sides["top"], sides["bottom"],
                     v.diversity.similarity if v.diversity else None,
                     v.negative.start_activation if v.negative else None,
                     v.neuron.radius90 if v.neuron else None, sized.size if sized else None,
                     v.examples.set if v.examples else None)
