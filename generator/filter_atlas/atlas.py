"""Orchestration: spec -> model -> engine -> store, with progress and skipping of fresh filters and views."""

from __future__ import annotations

import hashlib
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import __version__
from . import views as views_
from .api import capped, compiled, score
from .api import render as render_images
from .engine import backend
from .engine.objectives import channel, diversity
from .engine.recipes import Recipe, get_recipe
from .examples import CACHE_VERSION, ExamplesResult, find_examples
from .models import ConvLayer, LoadedModel, Size, load_model, receptive_geometry
from .naturals import ImageSet, bundled_set, folder_set
from .shards import Shard, partition, plan_digest
from .spec import AtlasSpec, as_size
from .store import LISTED, Store, digest

ENGINE_VERSION = 3  # bump when a code change alters rendered pixels


@dataclass(frozen=True)
class Summary:
    rendered: int
    skipped: int
    dead: int
    manifest: Path


OPEN_MODELS = 4  # loaded models a process keeps, with their compiled steps
_open: OrderedDict[tuple, LoadedModel] = OrderedDict()


def open_model(spec: AtlasSpec) -> LoadedModel:
    """The spec's model, loaded once per process while its files stay unchanged (path, size and
    modification time), so that repeated renders in one process (Python, tests) reuse its
    compiled steps; the least recently used of more than ``OPEN_MODELS`` is dropped."""
    key = (spec.model, spec.weights, spec.seed, spec.preprocess, backend.name(),
           _file_state(spec.model), _file_state(spec.weights))
    if key not in _open:
        _open[key] = load_model(spec.model, spec.weights, spec.seed, spec.preprocess)
        if len(_open) > OPEN_MODELS:
            _open.popitem(last=False)
    _open.move_to_end(key)
    return _open[key]


def _file_state(name: str) -> tuple | None:
    """What tells a changed file: resolved path, size and modification time; None if not a file."""
    path = Path(name)
    if not path.is_file():
        return None
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def pick(spec: AtlasSpec, layer: ConvLayer) -> list[int]:
    """The filters of ``layer`` the spec selects; what may surprise is said in one line each."""
    for note in spec.selection.notes(layer.name, layer.filters):
        print(f"filter-atlas: {note}", file=sys.stderr)
    return spec.selection.pick(layer.name, layer.filters, spec.seed)


def weights_label(loaded: LoadedModel) -> str:
    """How the manifest names the weights: 'imagenet', 'random' or 'file:<name>'."""
    if loaded.weights in ("imagenet", "random"):
        return loaded.weights
    return f"file:{Path(loaded.weights).name}"


