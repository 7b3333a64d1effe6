"""The diversity view against its two targets, on chosen VGG16 filters: every diverse image at
least a third of the filter's channel activation at the same size, and the 4 images more diverse
than 4 independent seeds of the channel objective alone (lower mean pairwise Gram similarity).

Renders, per layer, the view's 4 jointly optimized images and 4 independent seeds (Lucid recipe,
512 steps) at ``--size``; the channel activation at that size is the seeds' mean. The diversity
weight's scale comes from the committed channel images (``docs/atlas/manifest.json``).

    python benchmarks/diversity_check.py --filters block1_conv1:6,15,43,48,62 block5_conv2:119,334,376
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", nargs="+", required=True, help="layer:i,j,... per layer")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--manifest", type=Path, default=REPO / "docs/atlas/manifest.json")
    args = parser.parse_args()

    from filter_atlas import load_model, render, score
    from filter_atlas import objectives as obj
    from filter_atlas.store import read_manifest
    from filter_atlas.views import VIEWS
    from filter_atlas.views.diversity import IMAGES, entry_scale

    model = load_model("vgg16", weights=os.environ.get("FILTER_ATLAS_WEIGHTS", "imagenet"))
    entries = {(e.layer, e.index): e for e in read_manifest(args.manifest).filters
               if e.model == "vgg16" and e.recipe == "lucid"}
    view = VIEWS["diversity"]
    print(f"{'layer':14} {'filter':>6} {'seeds':>8} {'lowest':>8} {'ratio':>6} {'sim seeds':>9} "
          f"{'sim view':>8}  seconds")
    for spec in args.filters:
        layer, indices = spec.split(":")
        filters = [int(i) for i in indices.split(",")]
        started = time.perf_counter()
        diverse = render(model, [view.objective(layer, i, entry_scale(entries.get((layer, i))))
                                 for i in filters], n=IMAGES, size=args.size)
        seeds = render(model, [obj.channel(layer, i) for i in filters], n=IMAGES, size=args.size)
        seconds = time.perf_counter() - started
        for k, index in enumerate(filters):
            group = slice(IMAGES * k, IMAGES * (k + 1))
            reached = {name: score(model, obj.channel(layer, index), r.images[group])
                       for name, r in (("seeds", seeds), ("view", diverse))}
            similar = {name: float(np.mean(score(model, obj.diversity(layer), r.images[group])))
                       * IMAGES / (IMAGES - 1) for name, r in (("seeds", seeds), ("view", diverse))}
            reference = float(np.mean(reached["seeds"]))
            lowest = float(np.min(reached["view"]))
            print(f"{layer:14} {index:6d} {reference:8.1f} {lowest:8.1f} {lowest / reference:6.2f} "
                  f"{similar['seeds']:9.3f} {similar['view']:8.3f}  {seconds / len(filters):.0f}")
    print(f"({args.size} px, Lucid recipe, {os.cpu_count()} CPUs; ratio: the lowest diverse image over "
          "the seeds' mean; a third is the target)")


if __name__ == "__main__":
    main()
