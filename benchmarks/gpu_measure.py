"""The GPU atlas's measurement and its choice of settings (``gpu_atlas.py run``).

``measure`` (run in a subprocess of its own, on the JAX backend) times the Lucid step in ms per
filter-step for a few layers, batch sizes and precisions, each against its floor (the truncated
network's forward pass and input gradient alone: ``bench_engine.floor_per_step``), and the
matrix-product rate; it writes one JSON line per result as it goes, so a measurement cut short
still gives what it finished. ``choose`` fits ms = a + b x cost (cost: the multiply-adds of every
conv up to the layer, per image) to those lines and predicts the whole render at each size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median

HOST_S_224 = 0.02  # host seconds per filter at 224 px outside the engine (PNG, thumbnail, manifest)


def measure(weights: str, layers: list[str], batches: list[int], precisions: list[str], size: int,
            steps: int, table_sizes: list[int], out: Path) -> None:
    """Write the device, the conv layer table at each of ``table_sizes``, the matrix-product
    rates and one line per (batch, precision, layer) to ``out`` (JSON lines), most needed first:
    every layer at the first batch and precision before any other batch or precision."""
    import numpy as np
    from bench_engine import floor_per_step, matmul_gflops, per_step
    from filter_atlas import load_model, render
    from filter_atlas import objectives as obj
    from filter_atlas.engine import backend
    from filter_atlas.engine.recipes import get_recipe

    with out.open("a") as sink:
        def emit(record: dict) -> None:
            sink.write(json.dumps(record) + "\n")
            sink.flush()

        loaded = load_model("vgg16", weights)
        emit({"kind": "device", "device": backend.device(), "versions": backend.versions(),
              "cpus": os.cpu_count()})
        for at in table_sizes:
            emit({"kind": "layers", "size": at, "layers": [
                {"name": c.name, "filters": c.filters, "cost": c.cost} for c in loaded.conv_layers(at)]})
        on_gpu = backend.device() != "cpu"
        for dtype in ("float32", "bfloat16"):
            n = 8192 if on_gpu else 512
            emit({"kind": "matmul", "dtype": dtype, "n": n, "gflops": round(matmul_gflops(dtype, n, 2), 1)})
        short = max(1, steps // 2)
        for batch in batches:
            for precision in precisions:
                recipe = dataclasses.replace(get_recipe("lucid"), precision=precision)
                for layer in layers:
                    (conv,) = loaded.resolve_layers((layer,), size)
                    filters = list(range(min(batch, conv.filters)))
                    objs = [obj.channel(layer, i) for i in filters]

                    def run(k: int, recipe=recipe, objs=objs) -> None:
                        np.asarray(render(loaded, objs, recipe=recipe, size=size, steps=k).images)

                    start = time.perf_counter()
                    run(short)  # compiles
                    first = time.perf_counter() - start
                    step = max(per_step(run, steps, 1, short), 1e-9)  # > 0 where noise beats the work
                    floor = floor_per_step(loaded, layer, filters, size, max(4, steps // 4), 1, precision)
                    floor = max(floor, 1e-9)
                    emit({"kind": "step", "layer": layer, "batch": len(filters), "precision": precision,
                          # 4 significant digits: a floor that noise drove to 1e-9 s stays > 0
                          "size": size, "ms": float(f"{1000 * step / len(filters):.4g}"),
                          "floor_ms": float(f"{1000 * floor:.4g}"), "cost": conv.cost,
                          "compile_s": round(max(0.0, first - short * step), 2)})


def read_lines(path: Path) -> list[dict]:
    """The complete JSON lines of ``path`` (a line cut off by a kill is skipped)."""
    if not path.is_file():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def fit(points: list[tuple[float, float]]) -> Callable[[float], float]:
    """ms per filter-step as a function of cost: least squares a + b x cost over ``points`` (cost,
    ms), through the origin where a or b would be negative or only one cost was measured."""
    if len(points) == 1 or len({c for c, _ in points}) == 1:
        c, ms = points[0]
        return lambda cost: ms * cost / c
    mc = sum(c for c, _ in points) / len(points)
    mm = sum(m for _, m in points) / len(points)
    b = sum((c - mc) * (m - mm) for c, m in points) / sum((c - mc) ** 2 for c, _ in points)
    a = mm - b * mc
    if a < 0 or b < 0:  # noise: the line through the origin instead
        a, b = 0.0, sum(c * m for c, m in points) / sum(c * c for c, _ in points)
    return lambda cost: a + b * cost


@dataclass
class Choice:
    """The render's settings and what the measurement predicts for it (seconds; None: unmeasured)."""

    size: int
    precision: str
    batch: int
    predicted_s: float | None = None
    floor_s: float | None = None  # the measured floor, predicted for the same filters and steps
    flop_s: float | None = None  # the arithmetic at the measured matrix-product rate
    fits: bool | None = None


