"""Recipes: a parameterization, transforms, an optimizer and a penalty, composed.

A recipe's ``key()`` is built from its parts' own keys and goes into the cache key of every image
it makes: changing any part (a transform's range, the learning rate, the steps, the penalty
weight, the compile mode) re-renders. ``name`` is only a label and is not in the key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from ..errors import AtlasError
from .objectives import Objective, lp_norm, total_variation
from .optimizers import Adam, RMSProp
from .param import Fourier, Pixel
from .precision import Precision, check
from .transforms import Jitter, Rotate, Scale, Transform


@dataclass(frozen=True)
class Recipe:
    """How an image is optimized.

    Args:
        name: A label for pages and file names.
        param: The image parameterization (``Pixel()`` or ``Fourier()``).
        transforms: Random warps per step, drawn in this order (see ``transforms.draw``).
        optimizer: ``Adam(...)`` or ``RMSProp(...)``.
        steps: Optimization steps.
        penalty: Subtracted from every image's objective while optimizing (not in the
            reported activations); ``None`` for none.
        edge: What a warp reveals outside the image: ``grey`` (Lucid's padding) or ``wrap``
            (keras-vis' rolling jitter).
        keep_best: Return the iterate of lowest loss rather than the last one.
        standardize: Final image to zero mean, std 0.1 around grey (keras-vis' deprocess_input).
        redirect_steps: First steps with the ReLU gradient redirected (Lucid).
        xla: TensorFlow only: compile the step with XLA (``True``) or as a graph whose
            convolutions run on oneDNN (``False``); ``None`` lets ``choose_xla`` pick by layer.
        precision: The model's compute precision in the step, ``float32`` or ``bfloat16``
            (see ``engine.precision``); reported activations are always measured in float32.
    """

    name: str
    param: Pixel | Fourier
    transforms: tuple[Transform, ...]
    optimizer: Adam | RMSProp
    steps: int
    penalty: Objective | None = None
    edge: Literal["grey", "wrap"] = "grey"
    keep_best: bool = False
    standardize: bool = False
    redirect_steps: int = 16
    xla: bool | None = None
    precision: Precision = "float32"

    def __post_init__(self) -> None:
        check(self.precision)
        if self.edge not in ("grey", "wrap"):
            raise AtlasError(f"recipe edge must be 'grey' or 'wrap', got {self.edge!r}")
        if self.steps <= 0:
            raise AtlasError(f"recipe steps must be positive, got {self.steps}")

    def with_steps(self, steps: int | None) -> Recipe:
        return self if steps is None else replace(self, steps=steps)

    def jitter_at_most(self, pixels: int) -> Recipe:
        """The recipe with every jitter shifting at most ``pixels``."""
        return replace(self, transforms=tuple(Jitter(min(t.pixels, pixels)) if isinstance(t, Jitter) else t
                                              for t in self.transforms))

    def key(self) -> dict[str, Any]:
        return {
            "param": self.param.key(),
            "transforms": [t.key() for t in self.transforms],
            "optimizer": self.optimizer.key(),
            "steps": self.steps,
            "penalty": None if self.penalty is None else self.penalty.key(),
            "edge": self.edge,
            "keep_best": self.keep_best,
            "standardize": self.standardize,
            "redirect_steps": self.redirect_steps,
            "xla": self.xla,
            # Only when not the default, so float32 keys stay what they were before the option.
            **({"precision": self.precision} if self.precision != "float32" else {}),
        }


KERAS_VIS = Recipe(
    # keras-vis (Kotikalapudi et al., 2017), visualize_activation() defaults with
    # input_modifiers=[Jitter(16)]: pixel space from grey plus noise, loss =
    # -activation + 10 * L6-norm + 10 * TV(beta=2), each normalized by the input's size, gradient
    # divided by its RMS, RMSProp (decay 0.95) with unit step, 200 steps, best iterate kept,
    # then deprocess_input (standardize to std 0.1 around 0.5).
    name="keras-vis",
    param=Pixel(),
    transforms=(Jitter(16),),
    optimizer=RMSProp(learning_rate=1.0, decay=0.95, normalize=True),
    steps=200,
    penalty=10.0 * lp_norm(6.0) + 10.0 * total_variation(2.0),
    edge="wrap",
    keep_best=True,
    standardize=True,
)

LUCID = Recipe(
    # Lucid (Olah, Mordvintsev, Schubert, "Feature Visualization", Distill 2017; lucid.optvis
    # render_vis defaults): Fourier parameterization with 1/f scaling and ImageNet colour
    # decorrelation, sigmoid to [0, 1]; transformation robustness = pad 12 (grey), jitter 8,
    # scale 0.9..1.1, rotate -10..10 degrees, jitter 4 (here composed into one affine warp);
    # Adam, learning rate 0.05, 512 steps; no penalty terms.
    name="lucid",
    param=Fourier(decay=1.0),
    transforms=(Jitter(8), Jitter(4), Scale(tuple(1 + (i - 5) / 50 for i in range(11))),
                Rotate(tuple(float(a) for a in range(-10, 11)) + (0.0,) * 5)),
    optimizer=Adam(learning_rate=0.05),
    steps=512,
    edge="grey",
)

# Multiply-adds per input pixel of every conv up to the target layer below which TensorFlow
# compiles with XLA: there the step's image-side work (the Fourier image, the warp, the penalty:
# dozens of elementwise and gather ops that XLA fuses) outweighs the convolutions, which oneDNN
# runs faster than XLA's CPU code. Measured by benchmarks/bench_compile.py (README, "Compile
# mode"): VGG16's block1_conv1 (1,728) is faster with XLA, block1_conv2 (38,592) and every deeper
# layer faster as a graph, at 128 and 224 px, for both recipes.
XLA_BELOW_MACS_PER_PIXEL = 10_000


def choose_xla(recipe: Recipe, backend_name: str, macs_per_pixel: float) -> bool:
    """The compile mode of ``recipe``'s step: its own ``xla`` when set, else the measured rule.

    Args:
        recipe: The recipe.
        backend_name: ``tensorflow`` or ``jax`` (JAX always compiles with XLA).
        macs_per_pixel: Multiply-adds of every conv up to the target layer, per input pixel.

    Returns:
        True for XLA.
    """
    if backend_name == "jax":
        return True
    if recipe.xla is not None:
        return recipe.xla
    return macs_per_pixel < XLA_BELOW_MACS_PER_PIXEL


RECIPES: dict[str, Recipe] = {r.name: r for r in (KERAS_VIS, LUCID)}


def get_recipe(recipe: str | Recipe) -> Recipe:
    """A built-in recipe by name (``lucid``, ``keras-vis``), or ``recipe`` itself.

    Args:
        recipe: A name or a ``Recipe``.

    Returns:
        The recipe; an unknown name is an AtlasError.
    """
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise AtlasError(f"unknown recipe {recipe!r} (choose from {', '.join(RECIPES)})")
    return RECIPES[recipe]
