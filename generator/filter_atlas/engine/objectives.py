"""Objectives: what an image is optimized to maximize, composable with ``+``, ``-`` and ``*``.

An ``Objective`` is a weighted sum of terms. Layer terms (``channel``, ``neuron``,
``diversity``) read one conv layer; input terms (``lp_norm``, ``total_variation``) read the model
input. Every term declares the layer and filter it needs, so a batch whose terms name single
filters convolves only those filters at the target layer (the fast path), and one that needs a
whole layer (``diversity``) computes all of it.

Images of one batch share a *template* (the terms without their filter indices and weights);
indices, weights and diversity groups enter the compiled step as arrays, so one compiled step
serves every batch of a layer.
"""

from __future__ import annotations

import json
import math
import numbers
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from keras import ops

from ..errors import AtlasError
from . import targets

_MAX_WEIGHT = float(np.finfo("float32").max)  # weights enter the compiled step as float32


def _integer(name: str, value: object) -> int:
    """``value`` as an int when it is an integer (Python or NumPy, not a bool), else an AtlasError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise AtlasError(f"{name} must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Term:
    """One objective term. ``kind`` is channel, neuron, diversity, lp_norm or total_variation."""

    kind: str
    layer: str | None = None
    index: int | None = None
    x: int | None = None
    y: int | None = None
    p: float | None = None  # lp_norm's exponent, total_variation's beta
    relu: bool | None = None  # False: channel's pre-activation (None: after ReLU, the default)
    gate: float | None = None  # diversity: see ``diversity``

    def template(self) -> tuple:
        """What the compiled step depends on: everything but the filter index."""
        return (self.kind, self.layer, self.x, self.y, self.p, self.relu, self.gate)

    def key(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


class Objective:
    """A weighted sum of terms, to be maximized; compose with ``+``, ``-`` and scalar ``*``.
    A weight that is not a finite float32 number (NaN, inf, above 3.4e38) is an AtlasError."""

    def __init__(self, terms: Sequence[tuple[float, Term]]):
        self.terms = tuple((float(w), t) for w, t in terms)
        bad = [w for w, _ in self.terms if not abs(w) <= _MAX_WEIGHT]
        if bad:
            raise AtlasError(f"objective weights must be finite float32 numbers, got {bad[0]}")

    def __add__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms)

    def __sub__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-other)

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __mul__(self, scalar: float) -> Objective:
        if isinstance(scalar, (bool, np.bool_)) or not isinstance(scalar, numbers.Real):
            return NotImplemented
        return Objective([(scalar * w, t) for w, t in self.terms])

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return " + ".join(f"{w:g}*{t.kind}({', '.join(map(str, list(t.key().values())[1:]))})"
                          for w, t in self.terms)

    @property
    def layer(self) -> str:
        """The one conv layer this objective reads (an AtlasError if none or several)."""
        layers = {t.layer for _, t in self.terms if t.layer is not None}
        if len(layers) != 1:
            what = "no layer term (channel, neuron or diversity)" if not layers else \
                f"terms on several layers ({', '.join(sorted(layers))})"
            raise AtlasError(f"objective {self!r} has {what}; give it exactly one layer")
        return layers.pop()

    def template(self) -> tuple:
        return tuple(t.template() for _, t in self.terms)

    def indices(self) -> list[int]:
        """Filter indices of the indexed terms (channel, neuron), in term order."""
        return [t.index for _, t in self.terms if t.index is not None]

    def weights(self) -> list[float]:
        return [w for w, _ in self.terms]

    def key(self) -> list:
        return [[w, t.key()] for w, t in self.terms]

    def seed_words(self) -> tuple[int, ...]:
        """What seeds this objective's images besides the seed: its terms, not their weights, so
        ``channel``, ``-channel`` and ``2 * channel`` start from the same image. A single channel
        term keeps the (layer, index) words of engine v2, so the atlas's starts are unchanged."""
        if len(self.terms) == 1 and self.terms[0][1].kind == "channel":
            term = self.terms[0][1]
            return (zlib.crc32(term.layer.encode()), term.index)
        return (zlib.crc32(json.dumps([t.key() for _, t in self.terms], sort_keys=True).encode()),)


