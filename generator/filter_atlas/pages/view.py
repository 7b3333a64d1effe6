"""The view model: the manifest arranged for the pages, as blocks of layers holding grids of tiles.

``build_atlas`` picks the primary variant (the trained model with the most filters, its most used
recipe) and its untrained twin, orders layers as the network does, and checks every image path.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ..errors import AtlasError
from ..progression import LayerStats, layer_stats
from ..spec import AtlasSpec
from ..store import ConvLayerRecord, FilterEntry, Manifest, ModelRecord, RunRecord, slug
from .chart import progression_chart
from .commands import NOT_RECORDED, missing_untrained, recipe_commands, reproduce_commands

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
        return f"{self.model} · {self.layer} · filter {self.index} · {self.recipe}"


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
            name=e.model.removesuffix("-untrained"), weights=NOT_RECORDED if e.trained else "random",
            weights_sha256=NOT_RECORDED, trained=e.trained, preprocess=NOT_RECORDED, input_size=e.size,
            layers=()))
    primary = _primary(models, entries)
    untrained = None
    if primary:
        name = models[primary.model].name
        twin = next((s for s in sorted(models) if not models[s].trained
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
        tile = Tile(variant.model, layer.name, e.index, variant.recipe, anchor, layer.page, image, thumb,
                    file, float(e.activation), float(e.natural_activation), e.dead, variant.trained,
                    e.steps, e.size, e.seed)
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
                layer.stats[variant] = layer_stats([t.file for t in live if t.file],
                                                   [t.ratio for t in live if t.ratio is not None])
    return Atlas(models, manifest.runs, tiles, primary, untrained, list(blocks.values()))


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
