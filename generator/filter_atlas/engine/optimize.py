"""Render many filters of one layer together: one image per filter in one batch, one compiled step."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from . import backend, objectives, transforms
from .param import make_param
from .recipes import Recipe

_EPS = 1e-7


@dataclass(frozen=True)
class Rendered:
    """The outcome for one filter."""

    index: int
    image: np.ndarray  # (size, size, 3) uint8, exactly what is saved
    start_activation: float  # objective on the (finished) starting image
    activation: float  # objective on the saved image


def filter_rng(seed: int, layer: str, index: int) -> np.random.Generator:
    """The generator behind one filter's start and warps: the same whatever else is rendered."""
    return np.random.default_rng([seed, zlib.crc32(layer.encode()), index])


class LayerRenderer:
    """Compiled optimization and measurement for one truncated model and recipe."""

    def __init__(self, trunk: keras.Model, conv: keras.layers.Conv2D, preprocess: Callable,
                 recipe: Recipe, size: int):
        """``trunk`` maps model inputs to the input of ``conv``, the target layer."""
        self.recipe = recipe
        self.size = size
        self.param = make_param(recipe.parameterization, size)
        self._weights = (
            [v.value for v in trunk.trainable_variables],
            [v.value for v in trunk.non_trainable_variables],
            conv.kernel.value,
            conv.bias.value if conv.use_bias else None,
        )
        self._trunk = trunk
        self._conv = conv
        self._preprocess = preprocess
        self._step = backend.jit(self._make_step(), recipe.xla)
        self._channel_means = backend.jit(self._all_channel_means)

    def _features(self, x, weights):
        """The target layer's input for model input ``x``."""
        features, _ = self._trunk.stateless_call(weights[0], weights[1], x)
        return features

    def _all_channel_means(self, images01, weights):
        features = self._features(self._preprocess(images01), weights)
        preact = objectives.preact(features, self._conv, *weights[2:])
        return objectives.channel_mean(ops.relu(preact))

    def _make_step(self) -> Callable:
        r = self.recipe

        def loss_fn(params, warp, indices, redirect, weights):
            images = transforms.warp(self.param.to_image(params), warp, r.wrap)
            x = self._preprocess(images)
            maps = objectives.own_filter_preact(self._features(x, weights), self._conv, *weights[2:],
                                                indices)
            per_image = -objectives.channel_activation(maps, redirect)
            if r.lp_weight:
                per_image = per_image + r.lp_weight * objectives.lp_norm(x, r.lp_p)
            if r.tv_weight:
                per_image = per_image + r.tv_weight * objectives.total_variation(x, r.tv_beta)
            return ops.sum(per_image), per_image

        grad_fn = backend.value_and_grad(loss_fn)
        axes = tuple(range(1, len(self._param_shape()) + 1))

        def step(state, t, warp, indices, weights):
            params, m, v, best, best_loss = state
            (_, per_image), g = grad_fn(params, warp, indices, t <= r.redirect_steps, weights)
            if r.normalize_grads:
                g = g / (ops.sqrt(ops.mean(ops.square(g), axis=axes, keepdims=True)) + _EPS)
            if r.optimizer == "adam":  # Kingma & Ba 2015, TF defaults (0.9, 0.999, 1e-8)
                m = 0.9 * m + 0.1 * g
                v = 0.999 * v + 0.001 * ops.square(g)
                m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
                new = params - r.learning_rate * m_hat / (ops.sqrt(v_hat) + 1e-8)
            else:  # keras-vis' RMSProp: cache decay 0.95, unit step
                v = 0.95 * v + 0.05 * ops.square(g)
                new = params - r.learning_rate * g / ops.sqrt(v + _EPS)
            if r.keep_best:
                better = per_image < best_loss
                mask = ops.reshape(better, (-1,) + (1,) * len(axes))
                best = ops.where(mask, params, best)
                best_loss = ops.where(better, per_image, best_loss)
            return new, m, v, best, best_loss

        return step

    def _param_shape(self) -> tuple[int, ...]:
        return self.param.init(np.random.default_rng(0)).shape

    def finish(self, params) -> np.ndarray:
        """Params -> the uint8 images that get saved."""
        images = np.asarray(ops.convert_to_numpy(self.param.to_image(ops.convert_to_tensor(params))))
        if self.recipe.standardize:
            mean = images.mean(axis=(1, 2, 3), keepdims=True)
            std = images.std(axis=(1, 2, 3), keepdims=True)
            images = (images - mean) / (std + 1e-5) * 0.1 + 0.5
        return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype("uint8")

    def channel_means(self, images: np.ndarray) -> np.ndarray:
        """Mean activation (after ReLU) of every filter for each uint8 image: (images, filters)."""
        means = self._channel_means(ops.convert_to_tensor(images.astype("float32") / 255.0),
                                    self._weights)
        return np.asarray(ops.convert_to_numpy(means), dtype="float64")

    def measure(self, images: np.ndarray, indices: Sequence[int]) -> np.ndarray:
        """Objective of each uint8 image for its own filter (image k scores indices[k])."""
        return self.channel_means(images)[np.arange(len(indices)), list(indices)]

    def render(self, layer: str, indices: Sequence[int], seed: int,
               on_step: Callable[[int], None] | None = None) -> list[Rendered]:
        """Optimize one image per filter in ``indices``, all in one batch."""
        r = self.recipe
        rngs = [filter_rng(seed, layer, i) for i in indices]
        params = np.stack([self.param.init(rng) for rng in rngs])
        warps = np.stack([transforms.draw(rng, r, r.steps) for rng in rngs], axis=1)
        start_images = self.finish(params)
        chosen = ops.convert_to_tensor(np.asarray(indices, dtype="int32"))
        p = ops.convert_to_tensor(params)
        zeros = ops.zeros_like(p)
        state = (p, zeros, zeros, p, ops.full((len(indices),), np.inf, dtype="float32"))
        for t in range(r.steps):
            state = self._step(state, ops.convert_to_tensor(np.float32(t + 1)),
                               ops.convert_to_tensor(warps[t]), chosen, self._weights)
            if on_step is not None:
                on_step(t + 1)
        final = state[3] if r.keep_best else state[0]
        images = self.finish(final)
        start = self.measure(start_images, indices)
        achieved = self.measure(images, indices)
        return [
            Rendered(int(i), images[k], float(start[k]), float(achieved[k]))
            for k, i in enumerate(indices)
        ]
