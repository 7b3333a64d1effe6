"""The forward pass of the examples: one batched pass through every wanted layer at once."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from ..engine import backend, targets
from ..models import LoadedModel


class Forward:
    """The compiled forward pass: uint8 images -> per layer, the pre-activation maps (conv + bias,
    before the ReLU) and the mean activations after ReLU (NumPy). With ``extremes``, each filter's
    best and worst position and value instead of its maps: all that one position per image needs,
    found in the graph, so the maps never leave it."""

    def __init__(self, model: LoadedModel, names: list[str], batch: int, extremes: bool = False):
        """Compile the pass.

        Args:
            model: From ``load_model``.
            names: The target layers, in the order of the outputs.
            batch: Images per call (fewer are padded to it, so one compiled graph serves all).
            extremes: Give each filter's extreme positions instead of its maps.
        """
        convs = [model.target(name) for name in names]
        preprocess = model.preprocess_fn()
        chain = plain_chain(model.model, convs)
        if chain is not None:  # each conv computed once, its activation feeding the next layer
            weights = [targets.weights(conv) for conv in convs]
            place = {id(conv): k for k, conv in enumerate(convs)}

            def features(images01, weights):
                x, found = preprocess(images01), {}
                for layer in chain:
                    if id(layer) in place:
                        found[id(layer)] = x = targets.preact(x, layer, weights[place[id(layer)]])
                        if len(found) == len(convs):
                            break
                        x = layer.activation(x)
                    else:
                        x = layer(x)
                return [found[id(conv)] for conv in convs]
        else:  # the trunk to every conv's input, then each conv without its activation
            trunk = model.trunks(names)
            weights = ([v.value for v in trunk.trainable_variables],
                       [v.value for v in trunk.non_trainable_variables],
                       [targets.weights(conv) for conv in convs])

            def features(images01, weights):
                inputs, _ = trunk.stateless_call(weights[0], weights[1], preprocess(images01))
                inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
                return [targets.preact(f, conv, target)
                        for f, conv, target in zip(inputs, convs, weights[2], strict=True)]

        def run(images01, weights):
            out = []
            for maps in features(images01, weights):
                # Each row's mean by pooling, then their mean: on CPUs several times faster than one
                # mean over the positions, and as accurate.
                _, h, w, c = ops.shape(maps)
                means = ops.mean(ops.average_pool(ops.relu(maps), (1, w), (1, w))[:, :, 0], axis=1)
                if extremes:  # one read of the maps per side, to each row's extreme (B, H, C)
                    highs = ops.max_pool(maps, (1, w), (1, w))[:, :, 0]
                    lows = ops.min(maps, axis=2)
                    low = ops.min(lows, axis=1)
                    # The pooling skips NaNs, the reduction keeps them: a NaN anywhere makes both NaN.
                    high = ops.where(ops.isnan(low), low, ops.max(highs, axis=1))
                    out.append((_first(maps, highs, ops.argmax), high, _first(maps, lows, ops.argmin), low,
                                means))
                else:  # filters first, positions flat (row-major), as ``LayerSelection.select`` takes
                    out.append((ops.reshape(ops.transpose(maps, (0, 3, 1, 2)), (-1, c, h * w)), means))
            return out

        # A plain graph on TensorFlow: for a forward pass through deep layers it beats XLA on CPUs.
        self._run = backend.jit(run, xla=False)
        self._weights = weights
        self.batch = batch
        self.extremes = extremes

    def __call__(self, images: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        """Run one batch.

        Args:
            images: (B, height, width, channels) uint8, B <= ``batch``.

        Returns:
            Per layer: the maps (B, filters, H * W) and the ReLU means (B, filters), float32; with
            ``extremes``: the best position and value, the worst position and value, and the ReLU
            means, each (B, filters).
        """
        n = len(images)
        padded = np.zeros((self.batch, *images.shape[1:]), dtype="float32")
        padded[:n] = images / 255.0
        outputs = self._run(ops.convert_to_tensor(padded), self._weights)
        return [tuple(_numpy(a)[:n] for a in arrays) for arrays in outputs]


def _first(maps, rows, arg: Callable):
    """Each filter's first extreme position in row-major order, (B, C) int32: the first row that
    holds it (``arg``, ``ops.argmax`` or ``ops.argmin``, over ``rows``: each row's max or min
    (B, H, C)), then the first column of that row of ``maps`` (B, H, W, C)."""
    b, h, w, c = ops.shape(maps)
    y = ops.cast(arg(rows, axis=1), "int32")
    # Only each filter's row (B, W, C), gathered from the flat maps.
    start = (ops.arange(b, dtype="int32")[:, None] * h + y) * (w * c) + ops.arange(c, dtype="int32")
    row = ops.take(ops.reshape(maps, (-1,)), start[:, None, :] + (ops.arange(w, dtype="int32") * c)[:, None])
    return y * w + ops.cast(arg(row, axis=1), "int32")


def _numpy(tensor) -> np.ndarray:
    """A result as NumPy: floats as float32, positions as int32."""
    array = np.asarray(ops.convert_to_numpy(tensor))
    return array.astype("float32" if array.dtype.kind == "f" else "int32", copy=False)


def plain_chain(model: keras.Model, convs: list) -> list | None:
    """The model's layers after its input when each takes the previous one's output and every conv
    of ``convs`` is one of them with a ReLU (a plain chain such as VGG), else None."""
    layers = model.layers
    if len(layers) < 2 or not isinstance(layers[0], keras.layers.InputLayer):
        return None
    try:
        if any(layer.input is not before.output for before, layer in itertools.pairwise(layers)):
            return None
    except (AttributeError, ValueError):
        return None
    ids = {id(layer) for layer in layers}
    if not all(id(conv) in ids and conv.activation is keras.activations.relu for conv in convs):
        return None
    return layers[1:]
