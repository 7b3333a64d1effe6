"""Render a batch of images that share a target layer and an objective template: one compiled step.

Used through ``filter_atlas.render``; the renderer for a (model, layer, template, recipe, size)
is built once and serves every batch of that shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
from keras import ops

from . import backend, objectives, precision, targets, transforms
from .recipes import Recipe

CHUNK = 64  # steps per compiled loop call: the progress callback fires this often
FAILED_GREY = 128  # every pixel of an image that failed (a NaN or inf reached it)


def image_rng(seed: int, words: Sequence[int], image: int) -> np.random.Generator:
    """The generator behind one image's start and warps: the same whatever else is rendered.

    ``words`` come from ``Objective.seed_words()``; image 0 of a lone channel objective keeps
    engine v2's seeding ``[seed, crc32(layer), index]``.
    """
    return np.random.default_rng([seed, *words] + ([image] if image else []))


class Renderer:
    """Compiled optimization and measurement for one truncated model, template and recipe."""

    def __init__(self, trunk: keras.Model, conv: keras.layers.Layer, preprocess: Callable,
                 template: tuple, recipe: Recipe, size: tuple[int, int]):
        """``trunk`` maps model inputs to the input of ``conv``, the target layer; ``template``
        is the optimized objective's (the images' objective plus the recipe's penalty); ``size``
        is (height, width)."""
        self.recipe = recipe
        self.size = size
        self.template = template
        self.param = recipe.param.build(size, int(trunk.inputs[0].shape[-1]))
        self._weights = (
            [v.value for v in trunk.trainable_variables],
            [v.value for v in trunk.non_trainable_variables],
            *targets.contain(conv, targets.weights(conv)),
        )
        self._trunk = trunk
        self._conv = conv
        self._preprocess = preprocess
        self._run = backend.loop(self._make_step(), recipe.xla)
        self._values = {}  # template -> compiled measurement
        self._channel_means = backend.jit(self._all_channel_means)

    def _features(self, x, weights, compute: precision.Precision = "float32"):
        """The target layer's input for model input ``x``, computed in ``compute`` precision and
        returned as float32."""
        with precision.computing_in(self._trunk, compute):
            features, _ = self._trunk.stateless_call(weights[0], weights[1], x)
        return features if compute == "float32" else ops.cast(features, "float32")

    def _all_channel_means(self, images01, weights):
        features = self._features(self._preprocess(images01), weights)
        preact = targets.preact(features, self._conv, weights[2])
        means = objectives.channel_mean(ops.relu(preact))
        return means if weights[3] is None else ops.where(weights[3], float("nan"), means)

    def _objective(self, template, images, indices, coefs, groups, redirect, weights,
                   compute: precision.Precision = "float32"):
        x = self._preprocess(images)
        return objectives.evaluate(template, x, self._features(x, weights, compute), self._conv,
                                   weights[2], weights[3], indices, coefs, groups, redirect)

    def _make_step(self) -> Callable:
        r = self.recipe

        def loss_fn(params, warp, indices, coefs, groups, redirect, weights):
            images = transforms.warp(self.param.to_image(params), warp, r.edge == "wrap")
            per_image = -self._objective(self.template, images, indices, coefs, groups, redirect, weights,
                                         r.precision)
            return ops.sum(per_image), per_image

        grad_fn = backend.value_and_grad(loss_fn)

        def step(state, t, warp, indices, coefs, groups, weights):
            params, opt_state, best, best_loss = state
            (_, per_image), g = grad_fn(params, warp, indices, coefs, groups, t <= r.redirect_steps,
                                        weights)
            new, opt_state = r.optimizer.update(params, g, opt_state, t)
            if r.keep_best:  # the loss was measured on ``params``, before this step's update
                better = per_image < best_loss
                mask = ops.reshape(better, (-1,) + (1,) * (len(params.shape) - 1))
                best = ops.where(mask, params, best)
                best_loss = ops.where(better, per_image, best_loss)
            return new, opt_state, best, best_loss

        return step

    def start(self, rngs: Sequence[np.random.Generator],
              params: np.ndarray | None = None) -> tuple[tuple, np.ndarray]:
        """The optimizer's starting state for one image per generator, and the per-step warps
        (steps, B, 4); each generator draws its image's start (unless ``params`` gives them),
        then its warps."""
        r = self.recipe
        drawn = np.stack([self.param.init(rng) for rng in rngs])
        params = drawn if params is None else params.astype("float32")
        warps = np.stack([transforms.draw(r.transforms, rng, r.steps) for rng in rngs], axis=1)
        p = ops.convert_to_tensor(params)
        inf = ops.full((len(rngs),), np.inf, dtype="float32")
        return (p, r.optimizer.init(p), p, inf), warps

    def optimize(self, state: tuple, warps: np.ndarray, arrays: tuple[np.ndarray, ...],
                 on_step: Callable[[int], None] | None = None) -> tuple:
        """Run every step of ``warps`` from ``state``; ``arrays`` = indices, weights, groups of the
        optimized template (``objectives.batch_arrays``). ``on_step(steps done)`` every CHUNK."""
        tensors = [ops.convert_to_tensor(a) for a in arrays]
        steps = warps.shape[0]
        for begin in range(0, steps, CHUNK):
            stop = min(begin + CHUNK, steps)
            ts = np.arange(begin + 1, stop + 1, dtype="float32")
            state = self._run(state, ts, warps[begin:stop], *tensors, self._weights)
            if on_step is not None:
                on_step(stop)
        return state

    def values(self, params, arrays: tuple[np.ndarray, ...], redirect: bool) -> np.ndarray:
        """The optimized objective on the unwarped images of ``params`` (B,): what the step's
        loss is, negated, when no transform applies."""
        images = self.param.to_image(ops.convert_to_tensor(params))
        out = self._objective(self.template, images, *(ops.convert_to_tensor(a) for a in arrays),
                              redirect, self._weights)
        return np.asarray(ops.convert_to_numpy(out), dtype="float64")

    def result(self, state: tuple):
        """The parameters the recipe returns: the best iterate (``keep_best``) or the last."""
        return state[2] if self.recipe.keep_best else state[0]

    def finish(self, params) -> tuple[np.ndarray, np.ndarray]:
        """Params -> the uint8 images that get saved, and (B,) whether each image is finite.

        An image with a NaN or inf value (before or after standardizing) comes out uniform grey
        (``FAILED_GREY``), never the black that casting NaN to uint8 gives."""
        images = np.asarray(ops.convert_to_numpy(self.param.to_image(ops.convert_to_tensor(params))))
        if self.recipe.standardize:
            with np.errstate(over="ignore", invalid="ignore"):  # a non-finite image turns grey below
                mean = images.mean(axis=(1, 2, 3), keepdims=True)
                std = images.std(axis=(1, 2, 3), keepdims=True)
                images = (images - mean) / (std + 1e-5) * 0.1 + 0.5
        finite = np.isfinite(images).all(axis=(1, 2, 3))
        images = np.where(finite[:, None, None, None], images, FAILED_GREY / 255.0)
        return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype("uint8"), finite

    def channel_means(self, images: np.ndarray) -> np.ndarray:
        """Mean activation (after ReLU) of every filter for each uint8 image: (images, filters)."""
        means = self._channel_means(ops.convert_to_tensor(images.astype("float32") / 255.0),
                                    self._weights)
        return np.asarray(ops.convert_to_numpy(means), dtype="float64")

    def gradient(self, images: np.ndarray, template: tuple, arrays: tuple[np.ndarray, ...]) -> np.ndarray:
        """Gradient of each uint8 image's objective (true ReLU, no warp) with respect to its pixels,
        per 0-255 unit: (B, H, W, channels) float64."""
        key = ("gradient", template)
        if key not in self._values:
            def total(images01, indices, coefs, groups, weights):
                per_image = self._objective(template, images01, indices, coefs, groups, False, weights)
                return ops.sum(per_image), per_image

            self._values[key] = backend.jit(backend.value_and_grad(total))
        _, grad = self._values[key](ops.convert_to_tensor(images.astype("float32") / 255.0),
                                    *(ops.convert_to_tensor(a) for a in arrays), self._weights)
        return np.asarray(ops.convert_to_numpy(grad), dtype="float64") / 255.0

    def measure(self, images: np.ndarray, template: tuple, arrays: tuple[np.ndarray, ...]) -> np.ndarray:
        """Objective value of each uint8 image (true ReLU, no warp): (B,) float64."""
        if template not in self._values:
            def values(images01, indices, coefs, groups, weights):
                return self._objective(template, images01, indices, coefs, groups, False, weights)

            self._values[template] = backend.jit(values)
        out = self._values[template](ops.convert_to_tensor(images.astype("float32") / 255.0),
                                     *(ops.convert_to_tensor(a) for a in arrays), self._weights)
        return np.asarray(ops.convert_to_numpy(out), dtype="float64")
