"""The forward pass of the examples: one batched pass through every wanted layer at once."""

from __future__ import annotations

import numpy as np
from keras import ops

from ..engine import backend, objectives, targets
from ..models import LoadedModel


class Forward:
    """The compiled forward pass: uint8 images -> per layer, the pre-activation maps (conv + bias,
    before the ReLU) and the mean activations after ReLU (NumPy)."""

    def __init__(self, model: LoadedModel, names: list[str], batch: int):
        """Compile the pass.

        Args:
            model: From ``load_model``.
            names: The target layers, in the order of the outputs.
            batch: Images per call (fewer are padded to it, so one compiled graph serves all).
        """
        convs = [model.target(name) for name in names]
        trunk = model.trunks(names)
        weights = ([v.value for v in trunk.trainable_variables],
                   [v.value for v in trunk.non_trainable_variables],
                   [targets.weights(conv) for conv in convs])
        preprocess = model.preprocess_fn()

        def run(images01, weights):
            features, _ = trunk.stateless_call(weights[0], weights[1], preprocess(images01))
            features = features if isinstance(features, (list, tuple)) else [features]
            out = []
            for f, conv, target in zip(features, convs, weights[2], strict=True):
                maps = targets.preact(f, conv, target)
                # Filters first: each filter's positions are contiguous for the selection.
                out.append((ops.transpose(maps, (0, 3, 1, 2)), objectives.channel_mean(ops.relu(maps))))
            return out

        # A plain graph on TensorFlow: for a forward pass through deep layers it beats XLA on CPUs.
        self._run = backend.jit(run, xla=False)
        self._weights = weights
        self.batch = batch

    def __call__(self, images: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Run one batch.

        Args:
            images: (B, height, width, channels) uint8, B <= ``batch``.

        Returns:
            Per layer: the maps (B, filters, H, W) and the ReLU means (B, filters), float32.
        """
        n = len(images)
        padded = np.zeros((self.batch, *images.shape[1:]), dtype="float32")
        padded[:n] = images / 255.0
        outputs = self._run(ops.convert_to_tensor(padded), self._weights)
        return [tuple(np.asarray(ops.convert_to_numpy(a), dtype="float32")[:n] for a in pair)
                for pair in outputs]