def channel(layer: str, index: int, relu: bool = True) -> Objective:
    """Mean activation (after the layer's ReLU) of filter ``index`` of conv layer ``layer``.

    Args:
        layer: Name of a Conv2D layer of the model.
        index: Filter (output channel) index, an integer (a float or bool is an AtlasError).
        relu: False for the mean *pre-activation* (convolution plus bias): what
            ``-channel(layer, index, relu=False)`` minimizes for the negative view, where the
            ReLU's zero gradient would stop a descent.

    Returns:
        The objective; the first ``redirect_steps`` steps of a recipe follow the pre-activation
        mean (Lucid's redirected ReLU) so that a filter dead at the start still gets a gradient.
    """
    return Objective([(1.0, Term("channel", layer, _integer("filter index", index),
                                 relu=None if relu else False))])


def neuron(layer: str, index: int, x: int | None = None, y: int | None = None) -> Objective:
    """Activation (after ReLU) of filter ``index`` at one position of its map.

    Args:
        layer: Name of a Conv2D layer.
        index: Filter index (an integer, as for ``channel``).
        x: Column of the position in the layer's output (an integer); ``None`` is the centre.
        y: Row of the position (an integer); ``None`` is the centre.

    Returns:
        The objective.
    """
    x, y = (None if v is None else _integer(f"neuron {name}", v) for name, v in (("x", x), ("y", y)))
    return Objective([(1.0, Term("neuron", layer, _integer("filter index", index), x, y))])


def diversity(layer: str, gate: float | None = None) -> Objective:
    """Lucid's diversity term: pairwise cosine similarity of the images' Gram matrices.

    The Gram matrices are of the layer's activations (after ReLU); each image scores its summed
    similarity to the rest of its group (the ``n`` images of one objective) over the group's size,
    so the group's total is Lucid's value. Subtract it: ``channel(l, i) - 1e2 * diversity(l)``.

    Args:
        layer: Name of a Conv2D layer.
        gate: It pushes an image only while the rest of the image's objective is at least ``gate``
            times its weight, so an image it pushed down climbs back alone. ``None``: always.

    Returns:
        The objective (it needs every filter of ``layer``, so it leaves the fast path).
    """
    if gate is not None and not (isinstance(gate, numbers.Real) and math.isfinite(gate)):
        raise AtlasError(f"diversity gate must be a finite number, got {gate!r}")
    return Objective([(1.0, Term("diversity", layer, gate=None if gate is None else float(gate)))])


def lp_norm(p: float = 6.0) -> Objective:
    """keras-vis' LPNorm of the model input: (sum |x|^p)^(1/p) over the number of input values.

    Args:
        p: The exponent.

    Returns:
        The objective (subtract it to penalize).
    """
    return Objective([(1.0, Term("lp_norm", p=float(p)))])


def total_variation(beta: float = 2.0) -> Objective:
    """keras-vis' TotalVariation of the model input: sum of squared neighbour differences to
    the power beta / 2, over the number of input values.

    Args:
        beta: The exponent.

    Returns:
        The objective (subtract it to penalize).
    """
    return Objective([(1.0, Term("total_variation", p=float(beta)))])


# The values, traced inside the compiled step. ---------------------------------------------------

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


