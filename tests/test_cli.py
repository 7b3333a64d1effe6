"""The filter-atlas command: listing, rendering, skipping, resuming, and the JAX backend."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib
from filter_atlas.api import compiled
from filter_atlas.engine.recipes import LUCID
from filter_atlas.keys import cache_key

from .conftest import DEAD_FILTER, REPO, read_images

SMALL = ("--size", "32", "--steps", "6", "--recipe", "lucid", "--views", "channel")


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_layers_lists_every_conv_layer(cli, weights_path):
    code, out, _ = cli("layers", "--weights", weights_path)
    assert code == 0
    rows = [line.split()[:2] for line in out.splitlines()[1:]]
    assert len(rows) == 13
    assert rows[0] == ["block1_conv1", "64"] and rows[-1] == ["block5_conv3", "512"]
    assert "(14, 14, 512)" in out.splitlines()[-1]


def test_the_committed_atlas_is_fresh_for_the_committed_config(cli, weights_path, tmp_path):
    """README's first command renders nothing on a fresh clone: every view of every filter the
    config selects is in the committed atlas under the key a render computes now (a view whose
    code or measure changed without its images being rendered or measured again would be stale)."""
    config = REPO / "pyproject.toml"
    layers = tomllib.loads(config.read_text())["tool"]["filter-atlas"]["layers"]
    shutil.copytree(REPO / "docs/atlas", tmp_path / "atlas")  # a copy: the repository stays untouched
    code, out, err = cli("render", "--config", config, "--weights", weights_path, "--out", tmp_path / "atlas",
                         "--quiet")
    assert code == 0, err
    assert f"rendered 0, skipped {6 * len(layers)} fresh" in out
    assert manifest(tmp_path / "atlas") == manifest(REPO / "docs/atlas")


def test_render_writes_images_thumbnails_and_manifest(cli, weights_path, vgg16, tmp_path):
    out = tmp_path / "atlas"
    code, stdout, _ = cli("render", "--weights", weights_path, "--layers", "block1_conv1,block2_conv1",
                          "--sample", "2", "--out", out, "--quiet", *SMALL)
    assert code == 0 and "rendered 4, skipped 0" in stdout
    data = manifest(out)
    assert len(data["filters"]) == 4
    (run,) = data["runs"].values()
    assert run["backend"] == "tensorflow" and run["device"] == "cpu" and "tensorflow" in run["versions"]
    model = data["models"]["vgg16"]
    assert model["weights"] == "file:vgg16_imagenet_notop.h5" and model["trained"]
    assert len(model["weights_sha256"]) == 64 and model["preprocess"] == "caffe"
    assert [layer["name"] for layer in model["layers"]][:2] == ["block1_conv1", "block1_conv2"]
    assert model["layers"][0] == {"name": "block1_conv1", "filters": 64, "output_shape": [32, 32, 64],
                                  "receptive_field": 3}
    for entry in data["filters"]:
        own = entry["views"]["channel"]
        assert {"layer", "index", "recipe", "seed", "natural_activation", "dead"} <= set(entry)
        assert {"image", "thumbnail", "steps", "size", "start_activation", "activation",
                "seconds"} <= set(own)
        assert own["size"] == 32 and own["steps"] == 6 and not entry["dead"]
        assert (out / own["image"]).is_file() and (out / own["thumbnail"]).is_file()
        assert entry["natural_activation"] > 0
        # The key records the compile mode the rule picked: XLA at block1_conv1 only.
        as_run = compiled(vgg16, entry["layer"], LUCID.with_steps(6), 32)
        assert as_run.xla == (entry["layer"] == "block1_conv1")
        assert own["key"] == cache_key("vgg16", model["weights_sha256"], "caffe", entry["layer"],
                                       entry["index"], as_run, 32, 0, "tensorflow")
    assert not list(out.rglob("*.tmp"))

    # Unchanged inputs: nothing to do. A corrupt image is re-rendered; --force renders all.
    code, stdout, _ = cli("render", "--weights", weights_path, "--layers", "block1_conv1,block2_conv1",
                          "--sample", "2", "--out", out, "--quiet", *SMALL)
    assert "rendered 0, skipped 4" in stdout
    before = read_images(out)
    assert len(before) == 8  # 4 filters' images and thumbnails
    victim = out / data["filters"][0]["views"]["channel"]["image"]
    victim.write_bytes(victim.read_bytes()[:50])
    code, stdout, _ = cli("render", "--weights", weights_path, "--layers", "block1_conv1,block2_conv1",
                          "--sample", "2", "--out", out, "--quiet", *SMALL)
    assert "rendered 2, skipped 2" in stdout  # the corrupt image's whole batch (its layer)
    assert read_images(out) == before
    code, stdout, _ = cli("render", "--weights", weights_path, "--layers", "block1_conv1,block2_conv1",
                          "--sample", "2", "--out", out, "--quiet", "--force", *SMALL)
    assert "rendered 4, skipped 0" in stdout
    # A changed setting changes the key: that filter is rendered again.
    code, stdout, _ = cli("render", "--weights", weights_path, "--layers", "block1_conv1",
                          "--sample", "2", "--out", out, "--quiet", "--size", "32", "--steps", "7")
    assert "rendered 2, skipped 0" in stdout


def test_dead_filter_is_marked_and_ships_no_image(cli, tiny_model_path, tmp_path):
    out = tmp_path / "atlas"
    code, _, _ = cli("render", "--model", tiny_model_path, "--layers", "conv_b", "--filters", "all",
                     "--size", "16", "--steps", "10", "--out", out, "--quiet")
    assert code == 0
    entries = {e["index"]: e for e in manifest(out)["filters"]}
    assert entries[DEAD_FILTER]["dead"] and entries[DEAD_FILTER]["views"]["channel"]["image"] is None
    assert sum(e["dead"] for e in entries.values()) == 1
    assert len(list((out / "tiny" / "conv_b").glob("????-lucid.webp"))) == 5


def _command(out: Path, weights: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "filter_atlas", "render", "--weights", str(weights), "--out", str(out),
            "--layers", "block1_conv1,block2_conv1,block3_conv2", "--sample", "2", "--size", "48",
            "--steps", "24", "--views", "channel", "--quiet", *extra]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def test_killed_run_resumes_with_identical_results(cli, tmp_path, weights_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen(_command(killed, weights_path), env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed / "manifest.json").exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = manifest(killed)
    assert 0 < len(partial["filters"]) < 6
    done = subprocess.run(_command(killed, weights_path), env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    assert f"skipped {len(partial['filters'])} fresh" in done.stdout
    assert cli(*_command(clean, weights_path)[3:])[0] == 0  # the same run, whole, in this process
    assert read_images(killed) == read_images(clean) != {}
    assert not list(killed.rglob("*.tmp"))
    assert _untimed(manifest(killed)["filters"]) == _untimed(manifest(clean)["filters"])


def _untimed(entries: list[dict]) -> list[dict]:
    """Manifest entries without their timings (``seconds``, also in the channel view)."""
    return [{k: {**v, "channel": {**v["channel"], "seconds": 0}} if k == "views" else v
             for k, v in e.items() if k != "seconds"} for e in entries]


def test_jax_backend_renders_the_same_filters(cli, tmp_path, weights_path):
    pytest.importorskip("jax")
    args = ["--weights", str(weights_path), "--layers", "block2_conv1", "--filters", "5,9", "--size", "48",
            "--steps", "24", "--views", "channel", "--quiet"]
    # JAX in its own process (Keras picks its backend once per process), TensorFlow in this one.
    subprocess.run([sys.executable, "-m", "filter_atlas", "render", "--backend", "jax", "--out",
                    str(tmp_path / "jax"), *args], env=_env(), cwd=tmp_path, capture_output=True, check=True)
    assert cli("render", "--out", tmp_path / "tensorflow", *args)[0] == 0
    runs = {backend: manifest(tmp_path / backend) for backend in ("jax", "tensorflow")}
    assert next(iter(runs["jax"]["runs"].values()))["backend"] == "jax"
    for a, b in zip(runs["jax"]["filters"], runs["tensorflow"]["filters"], strict=True):
        a, b = a["views"]["channel"], b["views"]["channel"]
        assert a["activation"] > 5 * a["start_activation"]
        assert a["activation"] == pytest.approx(b["activation"], rel=0.05)
        assert a["key"] != b["key"]  # the backend is part of the cache key
