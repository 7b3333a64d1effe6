"""Where the tracked tree's bytes go, and what a complete 13-layer atlas would weigh.

Sums the blob sizes of ``git ls-files`` (what a clone checks out) and their size on disk (whole
4 KiB blocks: the measure of the 30 MiB budget, where a 2 KB file costs 4 KiB) by kind of file,
then the bytes one rendered filter costs per view, measured on the filters of a manifest (the
committed one, or ``--atlas`` for another render folder: its files are measured where they lie).
The projection multiplies the measured per-filter cost by the filters a complete atlas holds and
adds what does not grow with them.

    python benchmarks/tree_budget.py                      # the committed atlas
    python benchmarks/tree_budget.py --atlas /work/render/atlas --filters 78
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import defaultdict
from pathlib import Path

from filter_atlas.store import read_manifest

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[1]
KINDS = (  # (kind, pattern on the path): the first that matches
    ("thumbnails (PNG)", r"docs/atlas/.*/thumbs/.*\.png$"),
    ("thumbnails (WebP)", r"docs/atlas/.*/thumbs/.*\.webp$"),
    ("channel images (PNG)", r"docs/atlas/.*/\d{4}-[\w-]+\.png$"),
    ("negative, neuron views", r"docs/atlas/.*-(negative|neuron)\.webp$"),
    ("diversity view", r"docs/atlas/.*-diversity-\d+\.webp$"),
    ("channel images (WebP)", r"docs/atlas/.*/\d{4}-[\w-]+\.webp$"),
    ("natural set copies", r"docs/atlas/naturals/"),
    ("evidence", r"docs/atlas/.*/evidence\.json$"),
    ("manifest", r"docs/atlas/manifest\.json$"),
    ("layer pages", r"docs/blocks/"),
    ("other docs", r"docs/"),
    ("code, tests, benchmarks, data", r""),
)
PER_FILTER = ("channel images (PNG)", "thumbnails (PNG)", "thumbnails (WebP)",
              "negative, neuron views", "diversity view", "channel images (WebP)")


def kind(path: str) -> str:
    return next(k for k, pattern in KINDS if re.search(pattern, path))


def tracked() -> dict[str, int]:
    """Every tracked path and its blob size (the size a clone checks out)."""
    listing = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=REPO, capture_output=True,
                             check=True).stdout
    rows = [line.split(b"\t", 1) for line in listing.split(b"\0") if line]
    shas = b"\n".join(row[0].split()[1] for row in rows) + b"\n"
    sizes = subprocess.run(["git", "cat-file", "--batch-check=%(objectsize)"], cwd=REPO, input=shas,
                           capture_output=True, check=True).stdout.split()
    return {row[1].decode(): int(size) for row, size in zip(rows, sizes, strict=True)}


def disk(path: Path) -> int:
    """Bytes a file takes on disk (its allocated blocks); 0 where it is not there."""
    return path.stat().st_blocks * 512 if path.is_file() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", type=Path, default=REPO / "docs/atlas",
                        help="atlas folder to measure per filter")
    parser.add_argument("--filters", type=int, default=78,
                        help="trained filters of the complete atlas (13 x 6)")
    args = parser.parse_args()
    files = tracked()
    by_kind: dict[str, int] = defaultdict(int)
    disk_by_kind: dict[str, int] = defaultdict(int)
    for path, size in files.items():
        by_kind[kind(path)] += size
        disk_by_kind[kind(path)] += disk(REPO / path)
    total, total_disk = sum(files.values()), sum(disk_by_kind.values())
    print(f"tracked tree: {total / MiB:.1f} MiB in {len(files)} files, {total_disk / MiB:.1f} MiB on disk")
    for name, _ in KINDS:
        print(f"  {by_kind[name] / MiB:6.2f} MiB  {disk_by_kind[name] / MiB:6.2f} MiB on disk  {name}")

    manifest = read_manifest(args.atlas / "manifest.json")
    lucid = [e for e in manifest.filters if e.recipe == "lucid" and e.trained and not e.dead]
    measured: dict[str, int] = defaultdict(int)
    measured_disk: dict[str, int] = defaultdict(int)
    counted: dict[str, set] = defaultdict(set)  # the filters that have a file of each kind
    for entry in lucid:
        for rel, _ in entry.files():
            path = args.atlas / rel
            extras = [path.with_suffix(".webp")] if rel.endswith(".png") else []
            for file in (path, *extras):
                if file.is_file():
                    name = kind(f"docs/atlas/{file.relative_to(args.atlas).as_posix()}")
                    measured[name] += file.stat().st_size
                    measured_disk[name] += disk(file)
                    counted[name].add(entry.identity)
    print(f"\nper trained lucid filter ({len(lucid)} in {args.atlas}), where rendered:")
    for name in PER_FILTER:
        n = len(counted[name]) or 1
        print(f"  {measured[name] / n / 1024:6.1f} KiB  {measured_disk[name] / n / 1024:6.1f} KiB on disk  "
              f"{name} ({len(counted[name])} filters)")
    committed = args.atlas == REPO / "docs/atlas"
    for label, kinds, sums, all_files in (("bytes", by_kind, measured, total),
                                           ("on disk", disk_by_kind, measured_disk, total_disk)):
        per = sum(sums[n] / len(counted[n]) for n in PER_FILTER if counted[n])
        fixed = all_files - sum(kinds[n] for n in PER_FILTER)
        others = sum(kinds[n] for n in PER_FILTER) - sum(sums[n] for n in PER_FILTER) if committed else 0
        full = fixed + others + args.filters * per
        print(f"\n{args.filters} trained filters with every view, {label}: {full / MiB:.1f} MiB "
              f"({fixed / MiB:.1f} MiB that does not grow with the sample, {others / MiB:.1f} MiB of other "
              f"variants' images; budget 30 MiB on disk)")


if __name__ == "__main__":
    main()
