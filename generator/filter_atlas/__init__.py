"""Filter Atlas: Activation Maximization images of convolution filters, published with MkDocs.

Data flows one way: spec -> models -> engine -> store (images + manifest) -> pages -> MkDocs.
The Python API::

    from filter_atlas import load_model, render, objectives as obj
    model = load_model("vgg16", weights="/abs/path/vgg16_imagenet_notop.h5")
    r = render(model, obj.channel("block3_conv2", 17), size=128, steps=256)
    r.images, r.activations

Importing the package loads no deep-learning library; the names below load Keras on first use,
so ``KERAS_BACKEND`` can still be chosen before that.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "models", "LoadedModel": "models",
    "render": "api", "RenderResult": "api", "score": "api", "gradient": "api", "channel_means": "api",
    "Recipe": "engine.recipes", "get_recipe": "engine.recipes",
    "Pixel": "engine.param", "Fourier": "engine.param",
    "Jitter": "engine.transforms", "Scale": "engine.transforms", "Rotate": "engine.transforms",
    "Adam": "engine.optimizers", "RMSProp": "engine.optimizers",
    "AtlasError": "errors",
}
__all__ = [
    "Adam", "AtlasError", "Fourier", "Jitter", "LoadedModel", "Pixel", "RMSProp", "Recipe", "RenderResult",
    "Rotate", "Scale", "__version__", "channel_means", "get_recipe", "gradient", "load_model", "objectives",
    "render", "score",
]

if TYPE_CHECKING:
    from . import objectives
    from .api import RenderResult, channel_means, gradient, render, score
    from .engine.optimizers import Adam, RMSProp
    from .engine.param import Fourier, Pixel
    from .engine.recipes import Recipe, get_recipe
    from .engine.transforms import Jitter, Rotate, Scale
    from .errors import AtlasError
    from .models import LoadedModel, load_model


def __getattr__(name: str) -> Any:
    if name == "objectives":
        return import_module(".objectives", __name__)
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'filter_atlas' has no attribute {name!r}")
