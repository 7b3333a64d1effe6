"""How the natural patches of the committed evidence are best stored for the site: one WebP file per
patch (top and bottom 9 of every filter; measured on a seeded sample of patches, extrapolated),
against what the site uses, one downscaled copy per image with each patch drawn from it by its box.

Usage: ``python benchmarks/size_patches.py [--evidence docs/atlas/vgg16/evidence.json] [--sample 300]``
(the set's originals from ``$FILTER_ATLAS_IMAGENET_SAMPLES``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidence", type=Path, default=REPO / "docs/atlas/vgg16/evidence.json")
    parser.add_argument("--sample", type=int, default=300)
    args = parser.parse_args()

    from filter_atlas.naturals import load_image, resolve_set

    evidence = json.loads(args.evidence.read_text())
    originals = {s.name: s.path for s in resolve_set(evidence["set"]).sources}
    patches = [(layer, side, f, j) for layer in evidence["layers"] for side in ("top", "bottom")
               for f in range(layer["filters"]) for j in range(len(layer[side]["image"][f]))]
    sample = random.Random(0).sample(patches, min(args.sample, len(patches)))
    height = evidence["size"][0]
    for side_px in (48, 64, 96):
        total = 0
        for layer, side, f, j in sample:
            name = evidence["images"][layer[side]["image"][f][j]]["name"]
            x0, y0, x1, y1 = layer[side]["box"][f][j]
            crop = Image.fromarray(load_image(originals[name], height)[y0:y1, x0:x1])
            crop = crop.resize((min(side_px, crop.width), min(side_px, crop.height)))
            buffer = io.BytesIO()
            crop.save(buffer, "WEBP", quality=75)
            total += len(buffer.getvalue())
        mean = total / len(sample)
        print(f"one file per patch, <= {side_px} px WebP q75: {len(patches):,} files, "
              f"{mean * len(patches) / 2**20:.1f} MiB (mean {mean:.0f} B)")
    copies = [REPO / "docs/atlas" / i["copy"] for i in evidence["images"] if i["copy"]]
    size = sum(p.stat().st_size for p in copies)
    print(f"one {evidence['copy_side']} px copy per image, patches drawn by box: {len(copies):,} files, "
          f"{size / 2**20:.1f} MiB")
    print(f"(set: {evidence['set']}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
