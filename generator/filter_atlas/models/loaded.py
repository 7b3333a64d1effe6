"""The loaded model as the atlas sees it: its target layers by name, the sizes it accepts, and
its trunks (the model cut at the input of target layers)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from ..engine import targets
from ..errors import AtlasError
from ..sizes import Size, as_size, size_text
from ..spec import MAX_SIDE
from .geometry import receptive_geometry
from .graph import Chain, cut, target_chains, walk
from .preprocessing import preprocessor


@dataclass(frozen=True)
class ConvLayer:
    """One target layer (Conv2D, DepthwiseConv2D or SeparableConv2D) as the atlas sees it."""

    name: str  # 'block5_conv2', or 'vgg16/block5_conv2' inside a nested model
    filters: int
    output_shape: tuple[int | None, ...]
    receptive_field: int  # input pixels (per side, the larger) that one output position sees
    cost: float  # multiply-adds of all target layers up to this one, per image (order of layers)
    kind: str = "conv"  # what one filter is (``targets.describe``)


@dataclass(eq=False)
class LoadedModel:
    """A Keras model plus what the atlas records about it (compared and hashed by identity: the
    engine keeps its compiled steps per loaded model, ``api._renderer``)."""

    model: keras.Model
    name: str
    weights: str  # "imagenet", "random", or the weights/model file path
    trained: bool | None  # None: weights from a file, not known to be trained
    weights_sha256: str  # digest of the weight values, independent of the file format
    preprocess: str
    min_size: int
    fixed_size: tuple[int | None, int | None]  # (height, width) the model's input fixes, if any
    source: str = ""  # the keras.applications name, or the model file's path (``spec.shown_path``)
    channels: int = 3
    _trunks: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def slug(self) -> str:
        """Directory name: the model name, with '-untrained' for random weights."""
        return f"{self.name}-untrained" if self.trained is False else self.name

    def default_size(self) -> Size:
        """The model's own input size where it has one, else 224 per free side."""
        return (self.fixed_size[0] or 224, self.fixed_size[1] or 224)

    def targets(self) -> dict[str, Chain]:
        """Every target layer by name (``outer/inner`` inside nested models), in layer order, as
        the chain of layers from the model down to it."""
        return target_chains(self.model)

    def conv_layers(self, size: int | Size) -> list[ConvLayer]:
        """Every target layer, in order, with its output shape for an input of ``size``."""
        h, w = as_size(size)
        chains = self.targets()
        if not chains:
            raise AtlasError(f"model {self.name} has no Conv2D, DepthwiseConv2D or SeparableConv2D layer")
        fields = receptive_geometry(self.model, (h, w))
        out, total = [], 0.0
        for name, chain in chains.items():
            layer = chain[-1]
            feed = self.trunk(name).compute_output_shape((1, h, w, self.channels))
            feed = feed[0] if isinstance(feed, list) else feed
            shape = tuple(layer.compute_output_shape(feed))
            total += float(np.prod([d or 1 for d in shape[1:3]])) * targets.macs_per_position(layer)
            out.append(ConvLayer(name, targets.filter_count(layer), shape[1:], max(fields[name].field),
                                 total, targets.describe(layer)))
        return out

    def resolve_name(self, name: str) -> str:
        """The full name of a target layer given by full name, or by its own name when that is
        unambiguous (``block5_conv2`` for ``vgg16/block5_conv2``)."""
        chains = self.targets()
        if name in chains:
            return name
        matches = [full for full in chains if full.rsplit("/", 1)[-1] == name]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise AtlasError(f"layer name {name!r} is ambiguous in {self.name}: {', '.join(matches)}")
        raise AtlasError(self._unknown_layer(name, list(chains)))

    def resolve_layers(self, names: tuple[str, ...], size: int | Size, flag: str = "--size"
                       ) -> list[ConvLayer]:
        """The target layers named (all of them when ``names`` is empty), validated for ``size``
        (errors name the setting ``flag``)."""
        self.check_size(size, flag)
        convs = {layer.name: layer for layer in self.conv_layers(size)}
        chosen = []
        for name in names or tuple(convs):
            layer = convs[self.resolve_name(name)]
            if any(d is not None and d < 1 for d in layer.output_shape[:2]):
                raise AtlasError(f"{flag} {size_text(size)} is too small for {layer.name} "
                                 f"(output {layer.output_shape})")
            chosen.append(layer)
        return chosen

    def check_size(self, size: int | Size, flag: str = "--size") -> None:
        """Raise an AtlasError, in one line naming the setting ``flag``, when the model cannot take
        inputs of ``size``."""
        h, w = as_size(size)
        fh, fw = self.fixed_size
        if (fh is not None and h != fh) or (fw is not None and w != fw):
            fixed = "x".join("any" if d is None else str(d) for d in self.fixed_size)
            raise AtlasError(f"model {self.name} only accepts {fixed} px inputs (height x width), "
                             f"not {size_text(size)}")
        if min(h, w) < self.min_size:
            raise AtlasError(f"{flag} {size_text(size)} is below {self.name}'s minimum of {self.min_size} px")
        if max(h, w) > MAX_SIDE:
            raise AtlasError(f"{flag} {size_text(size)} is above the maximum side of {MAX_SIDE} px")

    def _unknown_layer(self, name: str, convs: list[str]) -> str:
        kinds = {n.rsplit("/", 1)[-1]: type(chain[-1]).__name__ for n, chain in walk(self.model)}
        listed = ", ".join(convs)
        if name.rsplit("/", 1)[-1] in kinds:
            kind = kinds[name.rsplit("/", 1)[-1]]
            return f"layer {name!r} is a {kind}, not a conv layer (conv layers: {listed})"
        close = difflib.get_close_matches(name, convs, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown layer {name!r} in {self.name}{hint} (conv layers: {listed})"

    def trunk(self, name: str) -> keras.Model:
        """The model from its input to the input of target layer ``name`` (built once)."""
        name = self.resolve_name(name)
        if name not in self._trunks:
            self._trunks[name] = cut(self.model, [self.targets()[name]])
        return self._trunks[name]

    def trunks(self, names: list[str]) -> keras.Model:
        """One model from the input to the inputs of several target layers (shared work once)."""
        chains = self.targets()
        return cut(self.model, [chains[self.resolve_name(n)] for n in names])

    def target(self, name: str) -> keras.layers.Layer:
        """The target layer ``name`` (full name, or its own name when unambiguous)."""
        return self.targets()[self.resolve_name(name)][-1]

    def truncate(self, layer_name: str) -> tuple[keras.Model, keras.layers.Layer]:
        """The model up to the input of target layer ``layer_name``, and that layer."""
        return self.trunk(layer_name), self.target(layer_name)

    def preprocess_fn(self) -> Callable:
        """Map a batch of [0, 1] images to what the model expects (Keras ops, traceable)."""
        return preprocessor(self.preprocess)
