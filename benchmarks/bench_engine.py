"""Speed of the engine against tf-keras-vis 0.8.7 and the compiled forward/backward floor.

All run in this one process, on the same VGG16 weights, layer, filters (one image per filter, in
one batch), image size and step count, with the pixel-space keras-vis recipe:

- filter-atlas: ``filter_atlas.render`` with the ``keras-vis`` recipe (jitter 16, Lp + TV, RMSProp);
- tf-keras-vis: ``ActivationMaximization`` with Jitter(16), TotalVariation2D and Norm, RMSprop
  (TensorFlow backend only: it is built on ``tf.GradientTape``);
- floor: the truncated network's forward pass and input gradient, nothing else, compiled with
  XLA and (TensorFlow) as a plain graph; the faster of the two is the floor;
- own-filter floor: the same, but the target layer computes only each image's own filter, as the
  engine does: what is left over it is the engine's optimizer and regularizer work.

Each is warmed up once (compilation excluded), then timed. Prints ms per filter-step and the
ratios. Usage: ``python benchmarks/bench_engine.py [--layer block3_conv2 --size 128 ...]``;
``KERAS_BACKEND=jax`` measures the JAX backend.
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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras
    from filter_atlas import load_model, render
    from filter_atlas import objectives as obj
    from filter_atlas.engine import backend, objectives
    from keras import ops

    filters = [int(f) for f in args.filters.split(",")]
    loaded = load_model("vgg16", args.weights)
    trunk, conv = loaded.truncate(args.layer)
    n, steps = len(filters), args.steps
    seed = np.random.default_rng(0).uniform(0, 255, (n, args.size, args.size, 3)).astype("float32")

    objs = [obj.channel(args.layer, i) for i in filters]
    times = {"filter-atlas": timed(
        lambda: render(loaded, objs, recipe="keras-vis", size=args.size, steps=steps), args.repeats)}

    if backend.name() == "tensorflow":
        from tf_keras_vis.activation_maximization import ActivationMaximization
        from tf_keras_vis.activation_maximization.input_modifiers import Jitter
        from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D
        from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayer, ReplaceToLinear
        from tf_keras_vis.utils.scores import CategoricalScore

        am = ActivationMaximization(loaded.model, model_modifier=[ExtractIntermediateLayer(args.layer),
                                                                  ReplaceToLinear()], clone=True)

        def tf_keras_vis() -> None:
            am(CategoricalScore(filters), seed_input=seed.copy(), steps=steps,
               input_modifiers=[Jitter(16)],
               regularizers=[TotalVariation2D(weight=10.0), Norm(weight=10.0, p=6)],
               optimizer=keras.optimizers.RMSprop(1.0, 0.95))

        times["tf-keras-vis"] = timed(tf_keras_vis, args.repeats)

    weights = ([v.value for v in trunk.trainable_variables], [])
    kernel, bias = conv.kernel.value, conv.bias.value
    chosen = ops.convert_to_tensor(np.array(filters, dtype="int32")[:, None])
    x = ops.convert_to_tensor(seed - 120.0)

    def full_loss(x, weights):
        features, _ = trunk.stateless_call(*weights, x)
        maps = objectives.preact(features, conv, kernel, bias)
        return ops.sum(objectives.select_filters(maps, chosen)), ()

    def own_loss(x, weights):
        features, _ = trunk.stateless_call(*weights, x)
        return ops.sum(objectives.own_filter_preact(features, conv, kernel, bias, chosen)), ()

    def floor(loss, compile_fn) -> float:
        step = compile_fn(backend.value_and_grad(loss))

        def run() -> None:
            for _ in range(steps):
                _, grad = step(x, weights)
            np.asarray(grad)

        return timed(run, args.repeats)

    if backend.name() == "tensorflow":
        import tensorflow as tf

        times["floor, XLA"] = floor(full_loss, lambda f: tf.function(f, jit_compile=True))
        times["floor, TF graph"] = floor(full_loss, lambda f: tf.function(f, jit_compile=False))
    else:
        times["floor, XLA"] = floor(full_loss, backend.jit)
    times["own-filter floor"] = floor(own_loss, backend.jit)

    t_ours = times["filter-atlas"]
    t_floor = min(t for name, t in times.items() if name.startswith("floor"))
    per = n * steps
    print(f"VGG16 {args.layer}, {n} filters in one batch, {args.size} px, {steps} steps, "
          f"backend {backend.name()}, device {backend.device()}, {os.cpu_count()} CPUs")
    print(f"{'method':<17} {'ms/filter-step':>15} {'vs filter-atlas':>16}")
    for name, t in times.items():
        print(f"{name:<17} {1000 * t / per:>15.2f} {t / t_ours:>15.2f}x")
    if "tf-keras-vis" in times:
        print(f"speed-up over tf-keras-vis: {times['tf-keras-vis'] / t_ours:.2f}x (target >= 2)")
    print(f"cost over the floor: {t_ours / t_floor:.2f}x (target <= 1.3); "
          f"over the own-filter floor: {t_ours / times['own-filter floor']:.2f}x")


if __name__ == "__main__":
    main()