def weights_file_sha256(loaded: LoadedModel) -> str | None:
    """sha256 of the file the weights were read from; None for 'imagenet' and 'random'."""
    if loaded.weights in ("imagenet", "random"):
        return None
    sha = hashlib.sha256()
    with open(loaded.weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def size_fields(size: Size, height: str = "size", width: str = "width") -> dict:
    """A size as manifest fields: the height, and the width only when it differs."""
    return {height: size[0], **({width: size[1]} if size[1] != size[0] else {})}


def model_record(loaded: LoadedModel, size: Size) -> dict:
    """What the manifest says about a model: weights, preprocessing and its conv layers."""
    return {
        "name": loaded.name,
        "source": loaded.source,
        "weights": weights_label(loaded),
        "weights_sha256": loaded.weights_sha256,
        "weights_file_sha256": weights_file_sha256(loaded),
        "trained": loaded.trained,
        "preprocess": loaded.preprocess,
        **size_fields(size, "input_size", "input_width"),
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
              size: int | Size, seed: int, backend_name: str, view: dict | None = None) -> str:
    """The key of one filter's image (or of one of its views): a hash of everything that shapes
    its pixels.

    The recipe enters through its parts' keys (``Recipe.key``); the device does not (an atlas
    rendered on a GPU stays fresh for CPU users of the same backend). ``view`` (the view's name,
    objective and image count) is absent for the channel view, whose key is the filter's.
    """
    return digest({
        "engine": ENGINE_VERSION, "model": model, "weights": weights_sha256, "preprocess": preprocess,
        "layer": layer, "index": index, "recipe": recipe.key(), "size": _size_key(size), "seed": seed,
        "backend": backend_name, **({"view": view} if view else {}),
    })


Job = tuple[ConvLayer, list[int]]  # a fixed batch: one layer's filters rendered together


class _Progress:
    """One progress bar over the steps of one pass; ``advancer(images)`` gives a batch's ``on_step``."""

    def __init__(self, total: int, desc: str, quiet: bool):
        self.bar = tqdm(total=total, desc=desc, unit="step", disable=quiet or not total, dynamic_ncols=True)

    def advancer(self, images: int):
        done = [0]

        def advance(step: int) -> None:
            self.bar.update(images * (step - done[0]))
            done[0] = step

        return advance

    def close(self) -> None:
        self.bar.close()


def render(spec: AtlasSpec, quiet: bool = False, force: bool = False, shard: Shard | None = None) -> Summary:
    """Render every filter and view the spec selects that the store does not hold fresh (all if
    ``force``), after measuring the natural image set (cached per image).

    With ``shard``, only that shard's share of the batches (see ``shards.partition``).
    """
    recipe = capped(replace(get_recipe(spec.recipe), precision=spec.precision).with_steps(spec.steps))
    loaded = open_model(spec)
    size = spec.size or loaded.default_size()
    layers = loaded.resolve_layers(spec.layers, size)
    views_size = spec.views_size or size
    if views_size != size:
        loaded.resolve_layers(spec.layers, views_size)
    image_set = folder_set(spec.examples) if spec.examples is not None else bundled_set()
    selected = [(layer, pick(spec, layer)) for layer in layers]
    store = Store(spec.out)  # only now, when the input is known to be good, touch the disk
    store.repair_thumbnails()  # a thumbnail lost or damaged since: rebuilt from its image
    store.describe_model(loaded.slug, model_record(loaded, size))
    run = run_record()

    # The recipe as it runs (its compile mode) per layer and size, decided once.
    as_run = {(layer.name, at): compiled(loaded, layer.name, recipe, at)
              for layer in layers for at in {size, views_size}}

    def key(layer: str, index: int, view: str = "channel", scale: float = 1.0) -> str:
        at = size if view == "channel" else views_size
        extra = None if view == "channel" else {
            "name": view, "objective": views_.objective(view, layer, index, scale).key(),
            "n": views_.images_per_filter(view)}
        return cache_key(loaded.slug, loaded.weights_sha256, loaded.preprocess, layer, index,
                         as_run[layer, at], at, spec.seed, backend.name(), extra)

    # Batches are fixed groups of the layer's selection, never "whatever is pending": an image
    # then never depends on which other filters were fresh, or on sharding, so a resumed or
    # sharded run gives the same bytes. A shard renders every view of the batches it owns.
    jobs: list[Job] = [(layer, chosen[i : i + spec.batch])
                       for layer, chosen in selected for i in range(0, len(chosen), spec.batch)]
    if shard is not None:
        owner = partition([len(g) * recipe.steps * layer.cost for layer, g in jobs], shard.count)
        store.mark_shard({"index": shard.index, "count": shard.count,
                          "plan": plan_digest([key(layer.name, i) for layer, g in jobs for i in g])})
        jobs = [job for job, o in zip(jobs, owner, strict=True) if o == shard.index - 1]

    # The natural set: measured (from the per-image cache) only when something needs it.
    set_key = _set_key(image_set, size, loaded.channels)

    def examples_key(layer: str, index: int) -> str:
        return digest({"model": loaded.slug, "weights": loaded.weights_sha256,
                       "preprocess": loaded.preprocess, "layer": layer, "index": index,
                       "size": _size_key(size),
                       "k": views_.EXAMPLES_K, "set": set_key, "version": CACHE_VERSION})

    stale = [(layer, group) for layer, group in jobs if force or not all(
        store.fresh(loaded.slug, layer.name, i, recipe.name, key(layer.name, i)) for i in group)]
    examples = [(layer, group) for layer, group in jobs if "examples" in spec.views and (force or not all(
        store.view_fresh((loaded.slug, layer.name, i, recipe.name), "examples", examples_key(layer.name, i))
        for i in group))]
    new_set = store.naturals is None or store.naturals.key != set_key
    naturals = _naturals(loaded, store, jobs, image_set, size, set_key, quiet) \
        if stale or examples or new_set else None
    if naturals is not None and new_set:  # fresh pixels, another natural set: update the numbers
        for layer, group in jobs:
            for i in group:
                if store.entry((loaded.slug, layer.name, i, recipe.name)) is not None:
                    store.set_natural_activation((loaded.slug, layer.name, i, recipe.name),
                                                 round(float(naturals.filters[layer.name, i].best_mean), 4))
    rendered, dead = _render_channels(spec, size, loaded, store, stale, recipe, key, run, naturals, quiet)
    skipped = sum(len(g) for _, g in jobs) - rendered
    for view in (v for v in views_.RENDERED if v in spec.views):
        _render_view(view, spec, views_size, loaded, store, jobs, recipe, key, run, quiet, force)
    for layer, group in examples:
        _write_examples(loaded, store, layer, group, recipe.name, naturals, size, examples_key)
    store.save()
    return Summary(rendered, skipped, dead, spec.out / "manifest.json")


def _size_key(size: int | Size) -> int | list[int]:
    """A size in a cache key: the side of a square (as keys had it before non-square sizes)."""
    h, w = as_size(size)
    return h if h == w else [h, w]


def _set_key(image_set: ImageSet, size: Size, channels: int) -> str:
    """What the natural numbers depend on besides the model: the images' names and contents, and
    the size (and, for grayscale, the channels) they are measured at."""
    images = [(n.name, hashlib.sha256(Path(n.path).read_bytes()).hexdigest()) for n in image_set.sources]
    extra = {"channels": channels} if channels != 3 else {}
    return digest({"size": _size_key(size), **extra, "images": images})


def _naturals(loaded: LoadedModel, store: Store, jobs: list[Job], image_set: ImageSet, size: Size,
              set_key: str, quiet: bool) -> ExamplesResult:
    """The natural set measured for every filter of ``jobs`` (cached per image), recorded in the
    store; it gives each filter's best natural activation and its examples."""
    wanted: dict[str, list[int]] = {}
    for layer, group in jobs:
        wanted.setdefault(layer.name, []).extend(group)
    result = find_examples(loaded, wanted, image_set, size, k=views_.EXAMPLES_K, progress=not quiet)
    unreadable = set(result.skipped)
    used = [n for n in image_set.sources if n.name not in unreadable]
    store.set_naturals({
        "name": image_set.name, "description": image_set.description, **size_fields(size), "key": set_key,
        "count": len(used),
        "skipped": len(result.skipped),
        "images": [{"name": n.name, "source": n.source, "licence": n.licence}
                   for n in used] if len(used) <= LISTED else [],
    })
    return result


def _render_channels(spec: AtlasSpec, size: Size, loaded: LoadedModel, store: Store, stale: list[Job],
                     recipe: Recipe, key, run: dict, naturals: ExamplesResult | None, quiet: bool
                     ) -> tuple[int, int]:
    """The channel view (the filter's entry) of the ``stale`` batches; returns (rendered, dead)."""
    best = {k: round(float(v.best_mean), 4) for k, v in naturals.filters.items()} if naturals else {}
    rendered = dead = 0
    progress = _Progress(sum(len(g) for _, g in stale) * recipe.steps, "channel", quiet)
    for layer, group in stale:
        began = time.perf_counter()
        result = render_images(loaded, [channel(layer.name, i) for i in group], recipe=recipe,
                               size=size, seed=spec.seed, on_step=progress.advancer(len(group)))
        seconds = (time.perf_counter() - began) / len(group)
        entries = []
        for index, image, start, activation in zip(group, result.images, result.start_activations,
                                                   result.activations, strict=True):
            paths = store.paths(loaded.slug, layer.name, index, recipe.name)
            is_dead = bool(activation <= 0.0)
            dead += is_dead
            entries.append(({
                "model": loaded.slug, "layer": layer.name, "index": index,
                "image": paths[0], "thumbnail": paths[1], "recipe": recipe.name,
                "steps": recipe.steps, **size_fields(size), "seed": spec.seed,
                "start_activation": round(float(start), 4),
                "activation": round(float(activation), 4),
                "natural_activation": best[layer.name, index],
                "dead": is_dead, "trained": loaded.trained,
                "seconds": round(seconds, 3), "key": key(layer.name, index),
                **({"precision": recipe.precision} if recipe.precision != "float32" else {}),
            }, image))
        store.put(run, entries)
        rendered += len(group)
        _log(quiet, f"{loaded.slug} {layer.name} channel", group, result.activations, seconds)
    progress.close()
    return rendered, dead


def _render_view(view: str, spec: AtlasSpec, size: Size, loaded: LoadedModel, store: Store, jobs: list[Job],
                 recipe: Recipe, key, run: dict, quiet: bool, force: bool) -> None:
    """One extra view (negative, neuron or diversity) of every filter of ``jobs`` not held fresh."""
    n = views_.images_per_filter(view)

    def scale(layer: str, index: int) -> float:
        entry = store.entry((loaded.slug, layer, index, recipe.name))
        return views_.diversity_scale(None if entry is None or entry.dead else entry.activation)

    stale = [(layer, group) for layer, group in jobs if force or not all(
        store.view_fresh((loaded.slug, layer.name, i, recipe.name), view,
                         key(layer.name, i, view, scale(layer.name, i))) for i in group)]
    progress = _Progress(sum(len(g) for _, g in stale) * n * recipe.steps, view, quiet)
    for layer, group in stale:
        scales = [scale(layer.name, i) for i in group]
        began = time.perf_counter()
        objectives = [views_.objective(view, layer.name, i, s) for i, s in zip(group, scales, strict=True)]
        result = render_images(loaded, objectives, n=n, recipe=recipe, size=size, seed=spec.seed,
                               on_step=progress.advancer(len(group) * n))
        seconds = (time.perf_counter() - began) / len(group)
        geometry = _centre(loaded, layer.name, size) if view == "neuron" else None
        for k, (index, s) in enumerate(zip(group, scales, strict=True)):
            identity = (loaded.slug, layer.name, index, recipe.name)
            images = result.images[k * n : (k + 1) * n]
            common = {**size_fields(size), "steps": result.recipe.steps, "seconds": round(seconds, 3),
                      "key": key(layer.name, index, view, s)}
            paths = store.view_paths(identity, view, n if view == "diversity" else None)
            if view == "diversity":
                activations = score(loaded, channel(layer.name, index), images)
                similarity = float(np.mean(score(loaded, diversity(layer.name), images))) * n / (n - 1)
                shown = [store.with_thumbnail(p, t, img) for (p, t), img in zip(paths, images, strict=True)]
                record = dict(common, images=[p for p, _ in paths], thumbnails=[t for t, _ in shown],
                              activations=[round(float(a), 4) for a in activations],
                              similarity=round(similarity, 4), weight=views_.DIVERSITY_WEIGHT * s)
                files = {rel: img for _, written in shown for rel, img in written.items()}
            else:
                image = images[0]
                sign = -1.0 if view == "negative" else 1.0  # negative: report the pre-activation itself
                record = dict(common, image=paths[0][0],
                              activation=round(sign * float(result.activations[k]), 4),
                              start_activation=round(sign * float(result.start_activations[k]), 4))
                if geometry is not None:
                    box, centre = geometry
                    crop = views_.neuron_crop(size, box)
                    record.update(crop=list(crop), radius90=round(views_.radius90(image, centre), 2))
                    image = image[crop[1] : crop[3], crop[0] : crop[2]]
                record["thumbnail"], files = store.with_thumbnail(*paths[0], image)
            store.put_view(identity, view, record, files, run)
        store.save()
        _log(quiet, f"{loaded.slug} {layer.name} {view}", group,
             result.activations[::n], seconds)
    progress.close()


Box = tuple[int, int, int, int]


def _centre(loaded: LoadedModel, layer: str, size: Size) -> tuple[Box, tuple[float, float]]:
    """The receptive-field box of ``layer``'s centre position at ``size``, and its centre (x, y)."""
    (conv,) = loaded.resolve_layers((layer,), size)
    geometry = receptive_geometry(loaded.model, size)[conv.name]
    output = (int(conv.output_shape[0]), int(conv.output_shape[1]))
    return views_.centre_box(size, output, geometry), views_.box_centre(output, geometry)


def _write_examples(loaded: LoadedModel, store: Store, layer: ConvLayer, group: list[int], recipe: str,
                    naturals: ExamplesResult, size: Size, key) -> None:
    """The examples view of the filters of one batch."""
    for index in group:
        identity = (loaded.slug, layer.name, index, recipe)
        found = naturals.filters[layer.name, index]
        files, record = {}, {"set": naturals.set.name, **size_fields(size), "key": key(layer.name, index)}
        for side in ("top", "bottom"):
            patches = getattr(found, side)
            paths = store.view_paths(identity, f"examples-{side}", len(patches))
            record[side] = [{"source": p.source, "box": list(p.box), "activation": round(p.activation, 4),
                             "image": path} for p, (path, _) in zip(patches, paths, strict=True)]
            files.update({path: p.image for p, (path, _) in zip(patches, paths, strict=True)})
        store.put_view(identity, "examples", record, files)
    store.save()


def _log(quiet: bool, what: str, group: list[int], values, seconds: float) -> None:
    """With ``--quiet``, one line per batch instead of the progress bars."""
    if quiet:
        acts = ", ".join(f"#{i}={a:.1f}" for i, a in zip(group, values, strict=True))
        print(f"{what}: {acts} ({seconds:.1f} s/filter)", file=sys.stderr)
