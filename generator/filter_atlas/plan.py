"""The plan: which filters and views a run renders, in which batches, under which keys.

``plan`` is pure: it reads the spec, the model's facts and the store, and touches neither the
model nor the disk, so tests call it without a model. The runner (``runner``) executes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .engine.recipes import Recipe
from .examples.cache import CACHE_VERSION
from .keys import cache_key, digest, size_key
from .naming import Identity
from .shards import Shard, partition, plan_digest
from .sizes import Size
from .spec import AtlasSpec
from .store import ShardLabel, Store
from .views import OPTIMIZED, VIEWS, Target
from .views.diversity import entry_scale
from .views.examples import K as EXAMPLES_K


@dataclass(frozen=True)
class Layer:
    """What the plan needs of a conv layer: its name and filters, and its cost at each size."""

    name: str
    filters: int
    cost: dict[Size, float]  # multiply-adds of every conv up to it, per image, at each planned size
    receptive: dict[Size, int] = field(default_factory=dict)  # its receptive field (px) at each size


@dataclass(frozen=True)
class Model:
    """What the plan needs of a model (``runner.facts`` gives it from a loaded one)."""

    slug: str
    weights_sha256: str
    preprocess: str
    backend: str
    layers: tuple[Layer, ...]  # the spec's layers, in order
    picks: dict[str, list[int]]  # the selected filters of each layer
    as_run: dict[tuple[str, Size], Recipe]  # the recipe as it runs (compile mode) per layer and size


@dataclass(frozen=True)
class Batch:
    """A fixed group of one layer's selected filters, rendered together.

    Batches never depend on what is pending: an image then never depends on which other filters
    were fresh, or on sharding, so a resumed or sharded run gives the same bytes.
    """

    layer: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class Job:
    """One batch of one view to render: a target per filter (identity, size, key)."""

    view: str
    layer: str
    targets: tuple[Target, ...]


@dataclass
class Plan:
    """Everything a run does, decided before it starts."""

    recipe: Recipe
    size: Size
    views_size: Size
    batches: list[Batch]  # this shard's (all, unsharded)
    set_key: str
    key: Callable[[str, str, int, float], str]  # (view, layer, index, diversity scale) -> cache key
    shard: ShardLabel | None = None
    jobs: list[Job] = field(default_factory=list)  # channel first, then each optimized view
    examples: list[Job] = field(default_factory=list)
    naturals_needed: bool = False  # the natural pass must run (for the channel, examples, or a new set)
    fields: dict[tuple[str, Size], int] = field(default_factory=dict)  # (layer, size) -> receptive field

    @property
    def skipped(self) -> int:
        """Filters of this run whose channel view is fresh."""
        stale = sum(len(j.targets) for j in self.jobs if j.view == "channel")
        return sum(len(b.indices) for b in self.batches) - stale


def examples_key(model: Model, layer: str, index: int, size: Size, set_key: str) -> str:
    """The key of a filter's examples: the model, the filter, the size and the natural set."""
    return digest({"model": model.slug, "weights": model.weights_sha256, "preprocess": model.preprocess,
                   "layer": layer, "index": index, "size": size_key(size), "k": EXAMPLES_K, "set": set_key,
                   "version": CACHE_VERSION})


def plan(spec: AtlasSpec, model: Model, recipe: Recipe, size: Size, views_size: Size, set_key: str,
         store: Store, *, force: bool = False, shard: Shard | None = None) -> Plan:
    """What to render: the stale batches of every view the spec asks for.

    Args:
        spec: The atlas spec (views, seed, batch size).
        model: The model's facts.
        recipe: The recipe, steps capped.
        size: The channel view's size.
        views_size: The other optimized views' size.
        set_key: The natural set's key (``keys.set_key``).
        store: The atlas as it is on disk.
        force: Everything is stale.
        shard: Only this shard's share of the batches (longest first onto the least-loaded shard).

    Returns:
        The plan. Where the channel view is stale, a scaled view's targets (diversity) have no
        scale and no key yet: the weight comes from the channel image about to be made (the runner
        keys them).
    """
    batches = [Batch(layer.name, tuple(chosen[i : i + spec.batch]))
               for layer in model.layers for chosen in [model.picks[layer.name]]
               for i in range(0, len(chosen), spec.batch)]
    cost = {layer.name: layer.cost[size] for layer in model.layers}

    fields = {(layer.name, at): px for layer in model.layers for at, px in layer.receptive.items()}

    def key(view: str, layer: str, index: int, scale: float = 1.0) -> str:
        at = size if view == "channel" else views_size
        as_run = VIEWS[view].fitted(model.as_run[layer, at], fields.get((layer, at)))
        return cache_key(model.slug, model.weights_sha256, model.preprocess, layer, index,
                         as_run, at, spec.seed, model.backend, VIEWS[view].key_part(layer, index, scale))

    out = Plan(recipe, size, views_size, batches, set_key, key, fields=fields)
    if shard is not None:
        owner = partition([len(b.indices) * recipe.steps * cost[b.layer] for b in batches], shard.count)
        out.shard = ShardLabel(shard.index, shard.count,
                               plan_digest([key("channel", b.layer, i) for b in batches for i in b.indices]))
        out.batches = [b for b, o in zip(batches, owner, strict=True) if o == shard.index - 1]

    def identity(layer: str, index: int) -> Identity:
        return model.slug, layer, index, recipe.name

    def stale(view: str, batch: Batch, at: Size, scale=lambda i: 1.0, key_of=None) -> Job | None:
        key_of = key_of or (lambda i: key(view, batch.layer, i, scale(i)))
        targets = tuple(Target(identity(batch.layer, i), at, key_of(i), scale(i)) for i in batch.indices)
        if force or not all(store.view_fresh(t.identity, view, t.key) for t in targets):
            return Job(view, batch.layer, targets)
        return None

    channel = {b: stale("channel", b, size) for b in out.batches}
    out.jobs = [j for j in channel.values() if j]

    def unscaled(layer: str, index: int) -> float:
        return 1.0

    def stored(layer: str, index: int) -> float:  # the channel activation on disk
        return entry_scale(store.entry(identity(layer, index)))

    for view in (v for v in OPTIMIZED if v in spec.views):
        scaled = VIEWS[view].scaled
        scale_of = stored if scaled else unscaled
        for b in out.batches:
            if scaled and channel[b]:  # its weight comes from the channel image to be made
                out.jobs.append(Job(view, b.layer, tuple(Target(identity(b.layer, i), views_size, "", None)
                                                         for i in b.indices)))
            elif job := stale(view, b, views_size, scale=lambda i, b=b, f=scale_of: f(b.layer, i)):
                out.jobs.append(job)
    if "examples" in spec.views:
        out.examples = [j for b in out.batches if (j := stale(
            "examples", b, size, key_of=lambda i, b=b: examples_key(model, b.layer, i, size, set_key)))]
    new_set = store.naturals is None or store.naturals.key != set_key
    out.naturals_needed = bool(out.examples or new_set or any(j.view == "channel" for j in out.jobs))
    return out
