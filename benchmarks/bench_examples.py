"""Speed of the dataset examples pass (``examples.find_examples``) on VGG16, uncached and cached.

Writes ``--count`` JPEGs of 500x375 with random smooth content into a temporary folder, then runs
``find_examples`` twice over it for the atlas's default layers (6 filters each; every filter of a
layer is computed and cached) with a fresh cache: the first run calls the model (its time includes
compiling the forward pass), the second reads the cache only. Prints images per second for each
and the projected time for 50,000 images. Usage:
``python benchmarks/bench_examples.py [--count 200 --size 224 --layers block1_conv1,block5_conv2]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = os.environ.get("FILTER_ATLAS_WEIGHTS") or str(
    REPO.parent / "shared/weights/vgg16_imagenet_notop.h5"
)
LAYERS = "block1_conv1,block2_conv1,block3_conv2,block4_conv1,block5_conv2"
PROJECTED = 50_000


def write_images(folder: Path, count: int, seed: int = 0) -> None:
    """``count`` 500x375 JPEGs: random colour blobs (a 10x8 grid upsampled) plus fine noise."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 10, 3), dtype="uint8")).resize(
            (500, 375), Image.Resampling.BICUBIC)
        pixels = np.asarray(coarse, dtype="int16") + rng.integers(-20, 21, (375, 500, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(folder / f"{i:05d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--count", type=int, default=200, help="images in the generated folder")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--layers", default=LAYERS)
    parser.add_argument("--filters", type=int, default=6, help="filters wanted per layer")
    args = parser.parse_args()

    from filter_atlas.engine import backend
    from filter_atlas.examples import find_examples
    from filter_atlas.models import load_model
    from filter_atlas.naturals import folder_set

    loaded = load_model("vgg16", args.weights)
    wanted = {layer: list(range(args.filters)) for layer in args.layers.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp) / "images", Path(tmp) / "cache"
        folder.mkdir()
        write_images(folder, args.count)
        image_set = folder_set(folder)
        print(f"VGG16, {args.count} JPEGs 500x375 at {args.size} px, layers {args.layers}, "
              f"device {backend.device()}, {os.cpu_count()} CPUs")
        for run in ("uncached", "cached"):
            began = time.perf_counter()
            result = find_examples(loaded, wanted, image_set, args.size, cache_dir=cache, progress=False)
            seconds = time.perf_counter() - began
            rate = result.used / seconds
            print(f"{run:>8}: {seconds:7.1f} s, {rate:7.1f} images/s, "
                  f"{PROJECTED:,} images in {PROJECTED / rate / 3600:.2f} h")


if __name__ == "__main__":
    main()
