"""The atlas run: spec -> model -> plan -> runner -> store, with what the manifest says about each."""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from . import __version__
from .api import capped, compiled
from .engine import backend
from .engine.recipes import get_recipe
from .errors import AtlasError
from .examples import ExamplesResult, find_examples
from .keys import set_key
from .models import LoadedModel, Size, load_model
from .models.kernels import first_kernels
from .naturals import ImageSet, resolve_set
from .plan import Layer, Model, Plan, plan
from .runner import Runner
from .shards import Shard
from .spec import AtlasSpec
from .store import (
    LISTED,
    ConvLayerRecord,
    KernelsRecord,
    ModelRecord,
    NaturalImageRecord,
    NaturalSetRecord,
    RunRecord,
    Store,
)
from .store import finite as finite_value
from .views import OPTIMIZED
from .views.base import size_fields
from .views.examples import K as EXAMPLES_K


@dataclass(frozen=True)
class Summary:
    rendered: int
    skipped: int
    dead: int
    manifest: Path
    failed: int = 0


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


def model_record(loaded: LoadedModel, size: Size) -> ModelRecord:
    """What the manifest says about a model: weights, preprocessing and its conv layers."""
    from_file = loaded.weights not in ("imagenet", "random")
    file_sha = None
    if from_file:
        sha = hashlib.sha256()
        with open(loaded.weights, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
        file_sha = sha.hexdigest()
    return ModelRecord(
        name=loaded.name, source=loaded.source, weights_sha256=loaded.weights_sha256,
        weights=f"file:{Path(loaded.weights).name}" if from_file else loaded.weights,
        weights_file_sha256=file_sha, trained=loaded.trained, preprocess=loaded.preprocess,
        **size_fields(size, "input_size", "input_width"),
        layers=tuple(ConvLayerRecord(c.name, c.filters, tuple(c.output_shape), c.receptive_field)
                     for c in loaded.conv_layers(size)),
        kernels=kernels_record(loaded))


def kernels_record(loaded: LoadedModel) -> KernelsRecord | None:
    """The first conv layer's kernels, where they act on R, G and B (4 significant digits)."""
    found = first_kernels(loaded)
    if found is None:
        return None
    name, kernel = found
    return KernelsRecord(name, kernel.shape, tuple(float(f"{w:.4g}") for w in kernel.ravel()))


def run_record() -> RunRecord:
    """The software and hardware that render now."""
    return RunRecord(backend.name(), backend.device(), {"filter-atlas": __version__, **backend.versions()})


def facts(spec: AtlasSpec, loaded: LoadedModel, size: Size, views_size: Size, recipe) -> Model:
    """What the plan needs of the loaded model: its spec layers, their costs, picks and compile modes."""
    sizes = dict.fromkeys((size, views_size))
    flags = {views_size: "--views-size", size: "--size"}  # one size for both: --size
    layers = {at: loaded.resolve_layers(spec.layers, at, flags[at]) for at in sizes}
    picks = {}
    for layer in layers[size]:
        for note in spec.selection.notes(layer.name, layer.filters):
            print(f"filter-atlas: {note}", file=sys.stderr)
        picks[layer.name] = spec.selection.pick(layer.name, layer.filters, spec.seed)
    return Model(
        loaded.slug, loaded.weights_sha256, loaded.preprocess, backend.name(),
        tuple(Layer(c.name, c.filters, {at: layers[at][k].cost for at in sizes},
                    {at: layers[at][k].receptive_field for at in sizes})
              for k, c in enumerate(layers[size])),
        picks, {(c.name, at): compiled(loaded, c.name, recipe, at) for at in sizes for c in layers[at]})


def render(spec: AtlasSpec, quiet: bool = False, force: bool = False, shard: Shard | None = None) -> Summary:
    """Render every filter and view the spec selects that the store does not hold fresh (all if
    ``force``), after measuring the natural image set (cached per image).

    With ``shard``, only that shard's share of the batches (see ``shards.partition``).
    """
    recipe = capped(replace(get_recipe(spec.recipe), precision=spec.precision).with_steps(spec.steps))
    loaded = open_model(spec)
    size = spec.size or loaded.default_size()
    views_size = spec.views_size or size
    model = facts(spec, loaded, size, views_size, recipe)
    image_set = resolve_set(None if spec.examples is None else str(spec.examples))
    store = Store(spec.out)  # only now, when the input is known to be good, touch the disk
    store.repair_thumbnails()  # a thumbnail lost or damaged since: rebuilt from its image
    store.describe_model(loaded.slug, model_record(loaded, size))
    the_set = set_key([(n.name, Path(n.path)) for n in image_set.sources], size, loaded.channels)
    todo = plan(spec, model, recipe, size, views_size, the_set, store, force=force, shard=shard)
    if todo.shard is not None:
        if store.filters and store.shard != todo.shard:
            raise AtlasError(f"{spec.out} holds another render's filters ({_held(store)}); render each "
                             "shard into a folder of its own (empty, or this shard's from an earlier run)")
        store.mark_shard(todo.shard)
    found = _naturals(loaded, store, todo, image_set, quiet) if todo.naturals_needed else None
    best = {k: finite_value(v.best_mean) for k, v in found.filters.items()} if found else {}
    if found is not None:  # fresh pixels, perhaps another natural set: update the numbers
        for batch in todo.batches:
            for i in batch.indices:
                identity = (loaded.slug, batch.layer, i, recipe.name)
                if store.entry(identity) is not None:
                    store.set_natural_activation(identity, best[batch.layer, i])
    runner = Runner(loaded, store, todo, store.add_run(run_record()), spec.seed, best, quiet)
    for view in ("channel", *(v for v in OPTIMIZED if v in spec.views)):
        runner.run_view(view)
    for job in todo.examples:
        runner.write_examples(job, found)
    store.save()
    return Summary(runner.rendered, todo.skipped, runner.dead, spec.out / "manifest.json", len(runner.failed))


def _held(store: Store) -> str:
    """What a folder holds, as a refusal names it."""
    label = f"shard {store.shard.index}/{store.shard.count} of plan {store.shard.plan}" if store.shard \
        else "no shard"
    return f"{len(store.filters)} filters, {label}"


def _naturals(loaded: LoadedModel, store: Store, todo: Plan, image_set: ImageSet, quiet: bool
              ) -> ExamplesResult:
    """The natural set measured for every filter of the plan (cached per image), recorded in the
    store; it gives each filter's best natural activation and its examples."""
    wanted: dict[str, list[int]] = {}
    for batch in todo.batches:
        wanted.setdefault(batch.layer, []).extend(batch.indices)
    result = find_examples(loaded, wanted, image_set, todo.size, k=EXAMPLES_K, progress=not quiet)
    unreadable = set(result.skipped)
    used = [n for n in image_set.sources if n.name not in unreadable]
    store.set_naturals(NaturalSetRecord(
        name=image_set.name, description=image_set.description, **size_fields(todo.size), key=todo.set_key,
        count=len(used), skipped=len(result.skipped),
        images=tuple(NaturalImageRecord(n.name, n.source, n.licence, n.label) for n in used)
        if len(used) <= LISTED else ()))
    return result
