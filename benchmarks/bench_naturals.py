"""The all-filter natural pass (``examples.measure``: every filter of every conv layer) against
the bare forward passes alone, in the same run, on the same images.

1. bare: the images decoded once beforehand, then the compiled forward pass of the whole trunk
   (input to the last conv layer, the model's own preprocessing), in batches: the floor.
2. pass: ``measure`` over the set with an empty cache: reading and hashing every file, decoding,
   the forward pass with each filter's extremes found in the graph, the selection, the cache writes.
3. cached: ``measure`` again: every image from the cache, no model call.

Prints seconds, images per second, the ratio pass / bare (target <= 1.3) and the projected time for
ImageNet's 50,000 validation images. Usage:
``python benchmarks/bench_naturals.py [--set imagenet-samples] [--count 1000] [--size 224]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = os.environ.get("FILTER_ATLAS_WEIGHTS") or str(
    REPO.parent / "shared/weights/vgg16_imagenet_notop.h5")
PROJECTED = 50_000
BATCH = 8  # as examples.find.BATCH


def bare_passes(loaded, images: np.ndarray, last: str) -> float:
    """Seconds for the forward passes alone (compiled first, not timed) over ``images``."""
    from filter_atlas.engine import backend
    from keras import ops

    trunk = loaded.trunks([last])
    weights = ([v.value for v in trunk.trainable_variables], [v.value for v in trunk.non_trainable_variables])
    preprocess = loaded.preprocess_fn()

    def run(images01, weights):
        out, _ = trunk.stateless_call(weights[0], weights[1], preprocess(images01))
        return out

    step = backend.jit(run, xla=False)
    batch = np.zeros((BATCH, *images.shape[1:]), "float32")
    ops.convert_to_numpy(step(ops.convert_to_tensor(batch), weights))  # compile
    began = time.perf_counter()
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        batch[: len(chunk)] = chunk / 255.0
        ops.convert_to_numpy(step(ops.convert_to_tensor(batch), weights))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--set", default="imagenet-samples", help="imagenet-samples or a folder")
    parser.add_argument("--count", type=int, default=1000, help="the first COUNT images of the set")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()

    from filter_atlas.engine import backend
    from filter_atlas.examples import measure
    from filter_atlas.models import load_model
    from filter_atlas.naturals import load_image, resolve_set

    loaded = load_model("vgg16", args.weights)
    image_set = resolve_set(args.set)
    image_set = replace(image_set, sources=image_set.sources[: args.count])
    convs = loaded.conv_layers(args.size)
    names = [c.name for c in convs]
    n = len(image_set.sources)
    print(f"VGG16, {n} images of {image_set.name} at {args.size} px, all {sum(c.filters for c in convs)} "
          f"filters of {len(convs)} conv layers; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, device {backend.device()}")
    began = time.perf_counter()
    images = np.stack([load_image(s.path, args.size) for s in image_set.sources])
    decode = time.perf_counter() - began
    bare = bare_passes(loaded, images, names[-1])
    with tempfile.TemporaryDirectory() as cache:
        # Compile the pass on a few images first (an own cache), so neither timing holds a compile.
        measure(loaded, names, replace(image_set, sources=image_set.sources[:BATCH]), args.size,
                cache_dir=Path(cache) / "warm", progress=False)
        began = time.perf_counter()
        found = measure(loaded, names, image_set, args.size, cache_dir=Path(cache) / "run", progress=False)
        full = time.perf_counter() - began
        began = time.perf_counter()
        measure(loaded, names, image_set, args.size, cache_dir=Path(cache) / "run", progress=False)
        cached = time.perf_counter() - began
    assert found.used == n, found.skipped
    for label, seconds in (("decode only", decode), ("bare passes", bare), ("whole pass", full),
                           ("cached pass", cached)):
        print(f"{label:>12}: {seconds:7.1f} s  {n / seconds:7.1f} images/s  "
              f"{PROJECTED:,} images in {PROJECTED / n * seconds / 3600:5.2f} h")
    print(f"whole pass / bare passes: {full / bare:.2f}x (target <= 1.3x); "
          f"whole / (decode + bare): {full / (decode + bare):.2f}x")


if __name__ == "__main__":
    main()
