"""The layer graph of a Keras model: walking into nested models, target chains, trunks (the model
cut at the inputs of target layers), and layer names TensorFlow accepts as scope names."""

from __future__ import annotations

import hashlib
import re

import keras

from ..engine import targets
from ..errors import AtlasError

Chain = tuple[keras.layers.Layer, ...]  # from a layer of the outer model inward to one layer

# TensorFlow turns layer names into scope names while tracing, and refuses most characters.
_SCOPE_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*")


def walk(model: keras.Model, prefix: str = "") -> list[tuple[str, Chain]]:
    """Every layer of ``model`` and of the models nested in it, in order.

    Args:
        model: A Keras model.
        prefix: Put before every name (the outer models' names, each followed by '/').

    Returns:
        (name, chain) pairs: the name joins the chain's own names with '/', and the chain runs from
        ``model``'s layer inward.
    """
    out = []
    for layer in model.layers:
        name = f"{prefix}{own_name(layer)}"
        if isinstance(layer, keras.Model):
            out.extend((n, (layer, *chain)) for n, chain in walk(layer, f"{name}/"))
        else:
            out.append((name, (layer,)))
    return out


def target_chains(model: keras.Model) -> dict[str, Chain]:
    """Every target layer (``targets.is_target``) by full name, in layer order, as its chain."""
    return {name: chain for name, chain in walk(model) if targets.is_target(chain[-1])}


def cut(model: keras.Model, chains: list[Chain]) -> keras.Model:
    """A model from ``model``'s input to the inputs of the last layers of ``chains`` (a list of
    outputs, in order; shared work is done once)."""
    return keras.Model(model.inputs, _feeds(model, chains))


def own_name(layer: keras.layers.Layer) -> str:
    """The layer's name as the model file gives it (``scope_safe`` may have renamed the layer)."""
    return getattr(layer, "_atlas_name", layer.name)


def scope_safe(model: keras.Model) -> None:
    """Rename, in place, every layer whose name TensorFlow would refuse as a scope name (``first
    conv``, ``<img>``) to a safe unique one, keeping the name given for ``own_name``."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not _SCOPE_NAME.fullmatch(layer.name):
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer.name).strip("_.-") or "layer"
            layer._atlas_name = layer.name
            layer.name = f"{safe}_{hashlib.sha256(layer.name.encode()).hexdigest()[:8]}"


def _feeds(container: keras.Model, chains: list[Chain]) -> list:
    """The symbolic tensors, in ``container``'s graph, that feed the last layer of each chain
    (a chain runs from a layer of ``container`` into nested models)."""
    out: list = [None] * len(chains)
    nested: dict[int, list[int]] = {}
    for i, chain in enumerate(chains):
        if len(chain) == 1:
            out[i] = _input_in(container, chain[0])
        else:
            nested.setdefault(id(chain[0]), []).append(i)
    for members in nested.values():
        inner = chains[members[0]][0]
        inside = keras.Model(inner.inputs, _feeds(inner, [chains[i][1:] for i in members]))
        results = inside(_input_in(container, inner))
        for i, tensor in zip(members, results if isinstance(results, list) else [results], strict=True):
            out[i] = tensor
    return out


def _input_in(container: keras.Model, layer: keras.layers.Layer):
    """The tensor that feeds ``layer`` in ``container``'s graph (its one call there)."""
    for node in layer._inbound_nodes:
        tensors = node.input_tensors
        if len(tensors) != 1:
            continue
        try:
            keras.Model(container.inputs, tensors[0])
        except ValueError:
            continue
        return tensors[0]
    raise AtlasError(f"layer {layer.name!r} has no single input inside {container.name}; cannot cut there")
