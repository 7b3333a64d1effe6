"""Input preprocessing: [0, 1] images to what a model expects, per preprocessing mode."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from keras import ops

from ..errors import AtlasError

# caffe = RGB->BGR, 0-255 minus ImageNet mean; tf = [-1, 1]; torch = ImageNet mean/std;
# raw = 0-255 (the model carries its own preprocessing).
PREPROCESS_MODES = ("caffe", "tf", "torch", "raw")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def preprocessor(mode: str) -> Callable:
    """The preprocessing function of ``mode``.

    Args:
        mode: One of ``PREPROCESS_MODES``, or ``range:LOW,HIGH`` (pixels in [LOW, HIGH], as
            keras-vis' ``input_range``).

    Returns:
        A function of a batch of [0, 1] images (Keras ops, traceable).
    """
    if mode == "caffe":
        mean = np.array(_CAFFE_MEAN_BGR, dtype="float32")
        return lambda x: ops.flip(x * 255.0, axis=-1) - mean
    if mode == "tf":
        return lambda x: x * 2.0 - 1.0
    if mode == "torch":
        mean, std = (np.array(v, dtype="float32") for v in (_TORCH_MEAN, _TORCH_STD))
        return lambda x: (x - mean) / std
    if mode == "raw":
        return lambda x: x * 255.0
    if mode.startswith("range:"):
        low, high = (float(v) for v in mode[6:].split(","))
        return lambda x: low + x * (high - low)
    raise AtlasError(f"unknown preprocessing {mode!r} (choose from {', '.join(PREPROCESS_MODES)})")
