"""Speed of the engine against tf-keras-vis 0.8.7 and the compiled forward/backward floor.

All three run in this one process, on the same VGG16 weights, layer, filters (one image per
filter, in one batch), image size and step count, with the pixel-space keras-vis recipe:

- filter-atlas: ``LayerRenderer`` with the ``keras-vis`` recipe (jitter 16, Lp + TV, RMSProp);
- tf-keras-vis: ``ActivationMaximization`` with Jitter(16), TotalVariation2D and Norm, RMSprop;
- floor: one XLA-compiled forward pass plus input gradient of the truncated network, nothing else.

Each is warmed up once (compilation excluded), then timed. Prints seconds per filter-step and
the ratios. Usage: ``python benchmarks/bench_engine.py [--layer block3_conv2 --size 128 ...]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = os.environ.get("FILTER_ATLAS_WEIGHTS") or str(
    REPO.parent / "shared/weights/vgg16_imagenet_notop.h5"
)


def timed(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--layer", default="block3_conv2")
    parser.add_argument("--filters", default="0,1,2,3,4,5")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import keras
    import tensorflow as tf
    from filter_atlas.engine import backend
    from filter_atlas.engine.optimize import LayerRenderer
    from filter_atlas.engine.recipes import get_recipe
    from filter_atlas.models import load_model
    from keras import ops
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.input_modifiers import Jitter
    from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D
    from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayer, ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    filters = [int(f) for f in args.filters.split(",")]
    loaded = load_model("vgg16", args.weights)
    preact = loaded.preact_model(args.layer)
    n, steps = len(filters), args.steps
    seed = np.random.default_rng(0).uniform(0, 255, (n, args.size, args.size, 3)).astype("float32")

    ours = LayerRenderer(preact, loaded.preprocess_fn(), get_recipe("keras-vis").with_steps(steps), args.size)
    t_ours = timed(lambda: ours.render(args.layer, filters, seed=0), args.repeats)

    am = ActivationMaximization(loaded.model, model_modifier=[ExtractIntermediateLayer(args.layer),
                                                              ReplaceToLinear()], clone=True)

    def tf_keras_vis() -> None:
        am(CategoricalScore(filters), seed_input=seed.copy(), steps=steps, input_modifiers=[Jitter(16)],
           regularizers=[TotalVariation2D(weight=10.0), Norm(weight=10.0, p=6)],
           optimizer=keras.optimizers.RMSprop(1.0, 0.95))

    t_tkv = timed(tf_keras_vis, args.repeats)

    weights = ([v.value for v in preact.trainable_variables], [])
    onehot = ops.convert_to_tensor(np.eye(preact.output.shape[-1], dtype="float32")[filters])

    def loss(x, onehot, weights):
        out, _ = preact.stateless_call(*weights, x)
        return ops.sum(ops.einsum("bhwc,bc->b", out, onehot)), ()

    floor_step = backend.jit(backend.value_and_grad(loss))
    x = tf.constant(seed - 120.0)

    def floor() -> None:
        for _ in range(steps):
            _, grad = floor_step(x, onehot, weights)
        np.asarray(grad)

    t_floor = timed(floor, args.repeats)

    per = n * steps
    print(f"VGG16 {args.layer}, {n} filters in one batch, {args.size} px, {steps} steps, "
          f"backend {backend.name()}, device {backend.device()}, {os.cpu_count()} CPUs")
    print(f"{'method':<14} {'ms/filter-step':>15} {'vs filter-atlas':>16}")
    for name, t in (("filter-atlas", t_ours), ("tf-keras-vis", t_tkv), ("floor", t_floor)):
        print(f"{name:<14} {1000 * t / per:>15.2f} {t / t_ours:>15.2f}x")
    print(f"speed-up over tf-keras-vis: {t_tkv / t_ours:.2f}x (target >= 2); "
          f"cost over the floor: {t_ours / t_floor:.2f}x (target <= 1.3)")


if __name__ == "__main__":
    main()
