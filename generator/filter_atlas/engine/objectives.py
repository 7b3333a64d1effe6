"""Objectives and penalties, each returning one value per image of the batch."""

from __future__ import annotations

from keras import ops


def channel_mean(preact, onehot):
    """Mean over positions of each image's own channel: image i scores channel onehot[i]."""
    return ops.einsum("bhwc,bc->b", preact, onehot) / (preact.shape[1] * preact.shape[2])


def channel_activation(preact, onehot, redirect):
    """The filter's mean activation (after its ReLU), one value per image.

    While ``redirect`` is true the gradient is that of the pre-activation mean (Lucid's
    redirected ReLU for the first steps): positions below zero still get pulled up, so no filter
    starts with a zero gradient. Afterwards the true ReLU gradient applies, which is what makes a
    zero-mean first-layer kernel come out as its matched pattern rather than a flat colour.
    """
    return ops.where(redirect, channel_mean(preact, onehot), channel_mean(ops.relu(preact), onehot))


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
