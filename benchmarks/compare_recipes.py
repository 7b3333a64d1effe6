"""Compare the two recipes on the same filters, from an atlas manifest.

For every filter rendered with both recipes, prints the achieved activation of each, their
ratio and the best natural-photo activation, and writes a side-by-side image (Lucid on top,
keras-vis below, one column per filter). Render the keras-vis images first, e.g.
``filter-atlas render --recipe keras-vis --layers block3_conv2 --filters 17,80``.
Usage: ``python benchmarks/compare_recipes.py [docs/atlas] [--image out.webp]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from filter_atlas.store import FilterEntry, read_manifest
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("atlas", nargs="?", type=Path, default=Path("docs/atlas"))
    parser.add_argument("--image", type=Path, default=Path("docs/assets/recipes-side-by-side.webp"))
    parser.add_argument("--tile", type=int, default=160)
    args = parser.parse_args()

    by_recipe: dict[str, dict[tuple, FilterEntry]] = {}
    for entry in read_manifest(args.atlas).filters:
        if entry.trained:
            by_recipe.setdefault(entry.recipe, {})[(entry.layer, entry.index)] = entry
    lucid, kvis = by_recipe.get("lucid", {}), by_recipe.get("keras-vis", {})
    both = sorted(set(lucid) & set(kvis))
    if not both:
        raise SystemExit("no filter has been rendered with both recipes")

    print(f"{'filter':<18} {'lucid':>9} {'keras-vis':>10} {'ratio':>6} {'natural':>9}")
    ratios = []
    for layer, index in both:
        a, b = lucid[layer, index], kvis[layer, index]
        ratios.append(b.activation / a.activation)
        print(f"{layer}#{index:<5} {a.activation:>9.1f} {b.activation:>10.1f} {ratios[-1]:>6.2f} "
              f"{a.natural_activation:>9.1f}")
    print(f"keras-vis / lucid activation: median {np.median(ratios):.2f}, "
          f"range {min(ratios):.2f}-{max(ratios):.2f} over {len(both)} filters")

    def tile(entry: FilterEntry) -> np.ndarray:
        image = Image.open(args.atlas / entry.image).convert("RGB")
        return np.asarray(image.resize((args.tile, args.tile), Image.Resampling.LANCZOS))

    rows = [np.concatenate([tile(table[key]) for key in both], axis=1) for table in (lucid, kvis)]
    args.image.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.image, quality=90)
    print(f"side-by-side: {args.image} (top: lucid, bottom: keras-vis)")


if __name__ == "__main__":
    main()
