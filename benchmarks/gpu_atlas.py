"""The complete VGG16 atlas on one GPU within one 10-minute command (README: "GPU atlas").

    python benchmarks/gpu_atlas.py weights-pack SRC .gpu/weights --parts 2   # here: parts to carry
    python benchmarks/gpu_atlas.py wheels .gpu/wheels                        # here: what the GPU lacks
    python benchmarks/gpu_atlas.py weights-unpack PART... DEST --sha256 HEX  # there: restore, verify
    python benchmarks/gpu_atlas.py run --weights W --out "$OUT"              # there: gpu_atlas.sh runs it
    python benchmarks/gpu_atlas.py unpack-merge FILE... --out docs/atlas     # here: what came back
    python benchmarks/gpu_atlas.py compact SHARD... --atlas docs/atlas       # CI shards, in place

``run`` measures (``gpu_measure``), picks the size the time allows, renders every filter through
``filter-atlas render --shard`` in a subprocess stopped cleanly at the deadline (its manifest is
saved after every batch: running again resumes), converts the shard to the compact form (one
128 px WebP per filter, ``gpu_pack.compact``) and packs it into at most 6 chunks of 16 MiB under
``--out``, beside ``summary.txt`` and ``measure.jsonl``. No Keras or JAX in this process.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "generator")]  # gpu_pack, gpu_measure, filter_atlas uninstalled

import gpu_measure as gm  # noqa: E402
import gpu_pack as gp  # noqa: E402
import gpu_run  # noqa: E402

CARRIED = ("keras", "namex", "optree", "msgspec")  # the render path's packages the GPU image lacks
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def cmd_measure(a: argparse.Namespace) -> int:
    """``measure``: run's measurement, in its own process on JAX (``gpu_measure.measure``)."""
    gm.measure(str(a.weights), a.layers.split(","), [int(b) for b in a.batches.split(",")],
               a.precisions.split(","), a.size, a.steps, [int(s) for s in a.table_sizes.split(",")], a.jsonl)
    return 0


def cmd_unpack_merge(a: argparse.Namespace) -> int:
    """``unpack-merge``: chunks (or shard folders) that came back, in the compact form, merged into
    ``--out`` with ``filter-atlas merge`` (``gpu_pack.adapt`` prepares each shard first)."""
    from filter_atlas.cli import main as filter_atlas

    scratch = Path(tempfile.mkdtemp(prefix="gpu-atlas-"))
    try:
        shards = [d for d in a.inputs if d.is_dir() and (d / "manifest.json").is_file()]
        chunks = [f for f in a.inputs if f.is_file()]
        chunks += [f for d in a.inputs if d.is_dir() and d not in shards for f in sorted(d.iterdir())]
        shards += gp.unpack(chunks, scratch / "incoming") if chunks else []
        staged, notes = [], []
        for k, shard in enumerate(shards):
            target = scratch / "staged" / f"{k}-{shard.name}"
            gp.compact(shard, target, a.side, a.webp_quality)
            notes += gp.adapt(target, a.out, a.held)
            staged.append(target)
        for note in notes:
            print(note)
        rc = filter_atlas(["merge", *map(str, staged), "--out", str(a.out),
                           *(["--replace"] if a.held == "replace" else [])])
        if rc == 0 and a.pages:
            rc = filter_atlas(["pages", "--out", str(a.out)])
        return rc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cmd_compact(a: argparse.Namespace) -> int:
    """``compact``: shard folders (a CI render's) to the compact form in place, ready for ``merge``."""
    for shard in a.shards:
        made = gp.compact(shard, shard, a.side, a.webp_quality)
        print(f"{shard}: {made.converted} channel images as {a.side} px WebP "
              f"({made.webp_bytes / 1e6:.1f} MB)")
        for note in gp.adapt(shard, a.atlas, a.held) if a.atlas else []:
            print(note)
    return 0


