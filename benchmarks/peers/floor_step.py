"""The bare floor with nothing of filter-atlas: VGG16 truncated at one layer, the mean of K of its
channels, and the gradient with respect to the input, as one ``tf.function`` (no XLA). Runs in
any environment with TensorFlow and Keras, so the same arithmetic can be timed under two
TensorFlow versions (this project's and xplique's). Prints one JSON line: ms per filter-step.

Usage: ``python benchmarks/peers/floor_step.py --weights W --layer block5_conv2 --size 128``
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from tensorflow import keras


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True)
    parser.add_argument("--layer", default="block5_conv2")
    parser.add_argument("--filters", default="0,1,2,3,4,5")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    filters = [int(f) for f in args.filters.split(",")]
    vgg = keras.applications.VGG16(include_top=False, weights=args.weights,
                                   input_shape=(args.size, args.size, 3))
    trunk = keras.Model(vgg.inputs, vgg.get_layer(args.layer).output)
    x = tf.Variable(np.random.default_rng(0).normal(0, 20, (len(filters), args.size, args.size, 3))
                    .astype("float32"))
    index = tf.constant(filters)

    @tf.function
    def step() -> None:
        with tf.GradientTape() as tape:
            out = trunk(x)
            chosen = tf.gather(out, index, axis=-1)  # (K, h, w, K): each image's own filter below
            loss = tf.reduce_sum(tf.reduce_mean(tf.linalg.diag_part(
                tf.transpose(chosen, (1, 2, 0, 3))), axis=(0, 1)))
        x.assign_sub(1e-3 * tape.gradient(loss, x))

    def run(steps: int) -> float:
        began = time.perf_counter()
        for _ in range(steps):
            step()
        float(x[0, 0, 0, 0])  # wait for the work
        return time.perf_counter() - began

    run(max(1, args.steps // 4))
    best = min(run(args.steps) - run(args.steps // 4) for _ in range(args.repeats))
    per = best / (args.steps - args.steps // 4) / len(filters) * 1e3
    print(json.dumps({"tensorflow": tf.__version__, "keras": keras.__version__, "layer": args.layer,
                      "size": args.size, "ms_per_filter_step": round(per, 2)}))


if __name__ == "__main__":
    main()
