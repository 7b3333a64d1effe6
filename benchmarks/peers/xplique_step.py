"""Time xplique's Fourier feature-visualization step; run inside the xplique virtual environment.

``bench_engine.py`` makes that environment (xplique 2.0.2 needs TensorFlow <= 2.20) and calls
this script, which prints one JSON line: ``{"ms_per_filter_step": ..., "versions": {...}}``.

Setting: ``xplique.features_visualizations.optimize`` with its defaults (Fourier
parameterization, decay 0.85, sigmoid, Adam 0.05, its "standard" transformations), one image per
channel of ``Objective.layer``'s channel objective, on VGG16 with the same weights file, at the
given size (``custom_shape`` = the model's input size, so its resize is the identity).

``optimize`` builds a new ``tf.function`` per call, so a call's time includes tracing; the step
time is the difference between a long and a short call divided by the difference in steps.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--layer", required=True)
    parser.add_argument("--filters", required=True, help="comma-separated channel indices")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import tensorflow as tf
    import xplique
    from xplique.features_visualizations import Objective, optimize

    model = tf.keras.applications.VGG16(include_top=False, weights=None,
                                        input_shape=(args.size, args.size, 3))
    model.load_weights(args.weights)
    filters = [int(f) for f in args.filters.split(",")]
    objective = Objective.channel(model, args.layer, filters)

    def run(steps: int) -> float:
        start = time.perf_counter()
        images, _ = optimize(objective, nb_steps=steps, custom_shape=(args.size, args.size))
        images[-1].numpy()
        return time.perf_counter() - start

    short = max(1, args.steps // 4)
    run(short)  # warm-up: oneDNN primitives, Keras model build
    best = min(run(args.steps) - run(short) for _ in range(args.repeats))
    per = best / ((args.steps - short) * len(filters))
    print(json.dumps({"ms_per_filter_step": 1000 * per,
                      "versions": {"xplique": xplique.__version__, "tensorflow": tf.__version__}}))


if __name__ == "__main__":
    main()
