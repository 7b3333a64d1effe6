"""The pages' data model: the manifest arranged as gallery pages (one per conv layer) holding grids
of tiles, one grid per variant (model and recipe), and every filter's card where the model has
natural evidence (``cards``).

``arrange`` picks the primary variant (the trained model with the most filters, its most used
recipe) and its untrained twin, orders layers as the network does, checks every image path and
measures each layer (``statistics``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ..errors import AtlasError
from ..progression import LayerStats
from ..spec import AtlasSpec
from ..store import ConvLayerRecord, FilterEntry, Manifest, ModelRecord, NaturalSetRecord, RunRecord, slug
from ..store.evidence import Evidence
from ..store.records import view_records
from .cards import Card, evidence_layers, layer_cards, read_all
from .commands import NOT_RECORDED
from .depth import Depth, depth
from .derived import STRETCHED, contrast
from .panels import unit_panel
from .statistics import measure_layer
from .tiles import Tile, Variant

BLOCKS = "blocks"  # gallery pages: blocks/<layer>.md, one per conv layer
_BLOCK = re.compile(r"([A-Za-z]+\d+)_")


@dataclass
class GalleryLayer:
    """A conv layer as its gallery shows it: what the model says about it, its grids and their
    measurements."""

    name: str
    id: str
    page: str
    filters: int | None
    output_shape: tuple[int | None, ...] | None
    receptive_field: int | None
    grids: list[tuple[Variant, list[Tile]]] = field(default_factory=list)
    stats: dict[Variant, LayerStats] = field(default_factory=dict)
    cards: list[Card] = field(default_factory=list)  # every filter, where the model has evidence

    def tiles(self, variant: Variant | None) -> list[Tile]:
        return next((tiles for v, tiles in self.grids if v == variant), [])

    def tile_at(self, variant: Variant | None, index: int) -> Tile | None:
        return next((t for t in self.tiles(variant) if t.index == index), None)


@dataclass
class BlockGallery:
    """A gallery page: one conv layer, in its block (the name prefix such as ``block3``)."""

    name: str
    page: str
    layers: list[GalleryLayer] = field(default_factory=list)

    @property
    def block_title(self) -> str:
        number = re.fullmatch(r"block(\d+)", self.name)
        return f"Block {number.group(1)}" if number else self.name

    @property
    def title(self) -> str:
        return self.layers[0].name if len(self.layers) == 1 else self.block_title


@dataclass
class Arrangement:
    """The manifest, arranged for the pages."""

    models: dict[str, ModelRecord]
    runs: dict[str, RunRecord]
    tiles: list[Tile]
    primary: Variant | None
    untrained: Variant | None  # the primary model with random weights, same recipe
    blocks: list[BlockGallery]
    naturals: NaturalSetRecord | None = None
    evidence: Evidence | None = None  # the primary model's natural evidence
    depth: Depth | None = None  # its measures per layer (``depth.depth``)

    @property
    def layers(self) -> list[GalleryLayer]:
        return [layer for block in self.blocks for layer in block.layers]

    @property
    def model(self) -> ModelRecord | None:
        return self.models[self.primary.model] if self.primary else None

    def layer(self, name: str) -> GalleryLayer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def variants(self) -> list[Variant]:
        return list(dict.fromkeys(v for layer in self.layers for v, _ in layer.grids))

    def variant_tiles(self, variant: Variant | None) -> list[Tile]:
        return [t for layer in self.layers for t in layer.tiles(variant)]

    @staticmethod
    def representative(tiles: Iterable[Tile]) -> Tile | None:
        """The live filter with the highest activation relative to natural photos."""
        return min((t for t in tiles if t.live), key=lambda t: (-(t.ratio or 0.0), t.index), default=None)

    def block_strip(self) -> list[tuple[str, Tile | None]]:
        """(block title, its representative filter) for every block, shallow to deep."""
        blocks: dict[str, list[Tile]] = {}
        for block in self.blocks:
            blocks.setdefault(block.block_title, []).extend(
                t for layer in block.layers for t in layer.tiles(self.primary))
        return [(title, self.representative(tiles)) for title, tiles in blocks.items()]

    def untrained_pairs(self) -> list[tuple[str, Tile | None]]:
        """Per layer, a trained filter (one with an untrained twin if any), then that twin."""
        twins = {(t.layer, t.index): t for t in self.variant_tiles(self.untrained) if t.live}
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


def arrange(manifest: Manifest, atlas_dir: Path, docs_dir: Path) -> Arrangement:
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
    evidence = read_all(atlas_dir)
    if primary is None and evidence:  # evidence without renders: its model is the atlas's
        model = min(evidence)
        primary = Variant(model, AtlasSpec.recipe, models[model].trained if model in models else True)
    shown = evidence_layers(evidence.get(primary.model) if primary else None)
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
    used = {e.layer for e in entries} | set(shown)
    names = list(info) + sorted(used - set(info))
    blocks: dict[str, BlockGallery] = {}
    layers: dict[str, GalleryLayer] = {}
    for name in (n for n in names if n in used):
        match = _BLOCK.match(name)
        block_name = match.group(1) if match else name
        page = f"{BLOCKS}/{slug(name)}.md"
        block = blocks.setdefault(page, BlockGallery(block_name, page))
        meta = info.get(name)
        layers[name] = GalleryLayer(name, slug(name), page, *(
            (meta.filters, meta.output_shape, meta.receptive_field) if meta else (None, None, None)))
        block.layers.append(layers[name])

    missing: list[str] = []

    def asset(rel: str | None) -> tuple[str | None, Path | None]:
        return _asset(atlas_dir, prefix, rel, missing)

    grids: dict[tuple[str, Variant], list[Tile]] = defaultdict(list)
    tiles = []
    for e in sorted(entries, key=lambda e: (e.model, e.layer, e.recipe, e.index)):
        variant = Variant(e.model, e.recipe, e.trained)
        layer = layers[e.layer]
        anchor = f"{layer.id}-{e.index}" if variant == primary else \
            f"{layer.id}-{e.index}-{slug(variant.model)}-{slug(variant.recipe)}"
        image, file = asset(e.image)
        thumb, _ = asset(e.thumbnail)
        unit = unit_panel(e, layer.name, lambda rel: asset(rel)[0])
        tile = Tile(variant.model, layer.name, e.index, variant.recipe, anchor, layer.page, image, thumb,
                    file, e.activation, e.natural_activation, e.dead, variant.trained,
                    e.steps, e.size, e.seed, unit,
                    contrast(file) if e.recipe == STRETCHED and file and file.is_file() else None,
                    e.precision, tuple(view_records(e.views)))
        tiles.append(tile)
        grids[layer.name, variant].append(tile)
    measured = depth(evidence.get(primary.model) if primary else None)
    for name, layer_evidence in shown.items():
        layer = layers[name]
        layer.cards = layer_cards(evidence[primary.model], layer_evidence,
                                  lambda i, lid=layer.id: f"{lid}-{i}", lambda rel: asset(rel)[0],
                                  measured.chance.threshold if measured else None)
        layer.filters = layer.filters or layer_evidence.filters
        layer.receptive_field = layer.receptive_field or layer_evidence.receptive_field
    if missing:
        raise AtlasError(f"{len(missing)} image(s) listed in the manifest are missing, "
                         f"e.g. {atlas_dir / missing[0]}: render again")

    def variant_order(v: Variant) -> tuple[bool, bool, bool, str, str]:
        return (v != primary, primary is not None and v.model != primary.model, not v.trained,
                v.model, v.recipe)

    for (name, variant), layer_tiles in sorted(grids.items(), key=lambda kv: variant_order(kv[0][1])):
        layers[name].grids.append((variant, layer_tiles))
    for layer in layers.values():
        layer.stats = {v: measure_layer(layer.tiles(v), layer.receptive_field)
                       for v in filter(None, (primary, untrained)) if layer.tiles(v)}
    return Arrangement(models, manifest.runs, tiles, primary, untrained, list(blocks.values()),
                       manifest.naturals, evidence.get(primary.model) if primary else None, measured)



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
    """(URL relative to the docs directory, file) of an image path from the manifest; a missing
    file is added to ``missing``."""
    if rel is None:
        return None, None
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel:
        raise AtlasError(f"manifest image path {rel!r} leaves the atlas directory")
    file = atlas_dir.joinpath(*parts)
    if not file.is_file():
        missing.append(rel)
    return prefix + "/".join(quote(p) for p in parts), file
