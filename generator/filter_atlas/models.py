"""Models: load a Keras model with its weights, find its conv layers, truncate it at one of them.

A model is cut at the *input* of the target conv layer; the engine applies that layer's
convolution and bias itself (its pre-activation, so gradient ascent is never stopped by a ReLU
at the target), computing only the filters it needs.
"""

from __future__ import annotations

import difflib
import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import ops

from .errors import AtlasError
from .spec import WEIGHTS_ENV

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
    """One conv layer as the atlas sees it."""

    name: str
    filters: int
    output_shape: tuple[int | None, ...]
    receptive_field: int  # input pixels (per side) that one output position sees
    cost: float  # multiply-adds of all conv layers up to this one, per image (order of layers)


@dataclass
class LoadedModel:
    """A Keras model plus what the atlas records about it."""

    model: keras.Model
    name: str
    weights: str  # "imagenet", "random", or the weights/model file path
    trained: bool
    weights_sha256: str  # digest of the weight values, independent of the file format
    preprocess: str
    min_size: int
    fixed_size: int | None  # input side when the model only accepts one size
    renderers: dict = field(default_factory=dict, repr=False, compare=False)  # compiled, by work shape

    @property
    def slug(self) -> str:
        """Directory name: the model name, with '-untrained' for random weights."""
        return self.name if self.trained else f"{self.name}-untrained"

    def conv_layers(self, size: int) -> list[ConvLayer]:
        """Every Conv2D layer, in order, with its output shape for a ``size`` x ``size`` input."""
        convs = [layer for layer in self.model.layers if isinstance(layer, keras.layers.Conv2D)]
        if not convs:
            raise AtlasError(f"model {self.name} has no Conv2D layer")
        probe = keras.Model(self.model.inputs, [layer.output for layer in convs])
        shapes = probe.compute_output_shape((1, size, size, 3))
        if len(convs) == 1:
            shapes = [shapes]
        fields = receptive_fields(self.model)
        out, total = [], 0.0
        for layer, shape in zip(convs, shapes, strict=True):
            kh, kw, c_in, c_out = layer.kernel.shape
            total += float(np.prod([d or 1 for d in shape[1:3]])) * kh * kw * c_in * c_out
            out.append(ConvLayer(layer.name, int(layer.filters), tuple(shape[1:]), fields[layer.name], total))
        return out

    def resolve_layers(self, names: tuple[str, ...], size: int) -> list[ConvLayer]:
        """The conv layers named (all of them when ``names`` is empty), validated for ``size``."""
        self.check_size(size)
        convs = {layer.name: layer for layer in self.conv_layers(size)}
        chosen = []
        for name in names or tuple(convs):
            if name not in convs:
                raise AtlasError(self._unknown_layer(name, list(convs)))
            layer = convs[name]
            if any(d is not None and d < 1 for d in layer.output_shape[:2]):
                raise AtlasError(f"--size {size} is too small for {name} (output {layer.output_shape})")
            chosen.append(layer)
        return chosen

    def check_size(self, size: int) -> None:
        if self.fixed_size is not None and size != self.fixed_size:
            raise AtlasError(f"model {self.name} only accepts {self.fixed_size} px inputs, not {size}")
        if size < self.min_size:
            raise AtlasError(f"--size {size} is below {self.name}'s minimum of {self.min_size} px")

    def _unknown_layer(self, name: str, convs: list[str]) -> str:
        layer_names = [layer.name for layer in self.model.layers]
        if name in layer_names:
            kind = type(self.model.get_layer(name)).__name__
            return f"layer {name!r} is a {kind}, not a Conv2D layer (conv layers: {', '.join(convs)})"
        close = difflib.get_close_matches(name, convs, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown layer {name!r} in {self.name}{hint} (conv layers: {', '.join(convs)})"

    def truncate(self, layer_name: str) -> tuple[keras.Model, keras.layers.Conv2D]:
        """The model up to the input of conv layer ``layer_name``, and that layer."""
        layer = self.model.get_layer(layer_name)
        try:
            trunk_output = layer.input
        except (AttributeError, ValueError) as exc:
            raise AtlasError(f"layer {layer_name!r} is used more than once; cannot truncate there") from exc
        return keras.Model(self.model.inputs, trunk_output), layer

    def preprocess_fn(self):
        """Map a batch of [0, 1] RGB images to what the model expects (Keras ops, traceable)."""
        return preprocessor(self.preprocess)


@dataclass(frozen=True)
class FieldGeometry:
    """Where a layer's output positions look in the input image (pixel i is centred at i)."""

    field: int  # receptive field side in input pixels
    jump: int  # input pixels between neighbouring output positions (product of strides)
    start: float  # input coordinate of the centre of output position 0 (row or column)


def receptive_geometry(model: keras.Model, size: int | None = None) -> dict[str, FieldGeometry]:
    """Receptive field, jump and first centre of every layer's output, walking the layers in order.

    Conv2D (any padding, stride, dilation) and max/average pooling move the field; other layers
    keep it. Exact for chains such as VGG; for branching models it follows layer order, so it is
    an estimate there. Field and jump do not depend on the input size; ``start`` does for 'same'
    padding with a stride, where Keras pads by what the side leaves over.

    Args:
        model: A Keras model taking images.
        size: Input side in pixels; ``None`` assumes every side is a multiple of the strides.

    Returns:
        Layer name -> geometry of that layer's output.
    """
    field, jump, start, side, out = 1, 1, 0.0, size, {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, stride, dilation = layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
        elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            kernel, stride, dilation = layer.pool_size[0], layer.strides[0], 1
        else:
            out[layer.name] = FieldGeometry(field, jump, start)
            continue
        span = (kernel - 1) * dilation + 1
        if layer.padding == "same":
            outputs = -(-side // stride) if side is not None else None
            leftover = stride if side is None else side - (outputs - 1) * stride
            pad = max(span - leftover, 0) // 2
            side = outputs
        else:
            pad = 0
            side = None if side is None else (side - span) // stride + 1
        start += ((span - 1) / 2 - pad) * jump
        field += (span - 1) * jump
        jump *= stride
        out[layer.name] = FieldGeometry(field, jump, start)
    return out


def receptive_fields(model: keras.Model) -> dict[str, int]:
    """Receptive field side of every layer (``receptive_geometry``'s ``field``)."""
    return {name: geometry.field for name, geometry in receptive_geometry(model).items()}


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


def load_model(name: str, weights: str = "imagenet", seed: int = 0,
               preprocess: str | None = None) -> LoadedModel:
    """Load a ``keras.applications`` model by name, or a saved ``.keras`` / ``.h5`` model by path.

    ``weights``: ``imagenet`` (Keras' download and cache), ``random`` (seeded, untrained), or a
    path to a weights file. Every failure is an AtlasError with a one-line explanation.
    """
    path = Path(name)
    if path.suffix in {".keras", ".h5"}:
        loaded = _load_saved(path, weights)
        min_size = 1
    else:
        app = _application_name(name)
        loaded = _load_application(app, weights, seed)
        mode, min_size = _APPLICATIONS.get(app, ("raw", 32))
        preprocess = preprocess or mode
    model, source = loaded
    shape = model.inputs[0].shape
    if len(shape) != 4 or shape[-1] != 3:
        raise AtlasError(f"model input must be images of shape (H, W, 3), got {tuple(shape[1:])}")
    fixed = shape[1] if shape[1] is not None and shape[1] == shape[2] else None
    if shape[1] != shape[2]:
        raise AtlasError(f"model input must be square, got {tuple(shape[1:])}")
    return LoadedModel(
        model=model,
        name=_slug_name(model.name if path.suffix else name),
        weights=source,
        trained=source != "random",
        weights_sha256=weights_digest(model),
        preprocess=preprocess or "raw",
        min_size=min_size,
        fixed_size=fixed,
    )


def weights_digest(model: keras.Model) -> str:
    """sha256 over every weight's shape and float32 values, in model order."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value), dtype="float32")
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _slug_name(name: str) -> str:
    return name.lower()


def _application_name(name: str) -> str:
    available = {n.lower(): n for n in dir(keras.applications) if n[:1].isupper()}
    if name.lower() not in available:
        close = difflib.get_close_matches(name.lower(), list(available), n=1)
        hint = f"; did you mean {available[close[0]]!r}?" if close else ""
        raise AtlasError(
            f"unknown model {name!r}: not a keras.applications name nor a .keras/.h5 file{hint}"
        )
    return available[name.lower()]


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