def neuron_activation(maps, x: int | None, y: int | None, redirect):
    """Activation at one position (centre by default) of each image's map (B, H, W)."""
    h, w = maps.shape[1], maps.shape[2]
    value = maps[:, h // 2 if y is None else y, w // 2 if x is None else x]
    return ops.where(redirect, value, ops.relu(value))


def gram_diversity(activations, groups):
    """Each image's summed cosine similarity of Gram matrices to the rest of its group, over
    the group size. ``activations`` (B, H, W, C) after ReLU; ``groups`` (B,) int group ids."""
    b, h, w, c = activations.shape
    flat = ops.reshape(activations, (b, h * w, c))
    grams = ops.reshape(ops.einsum("bpc,bpd->bcd", flat, flat), (b, c * c))
    grams = grams / ops.maximum(ops.sqrt(ops.sum(ops.square(grams), axis=1, keepdims=True)), 1e-10)
    same = ops.cast(ops.equal(groups[:, None], groups[None, :]), grams.dtype)
    others = same * (1.0 - ops.eye(b, dtype=grams.dtype))
    similarity = ops.sum(ops.matmul(grams, ops.transpose(grams)) * others, axis=1)
    return similarity / ops.sum(same, axis=1)


def lp_value(x, p: float):
    """keras-vis' LPNorm: (sum |x|^p)^(1/p), divided by the number of input values."""
    n = x.shape[1] * x.shape[2] * x.shape[3]
    return ops.power(ops.sum(ops.power(ops.abs(x), p), axis=(1, 2, 3)), 1.0 / p) / n


def tv_value(x, beta: float):
    """keras-vis' TotalVariation: sum of squared neighbour differences to the power beta/2."""
    n = x.shape[1] * x.shape[2] * x.shape[3]
    down = ops.square(x[:, 1:, :-1, :] - x[:, :-1, :-1, :])
    right = ops.square(x[:, :-1, 1:, :] - x[:, :-1, :-1, :])
    return ops.sum(ops.power(down + right, beta / 2.0), axis=(1, 2, 3)) / n


def evaluate(template: tuple, x, features, conv, target, broken, indices, weights, groups, redirect):
    """Every image's objective value (B,) for a batch sharing ``template``.

    A filter whose weights are not finite gives NaN to the images that read it (each image its
    own filters; ``diversity`` reads every filter) and to no other image, nor their gradients.

    Args:
        template: The terms' templates (``Objective.template()``).
        x: The model input (preprocessed images), for the input terms.
        features: The target layer's input (``None`` when no term reads a layer).
        conv, target, broken: The target layer, its finite weights and its broken filters or
            None (``targets.contain``).
        indices: (B, J) int filter indices of the indexed terms, in term order.
        weights: (B, T) float weight of each term for each image.
        groups: (B,) int diversity group of each image.
        redirect: Whether ReLU gradients are redirected (Lucid's first steps).

    Returns:
        (B,) weighted sums.
    """
    maps = full = None
    if any(kind == "diversity" for kind, *_ in template):
        full = targets.preact(features, conv, target)
        if indices.shape[1]:
            maps = targets.select_filters(full, indices)
    elif indices.shape[1]:
        maps = targets.own_filter_preact(features, conv, target, indices)
    total, slot, gated = None, 0, []
    for t, (kind, _layer, tx, ty, p, relu, gate) in enumerate(template):
        if kind == "channel" and relu is False:
            value = channel_mean(maps[..., slot])
        elif kind == "channel":
            value = channel_activation(maps[..., slot], redirect)
        elif kind == "neuron":
            value = neuron_activation(maps[..., slot], tx, ty, redirect)
        elif kind == "diversity":
            value = gram_diversity(ops.relu(full), groups)
            if gate is not None:  # added once the rest of the objective is known
                gated.append((t, value, gate))
                continue
        elif kind == "lp_norm":
            value = lp_value(x, p)
        else:
            value = tv_value(x, p)
        slot += kind in ("channel", "neuron")
        value = weights[:, t] * value
        total = value if total is None else total + value
    rest = 0.0 if total is None else total  # a comparison: no gradient flows through the gate
    for t, value, gate in gated:
        value = weights[:, t] * value * ops.cast(rest >= gate * ops.abs(weights[:, t]), value.dtype)
        total = value if total is None else total + value
    if broken is None:
        return total
    # A select: the other images' values and gradients stay as they are.
    return ops.where(targets.reads_broken(broken, indices, every=full is not None), float("nan"), total)


def batch_arrays(objectives: Sequence[Objective], groups: Sequence[int]) -> tuple[np.ndarray, ...]:
    """The runtime arrays of a batch sharing one template: indices (B, J), weights (B, T), groups."""
    return (np.asarray([o.indices() for o in objectives], dtype="int32").reshape(len(objectives), -1),
            np.asarray([o.weights() for o in objectives], dtype="float32"),
            np.asarray(groups, dtype="int32"))
