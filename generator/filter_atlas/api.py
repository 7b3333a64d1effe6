"""The Python API: ``render(model, objectives, ...)`` and what it returns.

The atlas (``filter-atlas render``) and the keras-vis compatibility layer are built on this.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .engine import backend
from .engine.objectives import Objective, batch_arrays, channel
from .engine.optimize import FAILED_GREY, Renderer, image_rng
from .engine.recipes import Recipe, choose_xla, get_recipe
from .errors import AtlasError
from .models import LoadedModel, Size, as_size, size_text

MAX_STEPS_ENV = "FILTER_ATLAS_MAX_STEPS"
# The compiled renderers of each loaded model, by shape of work; dropped with the model.
_RENDERERS: weakref.WeakKeyDictionary[LoadedModel, dict[tuple, Renderer]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class RenderResult:
    """What ``render`` returns, one row per image, in order (objective by objective, n each).

    Attributes:
        images: (N, height, width, channels) uint8, exactly what would be saved; uniform grey
            (128) where ``failed``.
        activations: (N,) each image's own objective, measured on ``images`` (true ReLU, no warp);
            NaN where ``failed``.
        start_activations: (N,) the same objective on each image's (finished) starting point
            (NaN too where a non-finite weight of the model reaches the objective).
        objectives: The objective of each image.
        recipe: The recipe as run (its ``steps`` are the steps actually run).
        failed: (N,) bool, True for each image that a NaN or inf reached (in the weights its
            objective reads, or in its optimization); the other images are what they would be
            without it in the batch.
    """

    images: np.ndarray
    activations: np.ndarray
    start_activations: np.ndarray
    objectives: tuple[Objective, ...]
    recipe: Recipe
    failed: np.ndarray


def capped(recipe: Recipe) -> Recipe:
    """``recipe`` with its steps capped by ``$FILTER_ATLAS_MAX_STEPS`` when that is set.

    Args:
        recipe: The recipe.

    Returns:
        The recipe to run; a cap that is not a positive integer is an AtlasError.
    """
    text = os.environ.get(MAX_STEPS_ENV, "").strip()
    if not text:
        return recipe
    if not text.isdigit() or int(text) <= 0:
        raise AtlasError(f"{MAX_STEPS_ENV} must be a positive integer, got {text!r}")
    return recipe.with_steps(min(recipe.steps, int(text)))


def render(model: LoadedModel, objectives: Objective | Sequence[Objective], n: int = 1,
           recipe: str | Recipe = "lucid", size: int | Size = 224, steps: int | None = None, seed: int = 0,
           *, on_step: Callable[[int], None] | None = None, start: np.ndarray | None = None) -> RenderResult:
    """Optimize images for objectives.

    A list gives ``n`` images per objective; objectives that share a target layer and a template
    (the same terms up to filter indices and weights) are optimized together in one compiled
    batch. A single objective with ``n=K`` gives K images optimized jointly (``diversity``
    couples them; without it they are K seeds). Every random draw is seeded by
    (seed, objective, image), so an image does not depend on what else is rendered.

    Args:
        model: From ``load_model``.
        objectives: One objective or a list (see ``filter_atlas.objectives``).
        n: Images per objective.
        recipe: ``lucid``, ``keras-vis`` or a ``Recipe``.
        size: Image side in pixels, or (height, width).
        steps: Overrides the recipe's steps; ``$FILTER_ATLAS_MAX_STEPS`` caps either.
        seed: Seed of the starts and transforms.
        on_step: Called with the steps done of the batch in progress (every 64 steps).
        start: Starting images (N, height, width, channels) in 0-255 units instead of the seeded ones;
            pixel parameterization only.

    Returns:
        A ``RenderResult``; an image that a NaN or inf reached is marked ``failed``, never passed
        off as a result.
    """
    objs = [objectives] if isinstance(objectives, Objective) else list(objectives)
    if not objs or not all(isinstance(o, Objective) for o in objs):
        raise AtlasError("render needs an objective or a non-empty list of objectives")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise AtlasError(f"n must be a positive integer, got {n!r}")
    if steps is not None and steps <= 0:
        raise AtlasError(f"steps must be positive, got {steps}")
    run = capped(get_recipe(recipe).with_steps(steps))
    size = as_size(size)
    shape = (len(objs) * n, *size, model.channels)
    if start is not None and (run.param.name != "pixel" or start.shape != shape):
        raise AtlasError(f"start images need the pixel parameterization and shape {shape}")
    if start is not None and not np.isfinite(start).all():
        raise AtlasError("start images must be finite (they hold NaN or inf)")
    model.check_size(size)
    for o in objs:
        _validate(model, o, size)
    slots = [(o, g, k) for g, o in enumerate(objs) for k in range(n)]
    batches: dict[tuple, list[int]] = {}
    for i, (o, _, _) in enumerate(slots):
        batches.setdefault((o.layer, o.template()), []).append(i)

    images = np.zeros(shape, dtype="uint8")
    values, starts = np.zeros(len(slots)), np.zeros(len(slots))
    finite = np.zeros(len(slots), dtype=bool)
    for (layer, template), members in batches.items():
        chosen = [slots[i] for i in members]
        optimized = [o - run.penalty if run.penalty is not None else o for o, _, _ in chosen]
        renderer = _renderer(model, layer, optimized[0].template(), run, size)
        groups = [g for _, g, _ in chosen]
        state, warps = renderer.start([image_rng(seed, o.seed_words(), k) for o, _, k in chosen],
                                      None if start is None else start[members])
        start_images, _ = renderer.finish(state[0])
        state = renderer.optimize(state, warps, batch_arrays(optimized, groups), on_step)
        done, finite[members] = renderer.finish(renderer.result(state))
        plain = batch_arrays([o for o, _, _ in chosen], groups)
        images[members] = done
        values[members] = renderer.measure(done, template, plain)
        starts[members] = renderer.measure(start_images, template, plain)
    failed = ~(finite & np.isfinite(values))
    values[failed] = np.nan
    images[failed] = FAILED_GREY
    return RenderResult(images, values, starts, tuple(o for o, _, _ in slots), run, failed)


def score(model: LoadedModel, objective: Objective, images: np.ndarray) -> np.ndarray:
    """The objective on each uint8 image (true ReLU, no warp); the images form one group.

    Args:
        model: From ``load_model``.
        objective: The objective.
        images: (N, H, W, channels) uint8.

    Returns:
        (N,) float64.
    """
    size = images.shape[1:3]
    _validate(model, objective, size)
    renderer = _renderer(model, objective.layer, objective.template(), get_recipe("lucid"), size)
    arrays = batch_arrays([objective] * len(images), [0] * len(images))
    return renderer.measure(images, objective.template(), arrays)


def gradient(model: LoadedModel, objective: Objective, images: np.ndarray) -> np.ndarray:
    """The gradient of the objective on each uint8 image (true ReLU, no warp) with respect to its
    pixels: where, and how strongly, the image's pixels move the objective.

    Args:
        model: From ``load_model``.
        objective: The objective.
        images: (N, H, W, channels) uint8; the images form one group.

    Returns:
        (N, H, W, channels) float64, per 0-255 pixel unit.
    """
    size = images.shape[1:3]
    _validate(model, objective, size)
    renderer = _renderer(model, objective.layer, objective.template(), get_recipe("lucid"), size)
    arrays = batch_arrays([objective] * len(images), [0] * len(images))
    return renderer.gradient(images, objective.template(), arrays)


def channel_means(model: LoadedModel, layer: str, images: np.ndarray) -> np.ndarray:
    """Mean activation (after ReLU) of every filter of ``layer`` for each uint8 image.

    Args:
        model: From ``load_model``.
        layer: A conv layer's name.
        images: (N, H, W, channels) uint8.

    Returns:
        (N, filters) float64.
    """
    probe = channel(layer, 0)
    size = images.shape[1:3]
    _validate(model, probe, size)
    renderer = _renderer(model, layer, probe.template(), get_recipe("lucid"), size)
    return renderer.channel_means(images)


def compiled(model: LoadedModel, layer: str, recipe: Recipe, size: int | Size) -> Recipe:
    """``recipe`` with its compile mode decided for ``layer`` at ``size`` (``choose_xla``): what
    renders, and what the cache key records.

    Args:
        model: From ``load_model``.
        layer: The target conv layer.
        recipe: The recipe.
        size: Image side in pixels, or (height, width).

    Returns:
        The recipe with ``xla`` set.
    """
    (conv,) = model.resolve_layers((layer,), size)
    h, w = as_size(size)
    return replace(recipe, xla=choose_xla(recipe, backend.name(), conv.cost / (h * w)))


def _renderer(model: LoadedModel, layer: str, template: tuple, recipe: Recipe, size: int | Size) -> Renderer:
    """The compiled renderer for this shape of work, built once per model."""
    size = as_size(size)
    recipe = compiled(model, layer, recipe, size)
    key = (layer, template, replace(recipe, name=""), size)
    built = _RENDERERS.setdefault(model, {})
    if key not in built:
        built[key] = Renderer(*model.truncate(layer), model.preprocess_fn(), template, recipe, size)
    return built[key]


def _validate(model: LoadedModel, objective: Objective, size: int | Size) -> None:
    """Every term names a conv layer of the model, a filter it has and a position inside it."""
    (layer,) = model.resolve_layers((objective.layer,), size)
    h, w = layer.output_shape[:2]
    for _, term in objective.terms:
        if term.index is not None and not 0 <= term.index < layer.filters:
            raise AtlasError(
                f"filter index {term.index} out of range for {layer.name} (0..{layer.filters - 1})")
        for name, value, limit in (("x", term.x, w), ("y", term.y, h)):
            if value is not None and not 0 <= value < (limit or 1):
                raise AtlasError(
                    f"neuron {name}={value} is outside {layer.name}'s {h}x{w} output at {size_text(size)} px")
