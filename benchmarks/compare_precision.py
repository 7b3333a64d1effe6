"""Lucid in float32 against Lucid in bfloat16 on the same filters: activation reached and time.

Renders the filters of each layer in one batch per precision (same seeds, size and steps), prints
each filter's activation (measured in float32 on the saved image either way), their ratio and the
wall time of each render, and with ``--image`` writes the images side by side (float32 on top).
Usage: ``python benchmarks/compare_precision.py [--size 128 --steps 512 --image out.png]``.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_WEIGHTS = os.environ.get("FILTER_ATLAS_WEIGHTS") or str(
    HERE.parents[1] / "shared/weights/vgg16_imagenet_notop.h5"
)
PRECISIONS = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--layers", help="LAYER:I,J,...;LAYER:...",
                        default="block3_conv2:3,17,21,70,101,200;block5_conv2:0,13,334,352,400,481")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--image", type=Path, help="write the images here, float32 above bfloat16")
    args = parser.parse_args()

    from filter_atlas import get_recipe, load_model, render
    from filter_atlas import objectives as obj

    model = load_model("vgg16", args.weights)
    rows = []
    for part in args.layers.split(";"):
        layer, _, filters = part.partition(":")
        objectives = [obj.channel(layer, int(i)) for i in filters.split(",")]
        results, seconds = {}, {}
        for precision in PRECISIONS:
            recipe = replace(get_recipe("lucid"), precision=precision)
            start = time.perf_counter()
            results[precision] = render(model, objectives, recipe=recipe, size=args.size, steps=args.steps)
            seconds[precision] = time.perf_counter() - start
        ratio = results["bfloat16"].activations / results["float32"].activations
        print(f"{layer}: {args.size} px, {args.steps} steps; render {seconds['float32']:.0f} s (float32), "
              f"{seconds['bfloat16']:.0f} s (bfloat16), {seconds['float32'] / seconds['bfloat16']:.2f}x")
        for i, a32, a16, r in zip(filters.split(","), results["float32"].activations,
                                  results["bfloat16"].activations, ratio, strict=True):
            print(f"  filter {i:>4}: float32 {a32:10.1f}  bfloat16 {a16:10.1f}  ratio {r:.3f}")
        print(f"  ratio median {np.median(ratio):.3f}, range {ratio.min():.3f} to {ratio.max():.3f}",
              flush=True)
        rows.append([np.concatenate(list(results[p].images), axis=1) for p in PRECISIONS])
    if args.image:
        Image.fromarray(np.concatenate([image for row in rows for image in row], axis=0)).save(args.image)


if __name__ == "__main__":
    main()
