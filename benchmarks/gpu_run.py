"""The GPU atlas's driver on the GPU machine (``gpu_atlas.py run``): measure, choose, render with
``filter-atlas render --shard`` in a subprocess stopped cleanly at the deadline (its manifest is
saved after every batch: running again resumes), then the compact form, packed under ``--out``.
No Keras or JAX in this process: the measurement and the render run in subprocesses on JAX.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gpu_measure as gm
import gpu_pack as gp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GPU_ATLAS = HERE / "gpu_atlas.py"
LAYERS = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
          "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
          "block5_conv3")  # VGG16's 13 conv layers
FILTERS = dict(zip(LAYERS, (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512), strict=True))
CHUNK_BYTES = 16 * gp.MiB - 64 * 1024  # the device tool brings back files of up to 16 MiB
# filter-atlas with Ctrl-C's handler restored: a background job starts with SIGINT ignored, and
# Python then keeps ignoring it; on SIGINT the CLI stops after saving what it finished
RENDER = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "from filter_atlas.cli import main; sys.exit(main(sys.argv[1:]))")


def child_env(work: Path) -> dict[str, str]:
    """The environment of the measurement and render subprocesses: JAX, this checkout's package."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               FILTER_ATLAS_CACHE=str(work / "cache"))
    paths = (str(REPO / "generator"), str(HERE), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(work / "jax-cache"))  # the render reuses measured ones
    return env


def stop(proc: subprocess.Popen, deadline: float, grace: float) -> int:
    """Wait for ``proc`` until ``deadline``; then interrupt it (a render saves what it finished)
    and kill it after ``grace`` seconds more."""
    try:
        return proc.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run(a: argparse.Namespace) -> int:
    """``gpu_atlas.py run``: everything on the GPU machine; 0 when every filter was rendered and packed."""
    t0 = float(os.environ.get("GPU_ATLAS_T0") or time.time())  # gpu_atlas.sh passes its own start
    render_by = t0 + a.budget
    work, out = a.work.resolve(), a.out.resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    env, lines_out = child_env(work), []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines_out.append(line)

    layers = list(LAYERS) if a.layers == "all" else a.layers.split(",")
    sizes = [224, 128] if a.size == "auto" else [int(a.size)]
    precisions = ["float32", "bfloat16"] if a.precision == "auto" else [a.precision]
    steps = a.steps or 512
    jsonl = out / "measure.jsonl"
    jsonl.unlink(missing_ok=True)
    if a.measure_layers != "none":
        cmd = [sys.executable, str(GPU_ATLAS), "measure", "--weights", str(a.weights),
               "--layers", a.measure_layers, "--batches", a.measure_batches,
               "--precisions", a.measure_precisions, "--size", str(sizes[0]), "--steps", str(a.measure_steps),
               "--table-sizes", ",".join(map(str, sizes)), "--jsonl", str(jsonl)]
        with (work / "logs" / "measure.log").open("ab") as log:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
            stop(proc, min(t0 + a.measure_budget, render_by - 30), 0.5)  # nothing to save
    lines = gm.read_lines(jsonl)
    if a.measure_layers != "none" and not any(r["kind"] == "step" for r in lines):
        _tail(work / "logs" / "measure.log", say)
    say(f"GPU atlas: VGG16, Lucid, {steps} steps, seed 0, channel view; {os.cpu_count()} CPUs")
    for r in (r for r in lines if r["kind"] == "device"):
        say(f"measured on {r['device']} ({r['versions']}) at {sizes[0]} px, {a.measure_steps} steps minus "
            f"{a.measure_steps // 2}, ms per filter-step; floor: forward pass and input gradient alone:")
    for row in gm.table_text(lines) if lines else ["measurement: none"]:
        say("  " + row)
    picked = None if a.filters == "all" else len(set(a.filters.split(",")))
    tables = {r["size"]: [dict(x, filters=picked or x["filters"]) for x in r["layers"] if x["name"] in layers]
              for r in lines if r["kind"] == "layers"}  # the filters to render, per layer
    seconds = render_by - time.time()
    choice = gm.choose(lines, tables, sizes, precisions, steps, seconds, a.batch or 64)
    choice.batch = a.batch or choice.batch
    say(f"choice: {choice.size} px, {choice.precision}, batch {choice.batch}; predicted "
        f"{_s(choice.predicted_s)} for {_count(tables, choice.size, layers, a.filters)} filters with "
        f"{_s(seconds)} left (measured floor {_s(choice.floor_s)}, arithmetic at the matrix-product rate "
        f"{_s(choice.flop_s)}){'' if choice.fits in (True, None) else '; it does not fit in time'}")

    shard_dir = work / f"shard-{a.shard.replace('/', 'of')}"
    cmd = [sys.executable, "-c", RENDER, "render", "--backend", "jax", "--model", "vgg16",
           "--weights", str(a.weights), "--layers", ",".join(layers), "--filters", a.filters,
           "--views", "channel", "--recipe", "lucid", "--seed", "0", "--size", str(choice.size),
           "--precision", choice.precision,
           "--batch", str(choice.batch), "--shard", a.shard, "--out", str(shard_dir), "--quiet",
           *(["--steps", str(a.steps)] if a.steps else [])]
    start = time.time()
    with (work / "logs" / "render.log").open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        rc = stop(proc, render_by, a.grace)
    wall = time.time() - start
    if rc not in (0, 130):
        _tail(work / "logs" / "render.log", say)
    done = _tally(shard_dir, layers, a.filters, tables.get(choice.size), a.shard.split("/")[-1] == "1")
    say(f"render: exit {rc}, {wall:.0f} s wall, on {done['devices']}; {done['line']}")
    same = {r["batch"] for r in lines if r["kind"] == "step" and r["precision"] == choice.precision}
    measured = sorted(same, key=lambda b: (b != choice.batch, -b))  # the render's batch, else the largest
    floor = gm.predict(lines, done["rendered_table"], choice.size, measured[0], choice.precision, steps,
                       "floor_ms") if measured else None
    if floor:
        say(f"  vs the measured floor for the filters rendered: {wall / floor:.2f}x ({floor:.0f} s); "
            f"engine time (manifest seconds) {done['engine_s']:.0f} s = {done['engine_s'] / floor:.2f}x")
    packed = _pack(shard_dir, work, out, a, say)
    say(f"total {time.time() - t0:.0f} s since the command started")
    (out / "summary.txt").write_text("\n".join(lines_out) + "\n")
    return 0 if packed and done["complete"] else 1


