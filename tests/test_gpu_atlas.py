"""benchmarks/gpu_atlas.py, the complete atlas on one GPU machine: the weights in parts, and the
whole GPU run on CPU JAX at a tiny scale (2 layers, 2 filters, 32 px: VGG16's smallest input, 4
steps), packed as the device tool brings files back, then merged into an atlas."""

import hashlib
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_atlas.py"
WEIGHTS = os.environ.get("FILTER_ATLAS_WEIGHTS") or str(REPO.parent / "shared/weights"
                                                         / "vgg16_imagenet_notop.h5")
needs_weights = pytest.mark.skipif(not Path(WEIGHTS).is_file(), reason="no VGG16 weights file")
MiB = 1 << 20
TINY = ["--layers", "block1_conv1,block2_conv1", "--filters", "0,1", "--size", "32", "--steps", "4"]
RENDERED = {("block1_conv1", 0), ("block1_conv1", 1), ("block2_conv1", 0), ("block2_conv1", 1)}

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_pack  # noqa: E402


def gpu_atlas(*args, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND="jax", FILTER_ATLAS_WEIGHTS=WEIGHTS)
    env.pop("GPU_ATLAS_T0", None)
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)


def small_h5(path: Path) -> bytes:
    """An HDF5 file of float32 'weights' (normal, as trained ones are) with a ragged length."""
    import h5py

    with h5py.File(path, "w") as f:
        f["block1_conv1/kernel"] = np.random.default_rng(0).normal(0, 0.05, 4001).astype("float32")
        f["block1_conv1/bias"] = np.arange(7, dtype="float32")
    return path.read_bytes()


def test_shuffle_groups_each_byte_of_the_elements_and_inverts():
    assert gpu_pack.shuffle(b"abcdABCDxy") == b"aAbBcCdDxy"
    weights = np.random.default_rng(1).normal(0, 0.05, 10001).astype("float32").tobytes() + b"tail"
    assert gpu_pack.unshuffle(gpu_pack.shuffle(weights)) == weights
    # the exponent bytes together compress: the point of the shuffle
    assert len(zlib.compress(gpu_pack.shuffle(weights), 9)) < 0.97 * len(zlib.compress(weights, 9))


def test_weights_parts_restore_the_file_byte_for_byte(tmp_path):
    data = small_h5(tmp_path / "w.h5")
    done = gpu_atlas("weights-pack", tmp_path / "w.h5", tmp_path / "parts", "--parts", "3")
    assert done.returncode == 0, done.stderr
    parts = sorted((tmp_path / "parts").glob("part*/w.h5.part*of3"))
    assert [p.parent.name for p in parts] == ["part1", "part2", "part3"]  # each carried on its own
    sha = hashlib.sha256(data).hexdigest()
    done = gpu_atlas("weights-unpack", *reversed(parts), tmp_path / "back.h5", "--sha256", sha)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "back.h5").read_bytes() == data
    assert "SHA-256 verified" in done.stdout


def test_a_damaged_missing_or_foreign_part_is_refused_in_one_line(tmp_path):
    data = small_h5(tmp_path / "w.h5")
    sha = hashlib.sha256(data).hexdigest()
    assert gpu_atlas("weights-pack", tmp_path / "w.h5", tmp_path / "parts", "--parts", "2").returncode == 0
    one, two = sorted((tmp_path / "parts").glob("part*/*"))
    dest = tmp_path / "back.h5"
    for parts, expected, says in (([one], sha, "missing weights part(s) 2/2"),
                                  ([one, two], "0" * 64, "not " + "0" * 64),
                                  ([one, one, two], sha, "given twice")):
        done = gpu_atlas("weights-unpack", *parts, dest, "--sha256", expected)
        assert done.returncode == 2 and says in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
    blob = bytearray(two.read_bytes())
    blob[-10] ^= 0xFF
    two.write_bytes(bytes(blob))
    done = gpu_atlas("weights-unpack", one, two, dest, "--sha256", sha)
    assert done.returncode == 2 and f"{two} is damaged" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not dest.exists()


def test_the_entry_point_knows_the_weights_sha256_and_parses():
    script = REPO / "benchmarks" / "gpu_atlas.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    if Path(WEIGHTS).is_file():
        sha = hashlib.sha256(Path(WEIGHTS).read_bytes()).hexdigest()
        assert f"SHA256={sha}" in script.read_text()


def returned(out: Path) -> list[Path]:
    """What the device tool would bring back from ``out``: checked against its limits."""
    files = sorted(out.iterdir())
    assert len(files) <= 8 and all(f.is_file() for f in files), files
    assert all(f.stat().st_size <= 16 * MiB and re.fullmatch(r"[A-Za-z0-9._-]+", f.name) for f in files)
    assert sum(f.stat().st_size for f in files) <= 64 * MiB
    return files


