"""Compile mode on TensorFlow: the same recipe step compiled with XLA and as a oneDNN graph.

The measurements behind ``engine.recipes.choose_xla``, the rule that picks the compile mode when
a recipe leaves it to the engine (``xla=None``). For each recipe, layer and size it renders a
batch of filters with ``xla=True`` and ``xla=False`` and prints ms per filter-step (time of a
long render minus a short one, so start-up and measurement cancel), the ratio, and which mode
the rule picks. Usage: ``python benchmarks/bench_compile.py [--layers ... --sizes 128,224]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = os.environ.get("FILTER_ATLAS_WEIGHTS") or str(
    REPO.parent / "shared/weights/vgg16_imagenet_notop.h5"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--recipes", default="lucid,keras-vis")
    parser.add_argument("--layers", default="block1_conv1,block3_conv2,block5_conv2")
    parser.add_argument("--sizes", default="128,224")
    parser.add_argument("--filters", type=int, default=6, help="images per batch")
    parser.add_argument("--steps", type=int, default=16, help="steps timed (beyond a 4-step render)")
    args = parser.parse_args()

    from filter_atlas import get_recipe, load_model, render
    from filter_atlas import objectives as obj
    from filter_atlas.api import compiled
    from filter_atlas.engine import backend

    if backend.name() != "tensorflow":
        raise SystemExit("the compile mode is a TensorFlow choice (JAX always uses XLA)")
    loaded = load_model("vgg16", args.weights)
    print(f"VGG16, {args.filters} filters per batch, device {backend.device()}, {os.cpu_count()} CPUs")
    print(f"{'recipe':<10} {'layer':<13} {'size':>4} {'XLA':>8} {'graph':>8} {'XLA/graph':>9}  rule")
    for name in args.recipes.split(","):
        for layer in args.layers.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                objs = [obj.channel(layer, i) for i in range(args.filters)]
                ms = {}
                for xla in (True, False):
                    recipe = dataclasses.replace(get_recipe(name), xla=xla)

                    def run(steps: int, recipe=recipe, objs=objs, size=size) -> float:
                        start = time.perf_counter()
                        render(loaded, objs, recipe=recipe, size=size, steps=steps)
                        return time.perf_counter() - start

                    run(4)  # compile
                    seconds = min(run(4 + args.steps) - run(4) for _ in range(2))
                    ms[xla] = 1000 * seconds / (args.steps * args.filters)
                rule = "XLA" if compiled(loaded, layer, get_recipe(name), size).xla else "graph"
                best = "XLA" if ms[True] < ms[False] else "graph"
                print(f"{name:<10} {layer:<13} {size:>4} {ms[True]:>8.1f} {ms[False]:>8.1f} "
                      f"{ms[True] / ms[False]:>9.2f}  {rule}{'' if rule == best else ' (not the faster)'}",
                      flush=True)


if __name__ == "__main__":
    main()
