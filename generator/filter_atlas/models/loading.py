"""Loading: a ``keras.applications`` model or a saved model file, with its weights (ImageNet,
random, or a weights file), and the digest that identifies those weights."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import sys
import warnings
from pathlib import Path

import keras
import numpy as np

from ..errors import AtlasError, WeightsUnavailable
from ..spec import MODEL_FILES, WEIGHTS_ENV, shown_path
from .graph import scope_safe
from .loaded import LoadedModel

# keras.applications name -> (preprocessing mode, smallest input side it accepts).
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
    scope_safe(model)
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
        held = _HeldLine(sys.stdout)
        try:
            with contextlib.redirect_stdout(held):
                model = builder(weights="imagenet", **kwargs)
        except Exception as exc:  # download errors come in many types
            raise WeightsUnavailable(
                f"could not get {app}'s ImageNet weights ({type(exc).__name__}: {_first_line(exc)}); "
                f"offline? supply the file with --weights PATH or {WEIGHTS_ENV}=PATH"
            ) from exc
        held.release()
        return model, "imagenet"
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


class _HeldLine(io.TextIOBase):
    """Standard output that holds the first line written to it (Keras' "Downloading data from
    URL") until more follows (the download's progress): offline, the download fails at once and
    that line is never shown, so the user reads one line, the error."""

    def __init__(self, out):
        self.out, self.held, self.passing = out, "", False

    def write(self, text: str) -> int:
        if self.passing:
            return self.out.write(text)
        self.held += text
        rest = self.held.partition("\n")[2]
        if rest:  # something after the first line: the download is under way
            self.passing = True
            self.release()
        return len(text)

    def release(self) -> None:
        """Write what is held."""
        if self.held:
            self.out.write(self.held)
            self.held = ""