@needs_weights
def test_the_gpu_run_on_cpu_jax_packs_what_merges_into_an_atlas(tmp_path):
    out = tmp_path / "OUT"
    done = gpu_atlas("run", "--weights", WEIGHTS, "--out", out, "--work", tmp_path / "work", *TINY,
                     "--measure-layers", "block1_conv1,block2_conv1", "--measure-batches", "2",
                     "--measure-steps", "8")
    assert done.returncode == 0, done.stdout + done.stderr
    files = returned(out)
    summary = (out / "summary.txt").read_text()
    assert "4 of 4 filters rendered" in summary and "none missing" in summary, summary
    assert "choice: 32 px, float32, batch 2" in summary and "on cpu" in summary, summary
    steps = [json.loads(line) for line in (out / "measure.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r["kind"] == "step"]
    assert {(r["layer"], r["precision"]) for r in steps} == {
        (layer, p) for layer in ("block1_conv1", "block2_conv1") for p in ("float32", "bfloat16")}
    assert all(r["ms"] > 0 and r["floor_ms"] > 0 for r in steps)

    atlas = tmp_path / "atlas"
    done = gpu_atlas("unpack-merge", *files, "--out", atlas)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((atlas / "manifest.json").read_text())
    assert {(f["layer"], f["index"]) for f in manifest["filters"]} == RENDERED
    assert "shard" not in manifest and {r["backend"] for r in manifest["runs"].values()} == {"jax"}
    for entry in manifest["filters"]:
        channel = entry["views"]["channel"]
        assert (channel["size"], channel["steps"]) == (32, 4)
        if entry["dead"]:
            assert channel["image"] is None
            continue
        assert channel["image"].endswith(".webp") and channel["thumbnail"] == channel["image"]
        data = (atlas / channel["image"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == channel["sha256"]
        with Image.open(atlas / channel["image"]) as image:
            assert (image.format, image.size) == ("WEBP", (32, 32))
    assert not list(atlas.rglob("*.png"))  # the compact form: one WebP per filter, nothing else

    from filter_atlas.store import Store

    store = Store(atlas)  # the project's own reading: every merged filter is fresh, its file intact
    assert all(store.view_fresh(e.identity, "channel", e.views.channel.key) for e in store.filters)
    held_atlas(atlas, out, files)


def held_atlas(atlas: Path, out: Path, files: list[Path]) -> None:
    """Merging again into an atlas that holds one filter with other settings and another natural
    set with its evidence: the held filter stays (``--held replace`` replaces it), and the new
    filters' natural activations come from that evidence."""
    manifest = json.loads((atlas / "manifest.json").read_text())
    manifest["filters"] = [f for f in manifest["filters"] if (f["layer"], f["index"]) != ("block2_conv1", 1)]
    held = next(f for f in manifest["filters"] if (f["layer"], f["index"]) == ("block1_conv1", 1))
    held["views"]["channel"]["key"] = "0" * 64
    manifest["naturals"].update(name="photos", key="1" * 64)
    (atlas / "manifest.json").write_text(json.dumps(manifest))
    best = {"block1_conv1": [100.0 + i for i in range(64)], "block2_conv1": [200.0 + i for i in range(128)]}
    (atlas / "vgg16" / "evidence.json").write_text(json.dumps(
        {"set": "photos", "size": [32, 32], "layers": [{"name": k, "best": v} for k, v in best.items()]}))

    done = gpu_atlas("unpack-merge", *files, "--out", atlas)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 filters" in done.stdout and "natural activations taken from photos" in done.stdout
    merged = json.loads((atlas / "manifest.json").read_text())
    entries = {(f["layer"], f["index"]): f for f in merged["filters"]}
    assert set(entries) == RENDERED and merged["naturals"]["name"] == "photos"
    assert entries["block1_conv1", 1]["views"]["channel"]["key"] == "0" * 64  # kept
    assert entries["block2_conv1", 1]["natural_activation"] == 201.0  # from the evidence

    done = gpu_atlas("unpack-merge", out, "--out", atlas, "--held", "replace")  # the folder as it came back
    assert done.returncode == 0, done.stdout + done.stderr
    merged = json.loads((atlas / "manifest.json").read_text())
    entries = {(f["layer"], f["index"]): f for f in merged["filters"]}
    assert entries["block1_conv1", 1]["views"]["channel"]["key"] != "0" * 64  # replaced
    assert "replaced 1" in done.stdout


@needs_weights
def test_a_run_out_of_time_says_what_is_missing_and_brings_its_logs_back(tmp_path):
    out = tmp_path / "OUT"
    # Steps no machine finishes in the 31 s: the render is always stopped, however fast the CPU.
    done = gpu_atlas("run", "--weights", WEIGHTS, "--out", out, "--work", tmp_path / "work", *TINY,
                     "--steps", "1000000", "--measure-layers", "none", "--budget", "1", "--grace", "30")
    assert done.returncode == 1, done.stdout + done.stderr
    summary = (out / "summary.txt").read_text()
    assert "missing: " in summary and "0 of 4 filters" in summary, summary
    files = returned(out)
    assert [f.name for f in files if f.name.startswith("atlas.tgz")] == ["atlas.tgz.00"]
    assert "render.log" in subprocess.run(["tar", "tzf", str(out / "atlas.tgz.00")], capture_output=True,
                                          text=True).stdout
