"""The site's Markdown pages, rendered from the manifest with the package's Jinja2 templates.

Home, convolutional filters, Activation Maximization, one gallery per block, shallow to deep and
reproduce. Pure and deterministic: the same manifest and images give byte-identical pages. Names
from the manifest are escaped for Markdown and HTML, and sanitized (``store.slug``) in file
names and anchors, so every page lands inside the docs directory.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from .errors import AtlasError
from .progression import MAX_MEASURED, LayerStats, Panel, Series, chart_svg, layer_stats
from .spec import AtlasSpec
from .store import MANIFEST, SCHEMA, atomic_write, slug

PAGES = {name: f"{name}.j2" for name in
         ("index.md", "filters.md", "activation-maximization.md", "progression.md", "reproduce.md",
          "publish.md")}
BLOCKS = "blocks"  # gallery pages: blocks/<block>.md, one per block
CSS = "assets/filter-atlas.css"
COMPACT = 64  # grids with more tiles than this get the compact layout
NOT_RECORDED = "not recorded"
_BLOCK = re.compile(r"([A-Za-z]+\d+)_")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    output_shape: list[int] | None
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

    models: dict[str, dict[str, Any]]
    runs: dict[str, dict[str, Any]]
    tiles: list[Tile]
    primary: Variant | None
    untrained: Variant | None  # the primary model with random weights, same recipe
    blocks: list[Block]

    @property
    def layers(self) -> list[Layer]:
        return [layer for block in self.blocks for layer in block.layers]

    @property
    def model(self) -> dict[str, Any]:
        return self.models[self.primary.model] if self.primary else {}

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

    def render_commands(self, model: str, weights: str, rows: Iterable[tuple[Layer, list[Tile]]],
                        recipe: str | None = None) -> list[str]:
        """``filter-atlas render`` lines that make these filters, one per layer and settings;
        with ``recipe``, that recipe at its default steps instead of the tiles' own."""
        if weights.startswith("file:"):
            weights = f"path/to/{weights[5:]}"
        weights_args = ["--weights", weights] if weights not in (NOT_RECORDED, "") else []
        lines = []
        for layer, tiles in rows:
            groups: dict[tuple[str, int, int, int], list[int]] = defaultdict(list)
            for t in tiles:
                groups[recipe or t.recipe, t.size, 0 if recipe else t.steps, t.seed].append(t.index)
            for (name, size, steps, seed), indices in sorted(groups.items()):
                chosen = "all" if indices == list(range(layer.filters or -1)) else ",".join(map(str, indices))
                what = ["filter-atlas", "render", "--model", model, *weights_args, "--recipe", name]
                how = ["--layers", layer.name, "--filters", chosen, "--size", str(size), "--seed", str(seed),
                       *(["--steps", str(steps)] if steps else [])]
                lines.append(" ".join(map(shell, what)) + " \\\n    " + " ".join(map(shell, how)))
        return lines

    def reproduce_commands(self, variant: Variant) -> list[str]:
        record = self.models[variant.model]
        return self.render_commands(record["name"], record["weights"],
                                    [(layer, layer.tiles(variant)) for layer in self.layers
                                     if layer.tiles(variant)])

    def recipe_commands(self, recipe: str) -> list[str]:
        """Commands that render the primary filters again with another recipe."""
        if not self.primary:
            return []
        return self.render_commands(self.model["name"], self.model["weights"],
                                    [(layer, layer.tiles(self.primary)) for layer in self.layers
                                     if layer.tiles(self.primary)], recipe)

    def missing_untrained(self) -> list[str]:
        """Commands that render the untrained twins of the primary filters that lack one."""
        if not self.primary:
            return []
        have = {(t.layer, t.index) for t in self.variant_tiles(self.untrained)}
        rows = [(layer, [t for t in layer.tiles(self.primary) if (t.layer, t.index) not in have])
                for layer in self.layers]
        return self.render_commands(self.model["name"], "random",
                                    [(layer, tiles) for layer, tiles in rows if tiles])

    def chart(self) -> str:
        """The progression chart over the primary variant's layers (and their untrained twins)."""
        layers = [layer for layer in self.layers if layer.tiles(self.primary)]
        series_of = [(v, label, css) for v, label, css in
                     ((self.primary, "trained", "fa-trained"), (self.untrained, "untrained", "fa-untrained"))
                     if v]

        def panel(title: str, attr: str) -> Panel:
            return Panel(title, [Series(label, css, [getattr(layer.stats[v], attr) if v in layer.stats
                                                     else None for layer in layers])
                                 for v, label, css in series_of])

        panels = [Panel("Receptive field (px)", [Series("trained", "fa-trained",
                                                        [layer.receptive_field for layer in layers])]),
                  panel("Mean spatial frequency (cycles/px)", "frequency"),
                  panel("Colourfulness", "colourfulness"), panel("Activation / best natural photo", "ratio")]
        return chart_svg([layer.name for layer in layers],
                         [p for p in panels if any(v is not None for s in p.series for v in s.values)])


