"""Objectives and penalties, each returning one value per image of the batch."""

from __future__ import annotations

from keras import ops


def preact(features, conv, kernel, bias):
    """A conv layer's convolution plus bias, without its activation: (B, H, W, filters)."""
    maps = conv.convolution_op(features, kernel)
    return maps if bias is None else maps + bias


def own_filter_preact(features, conv, kernel, bias, indices):
    """Pre-activation map (B, H, W) of each image's own filter: image b gets filter indices[b].

    When that is cheaper, only the B filters asked for are convolved (B maps per image, then
    the diagonal): at a target layer of 256 filters and a batch of 16 that drops the layer's cost
    to a sixteenth, forward and backward. Grouped convolutions compute every filter, then select.
    """
    b, n = indices.shape[0], kernel.shape[-1]
    if conv.groups == 1 and b < n:
        kernel = ops.take(kernel, indices, axis=-1)
        bias = None if bias is None else ops.take(bias, indices)
        select = ops.eye(b, dtype=kernel.dtype)
    else:
        select = ops.one_hot(indices, n, dtype=kernel.dtype)
    return ops.einsum("bhwc,bc->bhw", preact(features, conv, kernel, bias), select)


def channel_mean(maps):
    """Mean over positions of each image's map (B, H, W): one value per image."""
    return ops.mean(maps, axis=(1, 2))


def channel_activation(maps, redirect):
    """The filter's mean activation (after its ReLU), one value per image.

    ``maps`` holds each image's own filter's pre-activation (B, H, W). While ``redirect`` is true
    the gradient is that of the pre-activation mean (Lucid's redirected ReLU for the first
    steps): positions below zero still get pulled up, so no filter starts with a zero gradient.
    Afterwards the true ReLU gradient applies, which is what makes a zero-mean first-layer
    kernel come out as its matched pattern rather than a flat colour.
    """
    return ops.where(redirect, channel_mean(maps), channel_mean(ops.relu(maps)))


def lp_norm(x, p: float):
    """keras-vis' LPNorm: (sum |x|^p)^(1/p), divided by the number of input values."""
    n = x.shape[1] * x.shape[2] * x.shape[3]
    return ops.power(ops.sum(ops.power(ops.abs(x), p), axis=(1, 2, 3)), 1.0 / p) / n


def total_variation(x, beta: float):
    """keras-vis' TotalVariation: sum of squared neighbour differences to the power beta/2."""
    n = x.shape[1] * x.shape[2] * x.shape[3]
    down = ops.square(x[:, 1:, :-1, :] - x[:, :-1, :-1, :])
    right = ops.square(x[:, :-1, 1:, :] - x[:, :-1, :-1, :])
    return ops.sum(ops.power(down + right, beta / 2.0), axis=(1, 2, 3)) / n