def _s(seconds: float | None) -> str:
    return "unmeasured" if seconds is None else f"{seconds:.0f} s"


def _count(tables: dict, size: int, layers: list[str], filters: str) -> str:
    if filters == "all" and size in tables:
        return str(sum(x["filters"] for x in tables[size]))
    return "all" if filters == "all" else f"{len(set(filters.split(','))) * len(layers)}"


def _tally(shard_dir: Path, layers: list[str], filters: str, table: list[dict] | None, whole: bool) -> dict:
    """What the shard holds against what was asked (VGG16's 4,224 filters, or ``filters`` per
    layer): per layer, filters rendered (dead included);
    for one shard of several (not ``whole``), only what it holds (``merge`` checks the rest)."""
    from filter_atlas.store import read_manifest

    manifest = read_manifest(shard_dir) if (shard_dir / "manifest.json").is_file() else None
    entries = manifest.filters if manifest else ()
    picked = len(set(filters.split(",")))
    wanted = {layer: FILTERS.get(layer, 0) if filters == "all" else picked for layer in layers}
    have = {layer: sum(1 for e in entries if e.layer == layer and not e.failed) for layer in wanted}
    costs = {x["name"]: x["cost"] for x in table or []}
    missing = [f"{layer} {have[layer]}/{n}" for layer, n in wanted.items() if have[layer] < n and whole]
    dead = sum(1 for e in entries if e.dead)
    failed = sum(1 for e in entries if e.failed)
    total = sum(wanted.values())
    of = str(total) if whole else f"its share of the {total}"
    line = (f"{sum(have.values())} of {of} filters rendered ({dead} dead, {failed} failed); "
            + (f"missing: {', '.join(missing)} (run again to resume: finished filters are skipped)"
               if missing else "none missing"))
    devices = ", ".join(sorted({r.device for r in manifest.runs.values()})) if manifest else "-"
    return {"line": line, "complete": bool(wanted) and not missing and not failed, "devices": devices,
            "engine_s": sum(e.views.channel.seconds for e in entries if e.views.channel),
            "rendered_table": [{"filters": have[k], "cost": costs[k]} for k in have if k in costs]}


def _tail(log: Path, say, lines: int = 30) -> None:
    """The end of a subprocess's log, where it failed."""
    text = log.read_text(errors="replace").splitlines()[-lines:] if log.is_file() else ["(no log)"]
    say(f"--- the last lines of {log.name}:")
    for line in text:
        say("  " + line[:300])


def _pack(shard_dir: Path, work: Path, out: Path, a: argparse.Namespace, say) -> list[Path] | None:
    """The shard in the compact form and the logs, packed under ``out`` (only the logs where no
    render was saved); lower WebP qualities where it does not fit. None where it held no render."""
    if not (shard_dir / "manifest.json").is_file():
        gp.pack([work / "logs"], out, work / "scratch", 6, CHUNK_BYTES, 62 * gp.MiB)
        say("packed: the logs only (no render was saved)")
        return None
    for quality in range(a.webp_quality, 29, -15):
        stage = work / "pack"
        shutil.rmtree(stage, ignore_errors=True)
        start = time.time()
        made = gp.compact(shard_dir, stage / shard_dir.name, a.side, quality)
        try:
            chunks = gp.pack([stage / shard_dir.name, work / "logs"], out, work / "scratch", 6, CHUNK_BYTES,
                             62 * gp.MiB)
        except gp.PackError as exc:
            say(f"pack: {exc}; trying WebP quality {quality - 15}")
            continue
        size = sum(c.stat().st_size for c in chunks)
        say(f"packed: {made.converted} channel images as {a.side} px WebP q{quality} "
            f"({made.webp_bytes / 1e6:.1f} MB, {made.webp_bytes / max(1, made.converted) / 1e3:.1f} kB each) "
            f"in {len(chunks)} chunks, {size / 1e6:.1f} MB, {time.time() - start:.0f} s -> {out}")
        return chunks
    say("pack: nothing packed")
    return None
