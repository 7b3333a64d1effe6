"""Models: load a Keras model with its weights, find its conv layers, truncate it at one of them.

A model is cut at the *input* of the target conv layer; the engine applies that layer's
convolution and bias itself (its pre-activation, so gradient ascent is never stopped by a ReLU
at the target), computing only the filters it needs.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import ops

from .engine import targets
from .errors import AtlasError
from .spec import MAX_SIDE, MODEL_FILES, WEIGHTS_ENV, Size, as_size, shown_path, size_text

# keras.applications name -> (preprocessing mode, smallest input side it accepts).
# Modes: caffe = RGB->BGR, 0-255 minus ImageNet mean; tf = [-1, 1]; torch = ImageNet mean/std;
# raw = 0-255 (the model carries its own preprocessing).
_APPLICATIONS: dict[str, tuple[str, int]] = {
    "VGG16": ("caffe", 32),
    "VGG19": ("caffe", 32),
    "ResNet50": ("caffe", 32),
    "ResNet101": ("caffe", 32),
    "ResNet152": ("caffe", 32),
    "ResNet50V2": ("tf", 32),
    "InceptionV3": ("tf", 75),
    "InceptionResNetV2": ("tf", 75),
    "Xception": ("tf", 71),
    "MobileNet": ("tf", 32),
    "MobileNetV2": ("tf", 32),
    "DenseNet121": ("torch", 32),
    "DenseNet169": ("torch", 32),
    "DenseNet201": ("torch", 32),
    "EfficientNetB0": ("raw", 32),
    "ConvNeXtTiny": ("raw", 32),
}
PREPROCESS_MODES = ("caffe", "tf", "torch", "raw")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ConvLayer:
    """One target layer (Conv2D, DepthwiseConv2D or SeparableConv2D) as the atlas sees it."""

    name: str  # 'block5_conv2', or 'vgg16/block5_conv2' inside a nested model
    filters: int
    output_shape: tuple[int | None, ...]
    receptive_field: int  # input pixels (per side, the larger) that one output position sees
    cost: float  # multiply-adds of all target layers up to this one, per image (order of layers)
    kind: str = "conv"  # what one filter is (``targets.describe``)


@dataclass
class LoadedModel:
    """A Keras model plus what the atlas records about it."""

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
    renderers: dict = field(default_factory=dict, repr=False, compare=False)  # compiled, by work shape
    _trunks: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def slug(self) -> str:
        """Directory name: the model name, with '-untrained' for random weights."""
        return f"{self.name}-untrained" if self.trained is False else self.name

    def default_size(self) -> Size:
        """The model's own input size where it has one, else 224 per free side."""
        return (self.fixed_size[0] or 224, self.fixed_size[1] or 224)

    def targets(self) -> dict[str, tuple[keras.layers.Layer, ...]]:
        """Every target layer by name (``outer/inner`` inside nested models), in layer order, as
        the chain of layers from the model down to it."""
        return {name: chain for name, chain in _walk(self.model) if targets.is_target(chain[-1])}

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

    def resolve_layers(self, names: tuple[str, ...], size: int | Size) -> list[ConvLayer]:
        """The target layers named (all of them when ``names`` is empty), validated for ``size``."""
        self.check_size(size)
        convs = {layer.name: layer for layer in self.conv_layers(size)}
        chosen = []
        for name in names or tuple(convs):
            layer = convs[self.resolve_name(name)]
            if any(d is not None and d < 1 for d in layer.output_shape[:2]):
                raise AtlasError(f"--size {size_text(size)} is too small for {layer.name} "
                                 f"(output {layer.output_shape})")
            chosen.append(layer)
        return chosen

    def check_size(self, size: int | Size) -> None:
        h, w = as_size(size)
        fh, fw = self.fixed_size
        if (fh is not None and h != fh) or (fw is not None and w != fw):
            fixed = "x".join("any" if d is None else str(d) for d in self.fixed_size)
            raise AtlasError(f"model {self.name} only accepts {fixed} px inputs (height x width), "
                             f"not {size_text(size)}")
        if min(h, w) < self.min_size:
            raise AtlasError(f"--size {size_text(size)} is below {self.name}'s minimum of {self.min_size} px")
        if max(h, w) > MAX_SIDE:
            raise AtlasError(f"--size {size_text(size)} is above the maximum side of {MAX_SIDE} px")

    def _unknown_layer(self, name: str, convs: list[str]) -> str:
        kinds = {n.rsplit("/", 1)[-1]: type(chain[-1]).__name__ for n, chain in _walk(self.model)}
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
            self._trunks[name] = keras.Model(self.model.inputs, _feeds(self.model, [self.targets()[name]]))
        return self._trunks[name]

    def trunks(self, names: list[str]) -> keras.Model:
        """One model from the input to the inputs of several target layers (shared work once)."""
        chains = self.targets()
        outputs = _feeds(self.model, [chains[self.resolve_name(n)] for n in names])
        return keras.Model(self.model.inputs, outputs)

    def target(self, name: str) -> keras.layers.Layer:
        """The target layer ``name`` (full name, or its own name when unambiguous)."""
        return self.targets()[self.resolve_name(name)][-1]

    def truncate(self, layer_name: str) -> tuple[keras.Model, keras.layers.Layer]:
        """The model up to the input of target layer ``layer_name``, and that layer."""
        return self.trunk(layer_name), self.target(layer_name)

    def preprocess_fn(self):
        """Map a batch of [0, 1] images to what the model expects (Keras ops, traceable)."""
        return preprocessor(self.preprocess)


