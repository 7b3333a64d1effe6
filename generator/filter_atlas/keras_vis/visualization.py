"""keras-vis' ``vis.visualization``: ``visualize_activation`` and ``get_num_filters``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import keras
import numpy as np

from ..api import render
from ..engine.objectives import Objective, channel, lp_norm, total_variation
from ..engine.recipes import KERAS_VIS
from ..errors import AtlasError
from ..models import LoadedModel, weights_digest
from .input_modifiers import Jitter

_LOADED: dict[tuple[int, float, float], tuple[keras.Model, LoadedModel]] = {}


def get_num_filters(layer: keras.layers.Layer) -> int:
    """Number of filters (output channels) of ``layer``."""
    return int(layer.output.shape[-1])


def visualize_activation(model: keras.Model, layer_idx: int,
                         filter_indices: int | Sequence[int] | None = None,
                         wrt_tensor: Any = None, seed_input: np.ndarray | None = None,
                         input_range: tuple[float, float] = (0, 255), backprop_modifier: Any = None,
                         grad_modifier: Any = None, act_max_weight: float = 1, lp_norm_weight: float = 10,
                         tv_weight: float = 10, max_iter: int = 200,
                         input_modifiers: Sequence[Jitter] | None = None, verbose: bool = False,
                         seed: int = 0) -> np.ndarray:
    """The image that maximizes the mean activation of ``filter_indices`` of conv layer
    ``model.layers[layer_idx]`` (keras-vis 0.5's arguments and defaults).

    Args:
        model: A Keras model taking (H, W, 3) images.
        layer_idx: Index of a Conv2D layer in ``model.layers``.
        filter_indices: One filter index or a list (their activations are summed).
        wrt_tensor, backprop_modifier, grad_modifier: Only keras-vis' defaults (None).
        seed_input: Starting image (H, W, 3) in ``input_range`` units; default grey + noise.
        input_range: The pixel range fed to the model (no other preprocessing).
        act_max_weight, lp_norm_weight, tv_weight: Weights of the activation, L6-norm and
            total-variation terms.
        max_iter: Optimization steps.
        input_modifiers: ``Jitter`` instances (none by default, as in keras-vis 0.5).
        verbose: Ignored (progress is not printed).
        seed: Seed of the start and jitter (filter-atlas addition).

    Returns:
        A uint8 (H, W, 3) image, standardized around grey as keras-vis' ``deprocess_input``; an
        AtlasError where the render failed (``RenderResult.failed``).
    """
    if wrt_tensor is not None or backprop_modifier is not None or grad_modifier is not None:
        raise AtlasError("wrt_tensor, backprop_modifier and grad_modifier are not supported")
    if filter_indices is None:
        raise AtlasError("filter_indices=None is not supported: give a filter index or a list")
    loaded = _loaded(model, input_range)
    size = loaded.default_size() if seed_input is None else tuple(np.shape(seed_input)[:2])
    layer = model.layers[layer_idx].name
    indices = [filter_indices] if np.isscalar(filter_indices) else list(filter_indices)
    objective = act_max_weight * sum((channel(layer, i) for i in indices[1:]), channel(layer, indices[0]))
    penalty = _penalty(lp_norm_weight, tv_weight)
    recipe = replace(KERAS_VIS, name="keras-vis-compat", steps=max_iter, penalty=penalty,
                     transforms=tuple(m.transform(size) for m in input_modifiers or ()))
    start = None
    if seed_input is not None:
        low, high = input_range
        start = (np.asarray(seed_input, dtype="float32")[None] - low) / (high - low) * 255.0
    result = render(loaded, objective, recipe=recipe, size=size, seed=seed, start=start)
    if result.failed[0]:
        raise AtlasError(f"no image for {objective!r}: a NaN or inf in the model's weights or in "
                         "the optimization reached it")
    return result.images[0]


def _penalty(lp_weight: float, tv_weight: float) -> Objective | None:
    terms = [(w, t) for w, t in ((lp_weight, lp_norm(6.0)), (tv_weight, total_variation(2.0))) if w]
    return sum((w * t for w, t in terms[1:]), terms[0][0] * terms[0][1]) if terms else None


def _loaded(model: keras.Model, input_range: tuple[float, float]) -> LoadedModel:
    """``model`` as filter-atlas sees it, fed ``input_range`` pixels; built once per model."""
    low, high = float(input_range[0]), float(input_range[1])
    key = (id(model), low, high)
    if key not in _LOADED or _LOADED[key][0] is not model:
        mode = "raw" if (low, high) == (0.0, 255.0) else f"range:{low},{high}"
        _LOADED[key] = (model, LoadedModel(model=model, name=model.name, weights="in-memory", trained=None,
                                           weights_sha256=weights_digest(model), preprocess=mode,
                                           min_size=1, fixed_size=tuple(model.inputs[0].shape[1:3]),
                                           channels=int(model.inputs[0].shape[-1])))
    return _LOADED[key][1]
