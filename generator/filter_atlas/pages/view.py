"""The view model: the manifest arranged for the pages, as blocks of layers holding grids of tiles.

``build_atlas`` picks the primary variant (the trained model with the most filters, its most used
recipe) and its untrained twin, orders layers as the network does, and checks every image path.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from markupsafe import Markup

from ..errors import AtlasError
from ..progression import LayerStats, layer_stats
from ..spec import AtlasSpec
from ..store import ConvLayerRecord, FilterEntry, Manifest, ModelRecord, NaturalSetRecord, RunRecord, slug
from .chart import progression_chart
from .commands import NOT_RECORDED, missing_untrained, recipe_commands, reproduce_commands
from .derived import STRETCHED, Contrast, contrast
from .text import markdown_text

BLOCKS = "blocks"  # gallery pages: blocks/<block>.md, one per block
_BLOCK = re.compile(r"([A-Za-z]+\d+)_")


@dataclass(frozen=True)
class Variant:
    """One model and recipe: the images of a layer are grouped by it."""

    model: str
    recipe: str
    trained: bool

    @property
    def label(self) -> str:
        return f"{self.model} · {self.recipe}"


@dataclass(frozen=True)
class Shot:
    """One image of a unit panel (a view's image or a natural patch)."""

    label: str  # what it is: "neuron", "negative", "diverse 2", a photo's name
    image: str  # URLs relative to the docs directory
    thumbnail: str
    value: float  # the number shown under it (see the panel's legend)
    alt: str
    box: tuple[int, ...] | None = None  # natural patches: where in the photo


@dataclass(frozen=True)
class Unit:
    """One filter's unit panel (the Distill appendix's row): every view it has."""

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


@dataclass(frozen=True)
class Tile:
    """One filter's image, as a gallery tile."""

    model: str
    layer: str
    index: int
    recipe: str
    anchor: str
    page: str  # its gallery page, relative to the docs directory
    image: str | None  # URLs relative to the docs directory; None for a dead filter
    thumbnail: str | None
    file: Path | None
    activation: float
    natural: float
    dead: bool
    trained: bool
    steps: int
    size: int
    seed: int
    unit: Unit | None = None
    contrast: Contrast | None = None  # keras-vis images: shown a second time, contrast stretched
    precision: str | None = None  # "bfloat16" when the model computed in it; None: float32

    @property
    def ratio(self) -> float | None:
        """Achieved activation over the best natural-photo activation."""
        return self.activation / self.natural if self.natural > 0 else None

    @property
    def href(self) -> str:
        """Its anchor on its gallery page, relative to the docs directory (for raw HTML)."""
        return f"{self.page[:-3]}.html#{self.anchor}"

    @property
    def caption(self) -> str:
        return f"{self.model} · {self.layer} · filter {self.index} · {self.recipe}" + \
            (f" · {self.precision}" if self.precision else "")


@dataclass
class Layer:
    """A rendered conv layer: what the model says about it, its grids and their measurements."""

    name: str
    id: str
    page: str
    filters: int | None
    output_shape: tuple[int | None, ...] | None
    receptive_field: int | None
    grids: list[tuple[Variant, list[Tile]]] = field(default_factory=list)
    stats: dict[Variant, LayerStats] = field(default_factory=dict)

    def tiles(self, variant: Variant | None) -> list[Tile]:
        return next((tiles for v, tiles in self.grids if v == variant), [])


@dataclass
class Block:
    """A gallery page: the rendered layers that share a name prefix such as ``block3``."""

    name: str
    page: str
    layers: list[Layer] = field(default_factory=list)

    @property
    def title(self) -> str:
        number = re.fullmatch(r"block(\d+)", self.name)
        return f"Block {number.group(1)}" if number else self.name


@dataclass
class Atlas:
    """The manifest, arranged for the pages."""

    models: dict[str, ModelRecord]
    runs: dict[str, RunRecord]
    tiles: list[Tile]
    primary: Variant | None
    untrained: Variant | None  # the primary model with random weights, same recipe
    blocks: list[Block]
    naturals: NaturalSetRecord | None = None

    @property
    def layers(self) -> list[Layer]:
        return [layer for block in self.blocks for layer in block.layers]

    @property
    def model(self) -> ModelRecord | None:
        return self.models[self.primary.model] if self.primary else None

    def layer(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def variants(self) -> list[Variant]:
        return list(dict.fromkeys(v for layer in self.layers for v, _ in layer.grids))

    def variant_tiles(self, variant: Variant | None) -> list[Tile]:
        return [t for layer in self.layers for t in layer.tiles(variant)]

    @staticmethod
    def representative(tiles: Iterable[Tile]) -> Tile | None:
        """The live filter with the highest activation relative to natural photos."""
        live = [t for t in tiles if not t.dead]
        return min(live, key=lambda t: (-(t.ratio or 0.0), t.index), default=None)

    def block_strip(self) -> list[tuple[str, Tile | None]]:
        """(block title, its representative filter) for every block, shallow to deep."""
        return [(block.title, self.representative(t for layer in block.layers
                                                  for t in layer.tiles(self.primary)))
                for block in self.blocks]

    def untrained_pairs(self) -> list[tuple[str, Tile | None]]:
        """Per layer, a trained filter (one with an untrained twin if any), then that twin."""
        twins = {(t.layer, t.index): t for t in self.variant_tiles(self.untrained) if not t.dead}
        pairs = []
        for layer in self.layers:
            tiles = layer.tiles(self.primary)
            best = (self.representative(t for t in tiles if (t.layer, t.index) in twins)
                    or self.representative(tiles))
            if best:
                pairs += [(layer.name, best), (layer.name, twins.get((best.layer, best.index)))]
        return pairs

    def recipe_rows(self) -> tuple[list[str], list[tuple[str, Tile | None]]]:
        """The recipes of the primary model's filters rendered with more than one, and for each
        such filter one (layer, tile or None) per recipe, row after row."""
        if not self.primary:
            return [], []
        by_filter: dict[tuple[str, int], dict[str, Tile]] = defaultdict(dict)
        for t in self.tiles:
            if t.model == self.primary.model:
                by_filter[t.layer, t.index][t.recipe] = t
        order = {layer.name: n for n, layer in enumerate(self.layers)}
        shared = sorted((k for k, v in by_filter.items() if len(v) > 1), key=lambda k: (order[k[0]], k))
        first = self.primary.recipe
        recipes = sorted({r for k in shared for r in by_filter[k]}, key=lambda r: (r != first, r))
        return recipes, [(layer, by_filter[layer, index].get(r)) for layer, index in shared for r in recipes]

    # The templates call these as methods of the atlas; they live in commands.py and chart.py.
    def reproduce_commands(self, variant: Variant) -> list[str]:
        return reproduce_commands(self, variant)

    def recipe_commands(self, recipe: str) -> list[str]:
        return recipe_commands(self, recipe)

    def missing_untrained(self) -> list[str]:
        return missing_untrained(self)

    def chart(self) -> str:
        return progression_chart(self)

    def neuron_trend(self) -> list[tuple[str, float, float | None, int | None]]:
        """(layer, neuron-view 90% radius, its diameter / receptive field, receptive field) of the
        primary variant's layers that have neuron views, shallow to deep."""
        found = [(layer, layer.stats.get(self.primary)) for layer in self.layers]
        return [(layer.name, s.neuron_radius, s.neuron_fraction, layer.receptive_field)
                for layer, s in found if s and s.neuron_radius is not None]

    def frequency_summary(self) -> Markup:
        """What the channel images' spatial frequencies show, stated from the numbers alone."""
        found = [(str(markdown_text(layer.name)), s.frequency) for layer in self.layers
                 if (s := layer.stats.get(self.primary)) and s.frequency is not None]
        if len(found) < 2:
            return Markup()
        values = [f for _, f in found]
        low, high = min(values), max(values)
        if high - low < 0.25 * high:
            return Markup(f"The mean spatial frequency barely moves ({low:g} to {high:g} cycles/px across "
                    "the layers): on tiled channel images this measure does not show the progression, "
                    "which is why the neuron view below measures the size of one pattern instead.")
        falls = values[-1] < values[0]
        return Markup(f"The mean spatial frequency goes from {values[0]:g} cycles/px at {found[0][0]} to "
                f"{values[-1]:g} at {found[-1][0]}" + (", coarser with depth." if falls else
                                                        ": finer, not coarser, with depth."))

    def neuron_summary(self) -> Markup:
        """What the neuron-view radii show, shallow to deep, stated from the numbers alone."""
        trend = [(str(markdown_text(name)), *rest) for name, *rest in self.neuron_trend()]
        if len(trend) < 2:
            return Markup()
        radii = [r for _, r, _, _ in trend]
        rises = all(b >= a for a, b in itertools.pairwise(radii))
        first, last = trend[0], trend[-1]
        text = (f"The median 90% radius goes from {first[1]:g} px at {first[0]} to {last[1]:g} px at "
                f"{last[0]}, " + ("growing at every step." if rises else
                                  "but not at every step: the growth is not monotonic here."))
        fractions = [f for _, _, f, _ in trend if f is not None]
        if len(fractions) == len(trend):
            shrinks = fractions[-1] < fractions[0]
            text += (f" Relative to the receptive field it goes from {fractions[0]:g} to {fractions[-1]:g} "
                     "(diameter over field side): " + (
                         "deep filters use a smaller share of what they could see, in part because the "
                         "deep fields are larger than the rendered image." if shrinks else
                         "the patterns fill at least as much of their field at depth as in the first "
                         "layers."))
        if first[1] > 2 * (first[3] or 0):
            text += (f" At {first[0]} the radius is far larger than the {first[3]} px field: the Fourier "
                     "parameterization and the random jitter, scale and rotation spread a "
                     "few-pixel pattern over a wider disc, so the shallowest radii overstate the "
                     "pattern's size.")
        return Markup(text)


def build_atlas(manifest: Manifest, atlas_dir: Path, docs_dir: Path) -> Atlas:
    """Arrange the manifest for the pages; checks that every image it lists is inside and present."""
    try:
        prefix = atlas_dir.resolve().relative_to(docs_dir.resolve()).as_posix()
    except ValueError:
        raise AtlasError(f"the atlas {atlas_dir} must be inside the docs directory {docs_dir}") from None
    prefix = "" if prefix == "." else prefix + "/"
    entries = manifest.filters
    models = dict(manifest.models)
    for e in entries:  # the earliest manifests have no models section: tell what the entries tell
        models.setdefault(e.model, ModelRecord(
            name=e.model.removesuffix("-untrained"), weights="random" if e.trained is False else NOT_RECORDED,
            weights_sha256=NOT_RECORDED, trained=e.trained, preprocess=NOT_RECORDED, input_size=e.size,
            layers=()))
    primary = _primary(models, entries)
    untrained = None
    if primary:
        name = models[primary.model].name
        twin = next((s for s in sorted(models) if models[s].trained is False
                     and models[s].name == name and s != primary.model), None)
        if twin and any((e.model, e.recipe) == (twin, primary.recipe) for e in entries):
            untrained = Variant(twin, primary.recipe, False)

    # Layers in network order: the primary model's first, then the others', then unlisted ones.
    info: dict[str, ConvLayerRecord] = {}
    for slug_ in sorted(models, key=lambda s: (primary is None or s != primary.model, s)):
        for record in models[slug_].layers:
            info.setdefault(record.name, record)
    names = list(info) + sorted({e.layer for e in entries} - set(info))
    used = {e.layer for e in entries}
    blocks: dict[str, Block] = {}
    layers: dict[str, Layer] = {}
    for name in (n for n in names if n in used):
        match = _BLOCK.match(name)
        block_name = match.group(1) if match else name
        page = f"{BLOCKS}/{slug(block_name)}.md"
        block = blocks.setdefault(page, Block(block_name, page))
        meta = info.get(name)
        layers[name] = Layer(name, slug(name), page, meta.filters if meta else None,
                             meta.output_shape if meta else None, meta.receptive_field if meta else None)
        block.layers.append(layers[name])

    missing: list[str] = []
    grids: dict[tuple[str, Variant], list[Tile]] = defaultdict(list)
    tiles = []
    for e in sorted(entries, key=lambda e: (e.model, e.layer, e.recipe, e.index)):
        variant = Variant(e.model, e.recipe, e.trained)
        layer = layers[e.layer]
        anchor = f"{layer.id}-{e.index}" if variant == primary else \
            f"{layer.id}-{e.index}-{slug(variant.model)}-{slug(variant.recipe)}"
        image, file = _asset(atlas_dir, prefix, e.image, missing)
        thumb, _ = _asset(atlas_dir, prefix, e.thumbnail, missing)
        unit = _unit(e, layer.name, atlas_dir, prefix, missing) if e.views and any(
            getattr(e.views, v) for v in ("negative", "neuron", "diversity", "examples")) else None
        tile = Tile(variant.model, layer.name, e.index, variant.recipe, anchor, layer.page, image, thumb,
                    file, float(e.activation), float(e.natural_activation), e.dead, variant.trained,
                    e.steps, e.size, e.seed, unit,
                    contrast(file) if e.recipe == STRETCHED and file and file.is_file() else None,
                    e.precision)
        tiles.append(tile)
        grids[layer.name, variant].append(tile)
    if missing:
        raise AtlasError(f"{len(missing)} image(s) listed in the manifest are missing, "
                         f"e.g. {atlas_dir / missing[0]}: render again")

    def variant_order(v: Variant) -> tuple[bool, bool, bool, str, str]:
        return (v != primary, primary is not None and v.model != primary.model, not v.trained,
                v.model, v.recipe)

    for (name, variant), layer_tiles in sorted(grids.items(), key=lambda kv: variant_order(kv[0][1])):
        layers[name].grids.append((variant, layer_tiles))
    for layer in layers.values():
        for variant in filter(None, (primary, untrained)):
            live = [t for t in layer.tiles(variant) if not t.dead]
            if layer.tiles(variant):
                stats = layer_stats([t.file for t in live if t.file],
                                    [t.ratio for t in live if t.ratio is not None])
                radii = [t.unit.radius90 for t in layer.tiles(variant)
                         if t.unit and t.unit.radius90 is not None]
                if radii:
                    radius = round(statistics.median(radii), 1)
                    fraction = round(2 * radius / layer.receptive_field, 2) if layer.receptive_field else None
                    stats = replace(stats, neuron_radius=radius, neuron_fraction=fraction)
                layer.stats[variant] = stats
    return Atlas(models, manifest.runs, tiles, primary, untrained, list(blocks.values()), manifest.naturals)


def _primary(models: dict[str, ModelRecord], entries: Sequence[FilterEntry]) -> Variant | None:
    """The trained model with the most filters (untrained if none), and its most used recipe
    (the default recipe on a tie)."""
    if not entries:
        return None
    counts = Counter(e.model for e in entries)
    model = min(counts, key=lambda m: (not models[m].trained, -counts[m], m))
    recipes = Counter(e.recipe for e in entries if e.model == model)
    recipe = min(recipes, key=lambda r: (-recipes[r], r != AtlasSpec.recipe, r))
    return Variant(model, recipe, models[model].trained)


def _unit(e: FilterEntry, layer: str, atlas_dir: Path, prefix: str, missing: list[str]) -> Unit:
    """The unit panel of an entry with views (``FilterEntry.views``)."""
    v = e.views
    what = f"filter {e.index} of {layer}"

    def shot(label: str, rel: str, thumb: str | None, value: float, alt: str, box=None) -> Shot:
        url, _ = _asset(atlas_dir, prefix, rel, missing)
        small, _ = _asset(atlas_dir, prefix, thumb or rel, missing)
        return Shot(label, url, small, value, alt, box)

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
    return Unit(neuron, negative, diverse, sides["top"], sides["bottom"],
                v.diversity.similarity if v.diversity else None,
                v.negative.start_activation if v.negative else None,
                v.neuron.radius90 if v.neuron else None, sized.size if sized else None,
                v.examples.set if v.examples else None)


def _asset(atlas_dir: Path, prefix: str, rel: str | None,
           missing: list[str]) -> tuple[str | None, Path | None]:
    """(URL relative to the docs directory, file) of an image path from the manifest."""
    if rel is None:
        return None, None
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel:
        raise AtlasError(f"manifest image path {rel!r} leaves the atlas directory")
    file = atlas_dir.joinpath(*parts)
    if not file.is_file():
        missing.append(rel)
    return prefix + "/".join(quote(p) for p in parts), file
