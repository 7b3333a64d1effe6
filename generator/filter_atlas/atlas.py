"""Orchestration: spec -> model -> engine -> store, with progress and skipping of fresh filters."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .api import capped, channel_means, compiled
from .api import render as render_images
from .engine import backend
from .engine.objectives import channel
from .engine.recipes import Recipe, get_recipe
from .models import LoadedModel, load_model
from .naturals import natural_images
from .shards import Shard, partition, plan_digest
from .spec import AtlasSpec
from .store import Store, digest

ENGINE_VERSION = 3  # bump when a code change alters rendered pixels


@dataclass(frozen=True)
class Summary:
    rendered: int
    skipped: int
    dead: int
    manifest: Path


def open_model(spec: AtlasSpec) -> LoadedModel:
    return load_model(spec.model, spec.weights, spec.seed, spec.preprocess)


def weights_label(loaded: LoadedModel) -> str:
    """How the manifest names the weights: 'imagenet', 'random' or 'file:<name>'."""
    if loaded.weights in ("imagenet", "random"):
        return loaded.weights
    return f"file:{Path(loaded.weights).name}"


def model_record(loaded: LoadedModel, size: int) -> dict:
    """What the manifest says about a model: weights, preprocessing and its conv layers."""
    return {
        "name": loaded.name,
        "weights": weights_label(loaded),
        "weights_sha256": loaded.weights_sha256,
        "trained": loaded.trained,
        "preprocess": loaded.preprocess,
        "input_size": size,
        "layers": [
            {"name": c.name, "filters": c.filters, "output_shape": list(c.output_shape),
             "receptive_field": c.receptive_field}
            for c in loaded.conv_layers(size)
        ],
    }


def run_record() -> dict:
    """What the manifest says about the software and hardware that rendered a set of images."""
    return {
        "backend": backend.name(),
        "device": backend.device(),
        "versions": {"filter-atlas": __version__, **backend.versions()},
    }


def cache_key(model: str, weights_sha256: str, preprocess: str, layer: str, index: int, recipe: Recipe,
              size: int, seed: int, backend_name: str) -> str:
    """The key of one filter's image: a hash of everything that shapes its pixels.

    The recipe enters through its parts' keys (``Recipe.key``); the device does not (an atlas
    rendered on a GPU stays fresh for CPU users of the same backend).
    """
    return digest({
        "engine": ENGINE_VERSION, "model": model, "weights": weights_sha256, "preprocess": preprocess,
        "layer": layer, "index": index, "recipe": recipe.key(), "size": size, "seed": seed,
        "backend": backend_name,
    })


def render(spec: AtlasSpec, quiet: bool = False, force: bool = False, shard: Shard | None = None) -> Summary:
    """Render every filter the spec selects that the store does not hold fresh (all if ``force``).

    With ``shard``, only that shard's share of the batches (see ``shards.partition``).
    """
    recipe = capped(get_recipe(spec.recipe).with_steps(spec.steps))
    backend_name = backend.name()
    loaded = open_model(spec)
    layers = loaded.resolve_layers(spec.layers, spec.size)
    selected = [(layer, spec.selection.pick(layer.name, layer.filters, spec.seed)) for layer in layers]
    store = Store(spec.out)  # only now, when the input is known to be good, touch the disk
    store.describe_model(loaded.slug, model_record(loaded, spec.size))
    run = run_record()

    as_run = {layer.name: compiled(loaded, layer.name, recipe, spec.size) for layer in layers}

    def key(layer: str, index: int) -> str:
        return cache_key(loaded.slug, loaded.weights_sha256, loaded.preprocess, layer, index,
                         as_run[layer], spec.size, spec.seed, backend_name)

    # Batches are fixed groups of the layer's selection, never "whatever is pending": an image
    # then never depends on which other filters were fresh, or on sharding, so a resumed or
    # sharded run gives the same bytes.
    jobs = [(layer, chosen[i : i + spec.batch])
            for layer, chosen in selected for i in range(0, len(chosen), spec.batch)]
    if shard is not None:
        owner = partition([len(g) * recipe.steps * layer.cost for layer, g in jobs], shard.count)
        store.mark_shard({"index": shard.index, "count": shard.count,
                          "plan": plan_digest([key(layer.name, i) for layer, g in jobs for i in g])})
        jobs = [job for job, o in zip(jobs, owner, strict=True) if o == shard.index - 1]
    stale = [(layer, g) for layer, g in jobs if force or not all(
        store.fresh(loaded.slug, layer.name, i, recipe.name, key(layer.name, i)) for i in g)]
    skipped = sum(len(g) for _, g in jobs) - sum(len(g) for _, g in stale)
    plan = [(layer, [g for lay, g in stale if lay is layer]) for layer in layers]
    plan = [(layer, groups) for layer, groups in plan if groups]

    total = sum(len(i) for _, groups in plan for i in groups) * recipe.steps
    rendered = dead = 0
    naturals = natural_images(spec.size) if plan else None
    with tqdm(total=total, desc="atlas", unit="step", disable=quiet or not total,
              dynamic_ncols=True) as overall:
        for layer, groups in plan:
            best_natural = channel_means(loaded, layer.name, naturals).max(axis=0)
            with tqdm(total=sum(map(len, groups)) * recipe.steps, desc=layer.name, unit="step",
                      leave=False, disable=quiet, dynamic_ncols=True) as layer_bar:
                for chunk in groups:
                    began = time.perf_counter()
                    done = [0]

                    def advance(step: int, n: int = len(chunk), done: list[int] = done) -> None:
                        layer_bar.update(n * (step - done[0]))
                        overall.update(n * (step - done[0]))
                        done[0] = step

                    result = render_images(loaded, [channel(layer.name, i) for i in chunk], recipe=recipe,
                                           size=spec.size, seed=spec.seed, on_step=advance)
                    seconds = (time.perf_counter() - began) / len(chunk)
                    entries = []
                    for index, image, start, activation in zip(chunk, result.images, result.start_activations,
                                                               result.activations, strict=True):
                        paths = store.paths(loaded.slug, layer.name, index, recipe.name)
                        is_dead = bool(activation <= 0.0)
                        dead += is_dead
                        entries.append(({
                            "model": loaded.slug, "layer": layer.name, "index": index,
                            "image": paths[0], "thumbnail": paths[1], "recipe": recipe.name,
                            "steps": recipe.steps, "size": spec.size, "seed": spec.seed,
                            "start_activation": round(float(start), 4),
                            "activation": round(float(activation), 4),
                            "natural_activation": round(float(best_natural[index]), 4),
                            "dead": is_dead, "trained": loaded.trained,
                            "seconds": round(seconds, 3), "key": key(layer.name, index),
                        }, image))
                    store.put(run, entries)
                    rendered += len(chunk)
                    if quiet:
                        acts = ", ".join(f"#{i}={a:.1f}"
                                         for i, a in zip(chunk, result.activations, strict=True))
                        print(f"{loaded.slug} {layer.name}: {acts} ({seconds:.1f} s/filter)",
                              file=sys.stderr)
    store.save()
    return Summary(rendered, skipped, dead, spec.out / "manifest.json")