def predict(lines: list[dict], table: list[dict], size: int, batch: int, precision: str, steps: int,
            key: str = "ms") -> float | None:
    """Seconds for every filter of ``table`` (layers at ``size``) at ``steps`` steps, from the
    step lines of ``batch`` and ``precision`` (``key``: "ms" for the step, "floor_ms" for its floor)."""
    points = [(r["cost"], r[key]) for r in lines if r.get("kind") == "step" and r["batch"] == batch
              and r["precision"] == precision]
    if not points:
        return None
    ms = fit(points)
    return sum(layer["filters"] * steps * ms(layer["cost"]) for layer in table) / 1000


def choose(lines: list[dict], tables: dict[int, list[dict]], sizes: list[int], precisions: list[str],
           steps: int, seconds: float, default_batch: int) -> Choice:
    """The first (size, precision) in preference order whose predicted render (its fastest
    measured batch, plus compiling each layer and host work) fits in ``seconds``; else the last,
    cheapest one, marked as not fitting. Without step lines: the last size, the first precision."""
    steps_ = [r for r in lines if r.get("kind") == "step"]
    if not steps_ or not all(s in tables for s in sizes):
        return Choice(sizes[-1], precisions[0], default_batch)
    compile_s = median(r["compile_s"] for r in steps_)
    rates = {r["dtype"]: r["gflops"] for r in lines if r.get("kind") == "matmul"}
    best = None
    for size in sizes:
        table = tables[size]
        host = sum(layer["filters"] for layer in table) * HOST_S_224 * (size / 224) ** 2
        for precision in precisions:
            options = []
            for batch in sorted({r["batch"] for r in steps_ if r["precision"] == precision}):
                engine = predict(lines, table, size, batch, precision, steps)
                if engine is not None:
                    options.append((engine + host + compile_s * len(table), batch))
            if not options:
                continue
            total, batch = min(options)
            flops = 4 * steps * sum(layer["filters"] * layer["cost"] for layer in table)
            best = Choice(size, precision, batch, total, predict(lines, table, size, batch, precision, steps,
                                                                 "floor_ms"),
                          flops / (rates[precision] * 1e9) if precision in rates else None,
                          total * 1.1 <= seconds)
            if best.fits:
                return best
    return best or Choice(sizes[-1], precisions[0], default_batch)


def table_text(lines: list[dict]) -> list[str]:
    """The measurement as the summary prints it."""
    rows = [f"{'layer':<13} {'batch':>5} {'precision':<9} {'ms/filter-step':>14} {'floor ms':>9} "
            f"{'vs floor':>8} {'TFLOP/s':>8} {'compile s':>9}"]
    for r in (r for r in lines if r.get("kind") == "step"):
        tflops = 4 * r["cost"] / (r["ms"] / 1000) / 1e12
        rows.append(f"{r['layer']:<13} {r['batch']:>5} {r['precision']:<9} {r['ms']:>14.3f} "
                    f"{r['floor_ms']:>9.3f} {r['ms'] / max(r['floor_ms'], 1e-9):>7.2f}x {tflops:>8.1f} "
                    f"{r['compile_s']:>9.1f}")
    rows += [f"matrix product {r['n']}x{r['n']}, {r['dtype']}: {r['gflops'] / 1000:.1f} TFLOP/s"
             for r in lines if r.get("kind") == "matmul"]
    return rows
