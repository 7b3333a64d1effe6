"""The two rendering recipes, each a frozen record of every setting that shapes the image."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from ..errors import AtlasError


@dataclass(frozen=True)
class Recipe:
    """How one image is optimized. Every field goes into the cache key of the images it makes."""

    name: str
    parameterization: Literal["pixel", "fourier"]
    steps: int
    optimizer: Literal["adam", "rmsprop"]
    learning_rate: float
    jitter: int  # largest integer shift per step, px
    second_jitter: int  # a second, independent integer shift after scale and rotation, px
    scales: tuple[float, ...]  # random scale factors, one drawn per step
    angles: tuple[float, ...]  # random rotations in degrees, one drawn per step
    wrap: bool  # shifts roll the image around (keras-vis) instead of revealing 0.5 grey padding
    lp_weight: float  # weight of the Lp-norm penalty on the model input (0: none)
    lp_p: float
    tv_weight: float  # weight of the total-variation penalty on the model input (0: none)
    tv_beta: float
    normalize_grads: bool  # divide each image's gradient by its RMS (keras-vis)
    keep_best: bool  # return the iterate of lowest loss rather than the last one
    standardize: bool  # final image: zero mean, std 0.1 around grey (keras-vis' deprocess_input)
    # TensorFlow: compile the step with XLA, or as a graph with oneDNN convolutions. Measured on
    # 2 CPU cores: XLA's fusion halves a Lucid step at block1 (the Fourier image and bilinear warp
    # are dozens of elementwise and gather ops), while oneDNN's convolutions make a pixel-space
    # step 1.2-1.4x faster at block2-3 (``benchmarks/bench_engine.py`` prints both floors).
    xla: bool
    redirect_steps: int = 16  # first steps with the ReLU gradient redirected (Lucid)

    def with_steps(self, steps: int | None) -> Recipe:
        return self if steps is None else replace(self, steps=steps)

    def key(self) -> dict[str, Any]:
        return asdict(self)


KERAS_VIS = Recipe(
    # keras-vis (Kotikalapudi et al., 2017), visualize_activation() defaults with
    # input_modifiers=[Jitter(16)]: pixel space from grey plus noise, loss =
    # -activation + 10 * L6-norm + 10 * TV(beta=2), each normalized by the input's size, gradient
    # divided by its RMS, RMSProp (decay 0.95) with unit step, 200 steps, best iterate kept,
    # then deprocess_input (standardize to std 0.1 around 0.5).
    name="keras-vis",
    parameterization="pixel",
    steps=200,
    optimizer="rmsprop",
    learning_rate=1.0,
    jitter=16,
    second_jitter=0,
    scales=(1.0,),
    angles=(0.0,),
    wrap=True,
    lp_weight=10.0,
    lp_p=6.0,
    tv_weight=10.0,
    tv_beta=2.0,
    normalize_grads=True,
    keep_best=True,
    standardize=True,
    xla=False,
)

LUCID = Recipe(
    # Lucid (Olah, Mordvintsev, Schubert, "Feature Visualization", Distill 2017; lucid.optvis
    # render_vis defaults): Fourier parameterization with 1/f scaling and ImageNet colour
    # decorrelation, sigmoid to [0, 1]; transformation robustness = pad 12 (grey), jitter 8,
    # scale 0.9..1.1, rotate -10..10 degrees, jitter 4 (here composed into one affine warp);
    # Adam, learning rate 0.05, 512 steps; no penalty terms.
    name="lucid",
    parameterization="fourier",
    steps=512,
    optimizer="adam",
    learning_rate=0.05,
    jitter=8,
    second_jitter=4,
    scales=tuple(1 + (i - 5) / 50 for i in range(11)),
    angles=tuple(float(a) for a in range(-10, 11)) + (0.0,) * 5,
    wrap=False,
    lp_weight=0.0,
    lp_p=6.0,
    tv_weight=0.0,
    tv_beta=2.0,
    normalize_grads=False,
    keep_best=False,
    standardize=False,
    xla=True,
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (KERAS_VIS, LUCID)}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise AtlasError(f"unknown recipe {name!r} (choose from {', '.join(RECIPES)})")
    return RECIPES[name]
