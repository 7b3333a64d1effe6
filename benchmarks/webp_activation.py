"""What storing channel images as lossy WebP (quality 90) costs in activation.

The engine measures each image's activation on its 8-bit pixels before they are encoded. For every
live channel image of an atlas of PNGs this script encodes those pixels anew and measures the
filter's mean activation (after ReLU) on what each file decodes to: the lossless PNG (the pixels
themselves, as a check against the manifest), the WebP the store writes, and three other
encodings. It prints the WebP's relative change per layer, and bytes and change per encoding.

    python benchmarks/webp_activation.py --atlas /work/render/atlas   # an atlas of PNGs

Needs the VGG16 weights ($FILTER_ATLAS_WEIGHTS).
"""

from __future__ import annotations

import argparse
import io
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from filter_atlas.imaging import pixels, webp_bytes
from filter_atlas.store import read_manifest
from PIL import Image

ENCODINGS = {  # name -> Pillow save arguments; "webp q90 (the store)" is ``imaging.webp_bytes``
    "png": {"format": "PNG", "compress_level": 9},
    "webp q90 (the store)": None,
    "webp q100": {"format": "WEBP", "quality": 100, "method": 6},
    "webp lossless": {"format": "WEBP", "lossless": True, "quality": 100, "method": 6},
    "jpeg q95 4:4:4": {"format": "JPEG", "quality": 95, "subsampling": 0},
}


def encoded(image: np.ndarray, how: dict | None) -> bytes:
    if how is None:
        return webp_bytes(image)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, **how)
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", type=Path, required=True,
                        help="an atlas whose channel images are PNG (rendered before they were WebP)")
    args = parser.parse_args()
    import keras

    model = keras.applications.VGG16(weights=os.environ["FILTER_ATLAS_WEIGHTS"], include_top=False)
    live = [e for e in read_manifest(args.atlas).filters
            if e.model == "vgg16" and (e.image or "").endswith(".png") and not e.dead and e.activation]
    if not live:
        raise SystemExit(f"no PNG channel images of vgg16 in {args.atlas}: the rendered pixels are needed")
    reached: dict[str, list[tuple[str, float]]] = defaultdict(list)  # encoding -> (layer, activation)
    sizes: dict[str, int] = defaultdict(int)
    recorded = []
    for layer in dict.fromkeys(e.layer for e in live):
        trunk = keras.Model(model.inputs, model.get_layer(layer).output)
        for e in (e for e in live if e.layer == layer):
            image = pixels(args.atlas / e.image)
            files = {name: encoded(image, how) for name, how in ENCODINGS.items()}
            batch = np.stack([decoded(data) for data in files.values()]).astype("float32")
            out = np.asarray(trunk(keras.applications.vgg16.preprocess_input(batch)))[..., e.index]
            for (name, data), value in zip(files.items(), out.mean(axis=(1, 2)), strict=True):
                reached[name].append((layer, float(value)))
                sizes[name] += len(data)
            recorded.append(abs(reached["png"][-1][1] / e.activation - 1))
    png = np.array([v for _, v in reached["png"]])
    webp = np.array([v for _, v in reached["webp q90 (the store)"]]) / png - 1
    layers = np.array([layer for layer, _ in reached["png"]])
    for layer in dict.fromkeys(layers):
        v = webp[layers == layer]
        print(f"{layer:14s} {len(v):2d} images: webp q90 / png activation - 1: median {np.median(v):+.2%}, "
              f"range {v.min():+.2%} to {v.max():+.2%}")
    print(f"\n{len(png)} images   KiB per image   activation / png - 1: median, worst")
    for name in ENCODINGS:
        v = np.array([x for _, x in reached[name]]) / png - 1
        print(f"  {name:22s} {sizes[name] / len(png) / 1024:6.1f}   {np.median(v):+.2%}  {v.min():+.2%}")
    print(f"png pixels against the manifest's activation: largest |difference| {max(recorded):.3%}")


if __name__ == "__main__":
    main()
