"""Speed of the engine per recipe against its peer and the compiled floor, in one run.

For each layer, on the same VGG16 weights, filters (one image per filter, in one batch), image
size and step count:

- ``keras-vis`` recipe (pixel space, jitter 16, Lp + TV, RMSProp): filter-atlas against
  tf-keras-vis 0.8.7's ``ActivationMaximization`` with the same settings, in this process
  (TensorFlow backend only: it is built on ``tf.GradientTape``);
- ``lucid`` recipe (Fourier, decorrelated colour, transformation robustness, Adam): filter-atlas
  against xplique 2.0.2's Fourier ``optimize`` with its defaults, run by
  ``peers/xplique_step.py`` in its own virtual environment (xplique needs TensorFlow <= 2.20),
  which this script makes at ``benchmarks/.venv-xplique`` on first use (``--xplique-python``
  names another interpreter, ``--no-xplique`` skips it);
- ``lucid`` with ``precision="bfloat16"`` (the model up to the target layer computes in
  bfloat16; other pixels, so opt-in) against the same xplique figure;
- floor: the truncated network's forward pass and input gradient and nothing else (own filters
  only at the target layer, as the engine computes), as a TensorFlow graph: the cost of the
  model's arithmetic, which every recipe pays;
- the machine's compute rate: a 2048 x 2048 matrix product in float32 and bfloat16, and each
  row's achieved rate, counting 4 x the multiply-adds of every conv up to and including the
  target layer per image-step (forward and input gradient, the target layer in full as xplique
  computes it). A float32 step at that rate cannot get faster without less arithmetic.

Each time is a long run minus a short run of the same work (after a warm-up), so start-up,
tracing and final measurement cancel; best of ``--repeats``. Prints ms per filter-step and the
ratios. Usage: ``python benchmarks/bench_engine.py [--layers block3_conv2,block5_conv2 --size 128]``;
``KERAS_BACKEND=jax`` measures the JAX backend (no peers there).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_WEIGHTS = os.environ.get("FILTER_ATLAS_WEIGHTS") or str(
    HERE.parents[1] / "shared/weights/vgg16_imagenet_notop.h5"
)
XPLIQUE_VENV = HERE / ".venv-xplique"
# xplique 2.0.2 asks for tensorflow[and-cuda] (gigabytes of CUDA wheels) on Linux: install its
# CPU dependencies by hand, then xplique itself without dependencies.
XPLIQUE_REQUIREMENTS = [
    "tensorflow==2.20.0", "tensorflow-probability[tf]==0.25.0", "einops", "deprecated",
    "opencv-python-headless", "matplotlib", "scikit-image==0.25.2", "scikit-learn==1.7.2",
    "scipy==1.15.3", "h5py",
]


# (label, recipe, precision) of each row of a layer.
ROWS = (("keras-vis", "keras-vis", "float32"), ("lucid", "lucid", "float32"),
        ("lucid-bfloat16", "lucid", "bfloat16"))


def per_step(run: Callable[[int], None], steps: int, repeats: int, short: int | None = None) -> float:
    """Seconds per step of ``run(steps)``: a long run minus a short one (``short``, default a
    quarter of ``steps``), best of ``repeats``."""
    short = short or max(1, steps // 4)
    run(short)  # warm-up: compilation, oneDNN primitives
    best = float("inf")
    for _ in range(repeats):
        times = []
        for n in (steps, short):
            start = time.perf_counter()
            run(n)
            times.append(time.perf_counter() - start)
        best = min(best, times[0] - times[1])
    return best / (steps - short)


def xplique_python(requested: str | None) -> str:
    """The interpreter of the xplique environment, made on first use."""
    if requested:
        return requested
    python = XPLIQUE_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {XPLIQUE_VENV} (xplique 2.0.2, TensorFlow 2.20; once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(XPLIQUE_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run(pip + XPLIQUE_REQUIREMENTS, check=True)
        subprocess.run([*pip, "--no-deps", "xplique==2.0.2"], check=True)
    return str(python)


def xplique_step(python: str, weights: str, layer: str, filters: list[int], size: int, steps: int,
                 repeats: int) -> float:
    """Seconds per filter-step of xplique's Fourier step (see ``peers/xplique_step.py``)."""
    out = subprocess.run(
        [python, str(HERE / "peers" / "xplique_step.py"), "--weights", weights, "--layer", layer,
         "--filters", ",".join(map(str, filters)), "--size", str(size), "--steps", str(steps),
         "--repeats", str(repeats)],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["ms_per_filter_step"] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--layers", default="block3_conv2,block5_conv2")
    parser.add_argument("--filters", default="0,1,2,3,4,5")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--xplique-python", help="an interpreter with xplique 2.0.2 installed")
    parser.add_argument("--no-xplique", action="store_true")
    args = parser.parse_args()

    import keras
    from filter_atlas import load_model, render
    from filter_atlas import objectives as obj
    from filter_atlas.api import compiled
    from filter_atlas.engine import backend
    from filter_atlas.engine.recipes import get_recipe

    filters = [int(f) for f in args.filters.split(",")]
    n, size = len(filters), args.size
    loaded = load_model("vgg16", args.weights)
    tf_backend = backend.name() == "tensorflow"
    peers = {"keras-vis": "tf-keras-vis 0.8.7", "lucid": "xplique 2.0.2 (Fourier)"}
    python = None if args.no_xplique or not tf_backend else xplique_python(args.xplique_python)
    print(f"VGG16, {n} filters in one batch, {size} px, {args.steps} steps, backend "
          f"{backend.name()}, device {backend.device()}, {os.cpu_count()} CPUs; ms per filter-step")
    peaks = {dtype: matmul_gflops(dtype) for dtype in ("float32", "bfloat16")}
    print("2048x2048 matrix product: " + ", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in peaks.items()))
    print(f"{'layer':<13} {'recipe':<15} {'compile':<7} {'filter-atlas':>12} {'GFLOP/s':>7} {'peer':<24} "
          f"{'peer ms':>8} {'GFLOP/s':>7} {'speed-up':>8} {'floor':>6} {'GFLOP/s':>7} {'vs floor':>8}")

    for layer in args.layers.split(","):
        seed = np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")
        floor = floor_per_step(loaded, layer, filters, size, args.steps, args.repeats)
        (conv_info,) = loaded.resolve_layers((layer,), size)
        gflop = 4 * conv_info.cost / 1e9  # per image-step

        t_xplique = None
        for name, base, precision in ROWS:
            recipe = dataclasses.replace(get_recipe(base), precision=precision)
            objs = [obj.channel(layer, i) for i in filters]

            def ours(steps: int, recipe=recipe, objs=objs) -> None:
                render(loaded, objs, recipe=recipe, size=size, steps=steps)

            t_ours = per_step(ours, args.steps, args.repeats) / n
            t_peer = None
            if base == "keras-vis" and tf_backend:
                t_peer = per_step(tf_keras_vis(loaded, keras, layer, filters, seed), args.steps,
                                  args.repeats) / n
            elif base == "lucid" and python:
                if t_xplique is None:
                    t_xplique = xplique_step(python, args.weights, layer, filters, size, args.steps,
                                             args.repeats)
                t_peer = t_xplique
            mode = "XLA" if compiled(loaded, layer, recipe, size).xla else "graph"
            peer = peers[base]
            peer_ms = f"{1000 * t_peer:>8.1f} {gflop / t_peer:>7.0f}" if t_peer else f"{'-':>8} {'-':>7}"
            speed_up = f"{t_peer / t_ours:>7.2f}x" if t_peer else f"{'-':>8}"
            print(f"{layer:<13} {name:<15} {mode:<7} {1000 * t_ours:>12.1f} {gflop / t_ours:>7.0f} "
                  f"{peer:<24} {peer_ms} {speed_up} {1000 * floor:>6.1f} {gflop / floor:>7.0f} "
                  f"{t_ours / floor:>7.2f}x", flush=True)


def floor_per_step(loaded, layer: str, filters: list[int], size: int, steps: int, repeats: int,
                   precision: str = "float32", short: int | None = None) -> float:
    """Seconds per filter-step of the floor: the truncated network's forward pass and input
    gradient and nothing else (only the ``filters`` at ``layer``, one image each, as the engine
    computes), compiled as a graph; the model up to the layer in ``precision``."""
    from filter_atlas.engine import backend, targets
    from filter_atlas.engine import precision as compute
    from keras import ops

    trunk, conv = loaded.truncate(layer)
    n = len(filters)
    seed = np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")
    weights = ([v.value for v in trunk.trainable_variables], [])
    chosen = ops.convert_to_tensor(np.array(filters, dtype="int32")[:, None])
    x = ops.convert_to_tensor(seed - 120.0)

    def own_loss(x, weights):
        with compute.computing_in(trunk, compute.check(precision)):
            features, _ = trunk.stateless_call(*weights, x)
        features = ops.cast(features, "float32")
        return ops.sum(targets.own_filter_preact(features, conv, targets.weights(conv), chosen)), ()

    step = backend.jit(backend.value_and_grad(own_loss), xla=False)

    def floor_run(steps: int) -> None:
        for _ in range(steps):
            _, grad = step(x, weights)
        np.asarray(grad)

    return per_step(floor_run, steps, repeats, short) / n


def matmul_gflops(dtype: str, n: int = 2048, repeats: int = 3) -> float:
    """The backend's rate on n x n matrix products in ``dtype`` (per-product time, long run minus
    short run, best of ``repeats``)."""
    from keras import ops

    a = ops.cast(ops.convert_to_tensor(np.random.default_rng(0).standard_normal((n, n), "float32")), dtype)

    def run(products: int) -> None:
        out = [ops.matmul(a, a) for _ in range(products)]
        np.asarray(ops.convert_to_numpy(ops.cast(out[-1][:1, :1], "float32")))

    return 2 * n**3 / per_step(run, 8, repeats) / 1e9


def tf_keras_vis(loaded, keras, layer: str, filters: list[int], seed: np.ndarray) -> Callable[[int], None]:
    """tf-keras-vis' ActivationMaximization with the keras-vis recipe's settings."""
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.input_modifiers import Jitter
    from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D
    from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayer, ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    am = ActivationMaximization(loaded.model, model_modifier=[ExtractIntermediateLayer(layer),
                                                              ReplaceToLinear()], clone=True)

    def run(steps: int) -> None:
        am(CategoricalScore(filters), seed_input=seed.copy(), steps=steps, input_modifiers=[Jitter(16)],
           regularizers=[TotalVariation2D(weight=10.0), Norm(weight=10.0, p=6)],
           optimizer=keras.optimizers.RMSprop(1.0, 0.95))

    return run


if __name__ == "__main__":
    main()