def read_manifest(atlas_dir: Path) -> dict[str, Any]:
    path = atlas_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AtlasError(f"no manifest at {path}: run 'filter-atlas render' first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AtlasError(f"{path} is not a readable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise AtlasError(f"{path} has an unknown schema")
    return manifest


def build_atlas(manifest: dict[str, Any], atlas_dir: Path, docs_dir: Path) -> Atlas:
    """Arrange the manifest for the pages; checks that every image it lists is inside and present."""
    try:
        prefix = atlas_dir.resolve().relative_to(docs_dir.resolve()).as_posix()
    except ValueError:
        raise AtlasError(f"the atlas {atlas_dir} must be inside the docs directory {docs_dir}") from None
    try:
        return _arrange(manifest, atlas_dir, "" if prefix == "." else prefix + "/")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AtlasError(f"{atlas_dir / MANIFEST}: malformed manifest ({exc!r})") from exc


def _arrange(manifest: dict[str, Any], atlas_dir: Path, prefix: str) -> Atlas:
    entries = manifest["filters"]
    models = {slug_: dict(record) for slug_, record in manifest.get("models", {}).items()}
    for e in entries:  # older manifests have no models section: fill in what the entries tell
        record = models.setdefault(e["model"], {})
        for key, value in (("name", e["model"].removesuffix("-untrained")),
                           ("weights", NOT_RECORDED if e["trained"] else "random"),
                           ("weights_sha256", NOT_RECORDED), ("trained", e["trained"]),
                           ("preprocess", NOT_RECORDED), ("input_size", e["size"]), ("layers", [])):
            record.setdefault(key, value)
    primary = _primary(models, entries)
    untrained = None
    if primary:
        name = models[primary.model]["name"]
        twin = next((s for s in sorted(models) if not models[s]["trained"]
                     and models[s]["name"] == name and s != primary.model), None)
        if twin and any((e["model"], e["recipe"]) == (twin, primary.recipe) for e in entries):
            untrained = Variant(twin, primary.recipe, False)

    # Layers in network order: the primary model's first, then the others', then unlisted ones.
    info: dict[str, dict[str, Any]] = {}
    for slug_ in sorted(models, key=lambda s: (primary is None or s != primary.model, s)):
        for layer in models[slug_]["layers"]:
            info.setdefault(layer["name"], layer)
    names = list(info) + sorted({e["layer"] for e in entries} - set(info))
    used = {e["layer"] for e in entries}
    blocks: dict[str, Block] = {}
    layers: dict[str, Layer] = {}
    for name in (n for n in names if n in used):
        match = _BLOCK.match(name)
        block_name = match.group(1) if match else name
        page = f"{BLOCKS}/{slug(block_name)}.md"
        block = blocks.setdefault(page, Block(block_name, page))
        meta = info.get(name, {})
        layers[name] = Layer(name, slug(name), page, meta.get("filters"), meta.get("output_shape"),
                             meta.get("receptive_field"))
        block.layers.append(layers[name])

    missing: list[str] = []
    grids: dict[tuple[str, Variant], list[Tile]] = defaultdict(list)
    tiles = []
    for e in sorted(entries, key=lambda e: (e["model"], e["layer"], e["recipe"], int(e["index"]))):
        variant = Variant(e["model"], e["recipe"], bool(e["trained"]))
        layer = layers[e["layer"]]
        index = int(e["index"])
        anchor = f"{layer.id}-{index}" if variant == primary else \
            f"{layer.id}-{index}-{slug(variant.model)}-{slug(variant.recipe)}"
        image, file = _asset(atlas_dir, prefix, e["image"], missing)
        thumb, _ = _asset(atlas_dir, prefix, e["thumbnail"], missing)
        tile = Tile(variant.model, layer.name, index, variant.recipe, anchor, layer.page, image, thumb,
                    file, float(e["activation"]), float(e["natural_activation"]), bool(e["dead"]),
                    variant.trained, int(e["steps"]), int(e["size"]), int(e["seed"]))
        tiles.append(tile)
        grids[layer.name, variant].append(tile)
    if missing:
        raise AtlasError(f"{len(missing)} image(s) listed in the manifest are missing, "
                         f"e.g. {atlas_dir / missing[0]}: render again")

    def variant_order(v: Variant) -> tuple:
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
    return Atlas(models, manifest.get("runs", {}), tiles, primary, untrained, list(blocks.values()))


def _primary(models: dict[str, Any], entries: list[dict[str, Any]]) -> Variant | None:
    """The trained model with the most filters (untrained if none), and its most used recipe
    (the default recipe on a tie)."""
    if not entries:
        return None
    counts = Counter(e["model"] for e in entries)
    model = min(counts, key=lambda m: (not models[m]["trained"], -counts[m], m))
    recipes = Counter(e["recipe"] for e in entries if e["model"] == model)
    recipe = min(recipes, key=lambda r: (-recipes[r], r != AtlasSpec.recipe, r))
    return Variant(model, recipe, bool(models[model]["trained"]))


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


def markdown_text(value: object) -> Markup:
    """``value`` as literal text in Markdown: HTML-escaped, Markdown specials backslash-escaped."""
    return escape(_MD_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", str(value))))


def html_twice(value: object) -> Markup:
    """Escaped twice, for attributes that a script inserts as HTML (GLightbox titles)."""
    return escape(str(escape(value)))


def shell(arg: str) -> str:
    """A shell word for ``arg``; control characters use bash's $'...' so a line never breaks."""
    if _CONTROL.search(arg):
        return "$'" + "".join(f"\\x{ord(c):02x}" if _CONTROL.match(c) else "\\" + c if c in "\\'" else c
                              for c in arg) + "'"
    return shlex.quote(arg)


def number(value: float | None, decimals: int | None = None) -> str:
    """``decimals`` places, else about three significant figures; a dash for None."""
    if value is None:
        return "\N{EN DASH}"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("filter_atlas", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(md=markdown_text, html2=html_twice, num=number, slug=slug)
    env.globals.update(compact=COMPACT, max_measured=MAX_MEASURED)
    return env


def render_pages(atlas_dir: Path, docs_dir: Path) -> dict[str, str]:
    """Every page's Markdown, by path relative to ``docs_dir``."""
    atlas = build_atlas(read_manifest(atlas_dir), atlas_dir, docs_dir)
    env = _environment()
    pages = {path: env.get_template(template).render(atlas=atlas, root="")
             for path, template in PAGES.items()}
    gallery = env.get_template("block.md.j2")
    for block in atlas.blocks:
        pages[block.page] = gallery.render(atlas=atlas, block=block, root="../")
    pages[CSS] = resources.files("filter_atlas").joinpath("templates", "filter-atlas.css").read_text("utf-8")
    return pages


def write_pages(atlas_dir: Path, docs_dir: Path) -> tuple[int, int]:
    """Write the pages (only those that changed) and remove stale gallery pages.

    Returns (files written or kept, files changed).
    """
    pages = render_pages(atlas_dir, docs_dir)
    changed = 0
    for rel, text in pages.items():
        path = docs_dir / rel
        data = text.encode("utf-8")
        if not path.is_file() or path.read_bytes() != data:
            atomic_write(path, data)
            path.chmod(0o644)  # published pages: readable by all, like any file in the repository
            changed += 1
    for stale in sorted((docs_dir / BLOCKS).glob("*.md")):
        if f"{BLOCKS}/{stale.name}" not in pages:
            stale.unlink()
            changed += 1
    return len(pages), changed
