"""The ``filter-atlas render`` commands the pages show: to reproduce each variant, to render the
primary filters with another recipe, and to render their missing untrained twins."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .text import shell

if TYPE_CHECKING:
    from ..store import ModelRecord
    from .arrangement import Arrangement, GalleryLayer
    from .tiles import Tile, Variant

NOT_RECORDED = "not recorded"  # a model fact the manifest lacks (then no --weights is shown)


def model_args(record: ModelRecord, weights: str | None = None) -> list[str]:
    """``--model`` and ``--weights`` arguments that load this model again: a file model by the path
    it was rendered from; weights known to be ImageNet's by the default (Keras' download, or
    $FILTER_ATLAS_WEIGHTS offline), a separate weights file by its name."""
    weights = record.weights if weights is None else weights
    out = ["--model", record.source if record.from_file else record.name]
    if weights == "random":
        out += ["--weights", "random"]
    elif weights.startswith("file:") and record.trained is not True and not \
            (record.from_file and weights[5:] == record.source.replace("\\", "/").rsplit("/", 1)[-1]):
        out += ["--weights", weights[5:]]
    return out


def render_commands(record: ModelRecord, rows: Iterable[tuple[GalleryLayer, list[Tile]]],
                    recipe: str | None = None, weights: str | None = None) -> list[str]:
    """``filter-atlas render`` lines that make these filters, one per layer and settings;
    with ``recipe``, that recipe at its default steps instead of the tiles' own."""
    lines = []
    for layer, tiles in rows:
        groups: dict[tuple[str, int, int, int, tuple[str, ...], str], list[int]] = defaultdict(list)
        for t in tiles:
            views = ("--views", "channel") if recipe else _views(t)
            steps, precision = (0, "") if recipe else (t.steps, t.precision or "")
            groups[recipe or t.recipe, t.size, steps, t.seed, views, precision].append(t.index)
        for (name, size, steps, seed, views, precision), indices in sorted(groups.items()):
            chosen = "all" if indices == list(range(layer.filters or -1)) else ",".join(map(str, indices))
            side = f"{size}x{record.input_width}" if record.input_width else str(size)
            what = ["filter-atlas", "render", *model_args(record, weights), "--recipe", name]
            how = ["--layers", layer.name, "--filters", chosen, "--size", side, "--seed", str(seed),
                   *(["--steps", str(steps)] if steps else []), *views,
                   *(["--precision", precision] if precision else [])]
            lines.append(" ".join(map(shell, what)) + " \\\n    " + " ".join(map(shell, how)))
    return lines


def _views(t: Tile) -> tuple[str, ...]:
    """The ``--views`` (and ``--views-size``) arguments that make the views ``t`` has."""
    u = t.unit
    size = ("--views-size", str(u.views_size)) if u and u.views_size and u.views_size != t.size else ()
    return ("--views", ",".join(t.views), *size)


def reproduce_commands(atlas: Arrangement, variant: Variant) -> list[str]:
    """Commands that render every filter of ``variant`` again, with its own settings."""
    return render_commands(atlas.models[variant.model], _rows(atlas, variant))


def recipe_commands(atlas: Arrangement, recipe: str) -> list[str]:
    """Commands that render the primary filters again with another recipe."""
    if atlas.model is None:
        return []
    return render_commands(atlas.model, _rows(atlas, atlas.primary), recipe)


def missing_untrained(atlas: Arrangement) -> list[str]:
    """Commands that render the untrained twins of the primary filters that lack one (a
    keras.applications model's: a model file has no seeded random twin)."""
    if atlas.model is None or atlas.model.from_file:
        return []
    have = {(t.layer, t.index) for t in atlas.variant_tiles(atlas.untrained)}
    return render_commands(atlas.model, _rows(atlas, atlas.primary, lambda t: (t.layer, t.index) not in have),
                           weights="random")


def _rows(atlas: Arrangement, variant: Variant | None,
          keep: Callable[[Tile], bool] = lambda _: True) -> list[tuple[GalleryLayer, list[Tile]]]:
    """Each layer with its tiles of ``variant`` that ``keep`` accepts, where there are any."""
    rows = [(layer, [t for t in layer.tiles(variant) if keep(t)]) for layer in atlas.layers]
    return [(layer, tiles) for layer, tiles in rows if tiles]