def cmd_weights_pack(a: argparse.Namespace) -> int:
    """``weights-pack``: the weights file in byte-shuffled, compressed parts, one folder each."""
    for path in gp.pack_weights(a.src, a.outdir, a.parts):
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")
    print(f"sha256 {gp.sha256(a.src.read_bytes())} ({a.src.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_weights_unpack(a: argparse.Namespace) -> int:
    """``weights-unpack``: the weights file restored from its parts, its SHA-256 checked."""
    size = gp.unpack_weights(a.parts, a.dest, a.sha256)
    print(f"{a.dest}: {size} bytes, SHA-256 verified")
    return 0


def cmd_wheels(a: argparse.Namespace) -> int:
    """``wheels``: this environment's versions of ``CARRIED`` as wheels for the GPU machine's Python."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in CARRIED]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(a.dest),
                    *pins], check=True)
    wheels = sorted(a.dest.glob("*.whl"))
    print("\n".join(f"{w.name}: {w.stat().st_size / 1e6:.2f} MB" for w in wheels))
    print(f"{len(wheels)} wheels, {sum(w.stat().st_size for w in wheels) / 1e6:.1f} MB")
    return 0


def cmd_calls(a: argparse.Namespace) -> int:
    """The device tool's calls, with what each carries, checked against the 64 MiB a call may send."""
    tree, gpu = gp.tree_bytes(REPO), REPO / ".gpu"
    parts = sorted(p.relative_to(REPO).as_posix() for p in (gpu / "weights").glob("part*"))
    if not parts or not (gpu / "wheels").is_dir():
        raise gp.PackError("make .gpu/weights (weights-pack) and .gpu/wheels (wheels) first")
    calls = [("bash benchmarks/gpu_atlas.sh store", [p], 120) for p in parts[:-1]]
    calls.append(("bash benchmarks/gpu_atlas.sh run", [parts[-1], ".gpu/wheels"], 600))
    print(f"tree: {tree / gp.MiB:.1f} MiB (tracked and untracked, not ignored)")
    over = False
    for command, carry, timeout in calls:
        size = tree + sum(gp.folder_bytes(REPO / c) for c in carry)
        over |= size > 64 * gp.MiB
        print(f"run(command={command!r}, carry={carry}, timeout_s={timeout}): {size / gp.MiB:.1f} MiB "
              f"{'OVER 64 MiB: pack the weights in more parts' if size > 64 * gp.MiB else '<= 64 MiB'}")
    return 2 if over else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="measure, render, compact and pack (on the GPU machine)")
    run.add_argument("--weights", type=Path, required=True)
    run.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-out")))
    run.add_argument("--work", type=Path, default=Path("/tmp/filter-atlas-gpu/work"))
    run.add_argument("--layers", default="all", help="comma-separated, or all (VGG16's 13)")
    run.add_argument("--filters", default="all")
    run.add_argument("--size", default="auto", help="auto: 224 px if the measurement says it fits, else 128")
    run.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "auto"))
    run.add_argument("--steps", type=int, help="default: the Lucid recipe's 512")
    run.add_argument("--batch", type=int, help="filters per batch (default: the fastest measured, else 64); "
                     "shards of one render on several machines need the same --size, --precision and --batch")
    run.add_argument("--shard", default="1/1", help="i/n: this machine's share (filter-atlas render --shard)")
    run.add_argument("--budget", type=float, default=520, help="seconds from the start to the render's stop")
    run.add_argument("--grace", type=float, default=20, help="seconds a stopped render gets to save")
    run.add_argument("--measure-layers", default="block1_conv2,block3_conv3,block5_conv3", help="or none")
    run.add_argument("--measure-batches", default="64,32")
    run.add_argument("--measure-precisions", default="float32,bfloat16")
    run.add_argument("--measure-steps", type=int, default=128)
    run.add_argument("--measure-budget", type=float, default=150, help="seconds from the start, at most")
    for cmd in (run, merge := sub.add_parser("unpack-merge", help="merge what came back into an atlas"),
                compact := sub.add_parser("compact", help="shards to the compact form, in place")):
        cmd.add_argument("--side", type=int, default=128, help="the committed image's largest side")
        cmd.add_argument("--webp-quality", type=int, default=90)
    merge.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_SHARD")
    merge.add_argument("--out", type=Path, default=Path("docs/atlas"))
    merge.add_argument("--pages", action="store_true", help="then write the pages (filter-atlas pages)")
    compact.add_argument("shards", nargs="+", type=Path)
    compact.add_argument("--atlas", type=Path, help="the atlas they will be merged into")
    for cmd in (merge, compact):
        cmd.add_argument("--held", choices=("keep", "replace"), default="keep",
                         help="filters the atlas holds with other settings: keep them, or replace them")
    m = sub.add_parser("measure", help="run's measurement (a subprocess, KERAS_BACKEND=jax)")
    for name in ("--layers", "--batches", "--precisions", "--table-sizes"):
        m.add_argument(name, required=True)
    m.add_argument("--weights", type=Path, required=True)
    m.add_argument("--size", type=int, required=True)
    m.add_argument("--steps", type=int, required=True)
    m.add_argument("--jsonl", type=Path, required=True)
    pack = sub.add_parser("weights-pack", help="byte-shuffled, compressed parts of a weights file")
    pack.add_argument("src", type=Path)
    pack.add_argument("outdir", type=Path)
    pack.add_argument("--parts", type=int, default=2)
    unpack = sub.add_parser("weights-unpack", help="restore a weights file from its parts and verify it")
    unpack.add_argument("parts", nargs="+", type=Path)
    unpack.add_argument("dest", type=Path)
    unpack.add_argument("--sha256", required=True)
    wheels = sub.add_parser("wheels", help="download the wheels the GPU machine lacks (Python 3.12, x86-64)")
    wheels.add_argument("dest", type=Path)
    sub.add_parser("calls", help="the device calls, their carry paths and sizes")
    return p


def main(argv: list[str] | None = None) -> int:
    from filter_atlas.errors import AtlasError

    a = parser().parse_args(argv)
    handlers = {"run": gpu_run.run, "measure": cmd_measure, "unpack-merge": cmd_unpack_merge,
                "compact": cmd_compact, "weights-pack": cmd_weights_pack,
                "weights-unpack": cmd_weights_unpack, "wheels": cmd_wheels, "calls": cmd_calls}
    try:
        return handlers[a.command](a)
    except (gp.PackError, AtlasError) as exc:
        print(f"gpu_atlas: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
