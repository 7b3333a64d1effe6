"""The ``filter-atlas render`` commands the pages show: to reproduce each variant, to render the
primary filters with another recipe, and to render their missing untrained twins."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .text import shell

if TYPE_CHECKING:
    from .view import Atlas, Layer, Tile, Variant

NOT_RECORDED = "not recorded"  # a model fact the manifest lacks (then no --weights is shown)


def render_commands(model: str, weights: str, rows: Iterable[tuple[Layer, list[Tile]]],
                    recipe: str | None = None) -> list[str]:
    """``filter-atlas render`` lines that make these filters, one per layer and settings;
    with ``recipe``, that recipe at its default steps instead of the tiles' own."""
    if weights.startswith("file:"):
        weights = f"path/to/{weights[5:]}"
    weights_args = ["--weights", weights] if weights not in (NOT_RECORDED, "") else []
    lines = []
    for layer, tiles in rows:
        groups: dict[tuple[str, int, int, int, tuple[str, ...]], list[int]] = defaultdict(list)
        for t in tiles:
            views = ("--views", "channel") if recipe else _views(t)
            groups[recipe or t.recipe, t.size, 0 if recipe else t.steps, t.seed, views].append(t.index)
        for (name, size, steps, seed, views), indices in sorted(groups.items()):
            chosen = "all" if indices == list(range(layer.filters or -1)) else ",".join(map(str, indices))
            what = ["filter-atlas", "render", "--model", model, *weights_args, "--recipe", name]
            how = ["--layers", layer.name, "--filters", chosen, "--size", str(size), "--seed", str(seed),
                   *(["--steps", str(steps)] if steps else []), *views]
            lines.append(" ".join(map(shell, what)) + " \\\n    " + " ".join(map(shell, how)))
    return lines


def _views(t: Tile) -> tuple[str, ...]:
    """The ``--views`` (and ``--views-size``) arguments that make the views ``t`` has."""
    u = t.unit
    if u is None:
        return ("--views", "channel")
    names = ["channel", *(name for name, has in (("negative", u.negative), ("neuron", u.neuron),
                                                   ("diversity", u.diverse), ("examples", u.top)) if has)]
    size = ("--views-size", str(u.views_size)) if u.views_size and u.views_size != t.size else ()
    return ("--views", ",".join(names), *size)


def reproduce_commands(atlas: Atlas, variant: Variant) -> list[str]:
    """Commands that render every filter of ``variant`` again, with its own settings."""
    record = atlas.models[variant.model]
    return render_commands(record.name, record.weights, _rows(atlas, variant))


def recipe_commands(atlas: Atlas, recipe: str) -> list[str]:
    """Commands that render the primary filters again with another recipe."""
    if atlas.model is None:
        return []
    return render_commands(atlas.model.name, atlas.model.weights, _rows(atlas, atlas.primary), recipe)


def missing_untrained(atlas: Atlas) -> list[str]:
    """Commands that render the untrained twins of the primary filters that lack one."""
    if atlas.model is None:
        return []
    have = {(t.layer, t.index) for t in atlas.variant_tiles(atlas.untrained)}
    return render_commands(atlas.model.name, "random",
                           _rows(atlas, atlas.primary, lambda t: (t.layer, t.index) not in have))


def _rows(atlas: Atlas, variant: Variant | None,
          keep: Callable[[Tile], bool] = lambda _: True) -> list[tuple[Layer, list[Tile]]]:
    """Each layer with its tiles of ``variant`` that ``keep`` accepts, where there are any."""
    rows = [(layer, [t for t in layer.tiles(variant) if keep(t)]) for layer in atlas.layers]
    return [(layer, tiles) for layer, tiles in rows if tiles]