def _walk(model: keras.Model, prefix: str = "") -> list[tuple[str, tuple[keras.layers.Layer, ...]]]:
    """Every layer of ``model`` and of the models nested in it, in order: (name, chain), where the
    name joins the chain's (own) names with '/' and the chain runs from ``model``'s layer inward."""
    out = []
    for layer in model.layers:
        name = f"{prefix}{own_name(layer)}"
        if isinstance(layer, keras.Model):
            out.extend((n, (layer, *chain)) for n, chain in _walk(layer, f"{name}/"))
        else:
            out.append((name, (layer,)))
    return out


# TensorFlow turns layer names into scope names while tracing, and refuses most characters.
_SCOPE_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*")


def own_name(layer: keras.layers.Layer) -> str:
    """The layer's name as the model file gives it (``_scope_safe`` may have renamed the layer)."""
    return getattr(layer, "_atlas_name", layer.name)


def _scope_safe(model: keras.Model) -> None:
    """Rename, in place, every layer whose name TensorFlow would refuse as a scope name (``first
    conv``, ``<img>``) to a safe unique one, keeping the name given for ``own_name``."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not _SCOPE_NAME.fullmatch(layer.name):
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer.name).strip("_.-") or "layer"
            layer._atlas_name = layer.name
            layer.name = f"{safe}_{hashlib.sha256(layer.name.encode()).hexdigest()[:8]}"


def _feeds(container: keras.Model, chains: list[tuple[keras.layers.Layer, ...]]) -> list:
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


@dataclass(frozen=True)
class FieldGeometry:
    """Where a layer's output positions look in the input image (pixel i is centred at i), per
    axis (rows, columns)."""

    field: tuple[int, int]  # receptive field in input pixels
    jump: tuple[int, int]  # input pixels between neighbouring output positions (product of strides)
    start: tuple[float, float]  # input coordinate of the centre of output position 0


def receptive_geometry(model: keras.Model, size: int | Size | None = None) -> dict[str, FieldGeometry]:
    """Receptive field, jump and first centre of every layer's output, walking the layers in
    order (into nested models).

    Conv2D, DepthwiseConv2D and SeparableConv2D (any padding, stride, dilation), max/average
    pooling and zero padding move the field; other layers keep it. Exact for chains such as VGG
    or MobileNet; for branching models it follows layer order, so it is an estimate there. Field
    and jump do not depend on the input size; ``start`` does for 'same' padding with a stride,
    where Keras pads by what the side leaves over.

    Args:
        model: A Keras model taking images.
        size: Input size in pixels; ``None`` assumes every side is a multiple of the strides.

    Returns:
        Layer name (as ``LoadedModel.targets`` names it) -> geometry of that layer's output.
    """
    sides = (None, None) if size is None else as_size(size)
    axes = [_Axis(side) for side in sides]
    out = {}
    for name, chain in _walk(model):
        layer = chain[-1]
        for axis, a in enumerate(axes):
            a.through(layer, axis)
        out[name] = FieldGeometry(tuple(a.field for a in axes), tuple(a.jump for a in axes),
                                  tuple(a.start for a in axes))
    return out


class _Axis:
    """Receptive-field arithmetic along one axis."""

    def __init__(self, side: int | None):
        self.field, self.jump, self.start, self.side = 1, 1, 0.0, side

    def through(self, layer: keras.layers.Layer, axis: int) -> None:
        if isinstance(layer, keras.layers.ZeroPadding2D):
            before, after = layer.padding[axis]
            self.start -= before * self.jump
            self.side = None if self.side is None else self.side + before + after
            return
        if targets.is_target(layer):
            kernel, stride, dilation = layer.kernel_size[axis], layer.strides[axis], layer.dilation_rate[axis]
        elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            kernel, stride, dilation = layer.pool_size[axis], layer.strides[axis], 1
        else:
            return
        span = (kernel - 1) * dilation + 1
        side = self.side
        if layer.padding == "same":
            outputs = -(-side // stride) if side is not None else None
            leftover = stride if side is None else side - (outputs - 1) * stride
            pad = max(span - leftover, 0) // 2
            self.side = outputs
        else:
            pad = 0
            self.side = None if side is None else (side - span) // stride + 1
        self.start += ((span - 1) / 2 - pad) * self.jump
        self.field += (span - 1) * self.jump
        self.jump *= stride


def preprocessor(mode: str):
    """The preprocessing function for ``mode`` (one of PREPROCESS_MODES)."""
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
    if mode.startswith("range:"):  # pixels in [low, high] (keras-vis' input_range)
        low, high = (float(v) for v in mode[6:].split(","))
        return lambda x: low + x * (high - low)
    raise AtlasError(f"unknown preprocessing {mode!r} (choose from {', '.join(PREPROCESS_MODES)})")


# Weight-value digests (``weights_digest``) of files known to hold trained weights, so a local
# copy is labelled for what it is rather than "weights from file".
KNOWN_WEIGHTS = {
    "367e97357726fc9a76fcb2944e6cb9ef301eb42e4eb6cae2f6a7da7dedc6912d": "imagenet",  # VGG16, no top
}


def load_model(name: str, weights: str = "imagenet", seed: int = 0,
               preprocess: str | None = None) -> LoadedModel:
    """Load a ``keras.applications`` model by name, or a saved ``.keras`` / ``.h5`` model by path.

    Args:
        name: ``vgg16``, ``VGG16`` or ``mobilenet_v2`` (any ``keras.applications`` model), or a
            ``.keras`` / ``.h5`` file; a file model is named after its file.
        weights: ``imagenet`` (Keras' download and cache; for a file model, its own weights),
            ``random`` (seeded, untrained; applications only), or a weights file.
        seed: Seed of the random weights.
        preprocess: Input preprocessing; default the application's own, ``raw`` for files.

    Returns:
        The model; every failure is an AtlasError with a one-line explanation.
    """
    path = Path(name)
    if path.suffix in MODEL_FILES:
        model, source = _load_saved(path, weights)
        min_size, label, origin = 1, path.stem, shown_path(path, Path.cwd())  # where its commands run
    else:
        app = _application_name(name)
        model, source = _load_application(app, weights, seed)
        mode, min_size = _APPLICATIONS.get(app, ("raw", 32))
        preprocess, label, origin = preprocess or mode, app.lower(), app
    _scope_safe(model)
    shape = model.inputs[0].shape
    if len(shape) != 4 or shape[-1] is None:
        raise AtlasError(f"model input must be images of shape (H, W, channels), got {tuple(shape[1:])}")
    preprocess = preprocess or "raw"
    if shape[-1] != 3 and preprocess in ("caffe", "torch"):
        raise AtlasError(f"--preprocess {preprocess} needs 3 input channels; {label} takes {shape[-1]}")
    digest = weights_digest(model)
    trained = False if source == "random" else True if source == "imagenet" else \
        (True if KNOWN_WEIGHTS.get(digest) else None)
    return LoadedModel(
        model=model,
        name=label,
        weights=source,
        trained=trained,
        weights_sha256=digest,
        preprocess=preprocess,
        min_size=min_size,
        fixed_size=(shape[1], shape[2]),
        source=origin,
        channels=int(shape[-1]),
    )


def weights_digest(model: keras.Model) -> str:
    """sha256 over every weight's shape and float32 values, in model order."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value), dtype="float32")
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _application_name(name: str) -> str:
    """The ``keras.applications`` class for ``VGG16``, ``vgg16`` or ``mobilenet_v2`` (the
    module's spelling)."""
    available = {n.lower().replace("_", ""): n for n in dir(keras.applications) if n[:1].isupper()}
    wanted = name.lower().replace("_", "")
    if wanted not in available:
        close = difflib.get_close_matches(wanted, list(available), n=1)
        hint = f"; did you mean {available[close[0]]!r}?" if close else ""
        raise AtlasError(
            f"unknown model {name!r}: not a keras.applications name nor a .keras/.h5 file{hint}"
        )
    return available[wanted]


def _load_application(app: str, weights: str, seed: int) -> tuple[keras.Model, str]:
    builder = getattr(keras.applications, app)
    kwargs = {"include_top": False, "input_shape": (None, None, 3)}
    if weights == "random":
        keras.utils.set_random_seed(seed)
        return builder(weights=None, **kwargs), "random"
    if weights == "imagenet":
        try:
            return builder(weights="imagenet", **kwargs), "imagenet"
        except Exception as exc:  # download errors come in many types
            raise AtlasError(
                f"could not get {app}'s ImageNet weights ({type(exc).__name__}); offline? "
                f"supply the file with --weights PATH or {WEIGHTS_ENV}=PATH"
            ) from exc
    model = builder(weights=None, **kwargs)
    return model, _load_weights_file(model, Path(weights))


def _load_saved(path: Path, weights: str) -> tuple[keras.Model, str]:
    _readable(path, "model file")
    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:
        raise AtlasError(f"cannot load model {path}: {_first_line(exc)}") from exc
    if not isinstance(model, keras.Model) or not model.inputs:
        raise AtlasError(f"{path} is not a functional or sequential Keras model with an input")
    if weights == "random":
        raise AtlasError("--weights random applies to keras.applications models only")
    if weights != "imagenet":
        return model, _load_weights_file(model, Path(weights))
    return model, str(path)


def _load_weights_file(model: keras.Model, path: Path) -> str:
    """Load every weight from ``path``; a partial match (Keras only warns) is an error."""
    _readable(path, "weights file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.load_weights(str(path))
    except Exception as exc:
        raise AtlasError(f"cannot load weights from {path} into {model.name}: {_first_line(exc)}") from exc
    return str(path)


def _readable(path: Path, what: str) -> Path:
    if not path.is_file():
        raise AtlasError(f"{what} not found: {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise AtlasError(f"cannot read {what} {path}: {exc.strerror}") from exc
    return path


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
