"""The first conv layer's kernels, where they act on the image's colour channels directly."""

from __future__ import annotations

import numpy as np

from .loaded import LoadedModel

BGR = ("caffe",)  # preprocessing modes that feed the model B, G, R


def first_kernels(loaded: LoadedModel) -> tuple[str, np.ndarray] | None:
    """The first target layer's name and kernels, (height, width, 3, filters) with the colour
    channels as R, G, B (a Caffe model's B, G, R flipped); None unless that layer is a plain
    convolution on a three-channel input."""
    if loaded.channels != 3:
        return None
    first = next(iter(loaded.targets()), None)
    layer = loaded.target(first) if first else None
    if layer is None or type(layer).__name__ != "Conv2D" or loaded.trunk(first).layers[1:]:
        return None  # not a plain convolution, or something (beyond the input) stands before it
    kernel = np.asarray(layer.get_weights()[0], dtype="float32")
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        return None
    return first, kernel[:, :, ::-1] if loaded.preprocess in BGR else kernel
