"""Target layers: the spatial layers whose filters can be rendered, and their pre-activation.

A model is cut at the *input* of the target layer; the engine applies the layer's own
computation (without its activation, so gradient ascent is never stopped by a ReLU at the
target), computing only the filters it needs where that is cheaper.

What one filter (output channel) is:
- ``Conv2D``: one kernel over every input channel, plus its bias.
- ``DepthwiseConv2D``: output channel ``c * multiplier + m`` is kernel ``m`` over input channel
  ``c`` alone, plus its bias.
- ``SeparableConv2D``: a 1x1 mix of every depthwise output (as above), plus its bias.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

TARGETS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def is_target(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` is a 2-D spatial layer whose filters can be rendered."""
    return isinstance(layer, TARGETS)


def filter_count(layer: keras.layers.Layer) -> int:
    """Output channels of a target layer."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return int(layer.kernel.shape[2] * layer.kernel.shape[3])
    return int(layer.filters)


def describe(layer: keras.layers.Layer) -> str:
    """What one filter of a target layer is, in a few words."""
    k = "x".join(map(str, layer.kernel_size))
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return f"depthwise {k}: one input channel each (multiplier {layer.depth_multiplier})"
    if isinstance(layer, keras.layers.SeparableConv2D):
        return f"separable {k}: depthwise per channel, then a 1x1 mix"
    return f"conv {k}: all input channels"


def macs_per_position(layer: keras.layers.Layer) -> float:
    """Multiply-adds of a target layer per output position."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return float(math.prod(layer.kernel.shape))
    if isinstance(layer, keras.layers.SeparableConv2D):
        dw, pw = layer.depthwise_kernel.shape, layer.pointwise_kernel.shape
        return float(dw[0] * dw[1] * dw[2] * dw[3] + pw[2] * pw[3])
    kh, kw, c_in, c_out = layer.kernel.shape
    return float(kh * kw * c_in * c_out)


def weights(layer: keras.layers.Layer) -> tuple:
    """The target's own weights as values (kernels, then the bias or None), passed to the
    compiled step as arguments."""
    bias = layer.bias.value if layer.use_bias else None
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return layer.kernel.value, bias
    if isinstance(layer, keras.layers.SeparableConv2D):
        return layer.depthwise_kernel.value, layer.pointwise_kernel.value, bias
    return layer.kernel.value, bias


def contain(layer: keras.layers.Layer, target: tuple) -> tuple[tuple, np.ndarray | None]:
    """The target's weights made safe to batch, and the filters they cannot compute.

    Every image of a batch convolves every filter the batch needs, and the gradient of a
    convolution multiplies each filter's weights by that filter's upstream gradient, zero for the
    images that do not render it: one NaN or inf weight would make every image's value and
    gradient NaN (0 * NaN). So the engine convolves with the non-finite values replaced by zero,
    and gives NaN to the images whose objective reads a broken filter (``objectives.evaluate``).

    Args:
        layer: The target layer.
        target: Its weights (``weights``).

    Returns:
        ``target`` and None when every weight is finite; else the weights with zeros for the
        non-finite values, and a (filters,) bool array, True for each filter that reads one.
    """
    arrays = [None if w is None else np.asarray(ops.convert_to_numpy(w)) for w in target]
    bad = [None if a is None else ~np.isfinite(a) for a in arrays]
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # channel c * multiplier + m: kernel[..., c, m]
        broken = bad[0].any(axis=(0, 1)).reshape(-1)
    elif isinstance(layer, keras.layers.SeparableConv2D):  # every depthwise output feeds every filter
        broken = bad[1].any(axis=(0, 1, 2)) | bad[0].any()
    else:
        broken = bad[0].any(axis=(0, 1, 2))
    if bad[-1] is not None:
        broken = broken | bad[-1]
    if not broken.any():
        return target, None
    finite = (None if a is None else ops.convert_to_tensor(np.where(b, 0, a).astype(a.dtype))
              for a, b in zip(arrays, bad, strict=True))
    return tuple(finite), broken


def reads_broken(broken, indices, every: bool):
    """(B,) whether each image reads a ``broken`` filter (``contain``): one of its own
    ``indices`` (B, J), or any filter of the layer when it reads ``every`` one (diversity)."""
    if every:
        return ops.broadcast_to(ops.any(broken), (indices.shape[0],))
    return ops.any(ops.take(broken, indices), axis=1)


def _depthwise(features, layer, kernel):
    return ops.depthwise_conv(features, kernel, strides=layer.strides, padding=layer.padding,
                              data_format=layer.data_format, dilation_rate=layer.dilation_rate)


def preact(features, layer, target: tuple):
    """The target's output without its activation: (B, H, W, filters)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        maps = _depthwise(features, layer, target[0])
    elif isinstance(layer, keras.layers.SeparableConv2D):
        maps = ops.einsum("bhwc,cf->bhwf", _depthwise(features, layer, target[0]), target[1][0, 0])
    else:
        maps = layer.convolution_op(features, target[0])
    bias = target[-1]
    return maps if bias is None else maps + bias


def own_filter_preact(features, layer, target: tuple, indices):
    """Pre-activation maps (B, H, W, J) of each image's own filters: image b, slot j gets filter
    ``indices[b, j]``.

    When that is cheaper, only those B * J filters are computed (then each image keeps its own):
    a Conv2D's kernels, a SeparableConv2D's 1x1 mix. Grouped convolutions, depthwise layers and
    large selections compute every filter, then select.
    """
    b, j = indices.shape
    n = filter_count(layer)
    few = b * j < n
    if isinstance(layer, keras.layers.Conv2D) and layer.groups == 1 and few:
        flat = ops.reshape(indices, (-1,))
        kernel = ops.take(target[0], flat, axis=-1)
        bias = None if target[1] is None else ops.take(target[1], flat)
        select = ops.reshape(ops.eye(b * j, dtype=kernel.dtype), (b * j, b, j))
        return ops.einsum("bhwk,kbj->bhwj", preact(features, layer, (kernel, bias)), select)
    if isinstance(layer, keras.layers.SeparableConv2D) and few:
        pointwise = ops.take(target[1][0, 0], indices, axis=-1)  # (C, B, J)
        maps = ops.einsum("bhwc,cbj->bhwj", _depthwise(features, layer, target[0]), pointwise)
        return maps if target[2] is None else maps + ops.take(target[2], indices)[:, None, None, :]
    return select_filters(preact(features, layer, target), indices)


def select_filters(maps, indices):
    """Maps (B, H, W, C) -> (B, H, W, J): image b, slot j keeps channel ``indices[b, j]``."""
    one_hot = ops.one_hot(indices, maps.shape[-1], dtype=maps.dtype)  # (B, J, C)
    return ops.einsum("bhwc,bjc->bhwj", maps, one_hot)
