"""Shared fixtures: the real VGG16 weights from ../shared, a tiny real model, and a CLI runner."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The natural-image cache of every test run starts empty and stays out of the user's cache.
os.environ.setdefault("FILTER_ATLAS_CACHE", tempfile.mkdtemp(prefix="filter-atlas-cache-"))

REPO = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = REPO.parent / "shared/weights/vgg16_imagenet_notop.h5"
# Absolute, once: tests change directory, and a relative path would then name nothing.
WEIGHTS = Path(os.environ.get("FILTER_ATLAS_WEIGHTS") or SHARED_WEIGHTS).resolve()
if os.environ.get("FILTER_ATLAS_WEIGHTS"):
    os.environ["FILTER_ATLAS_WEIGHTS"] = str(WEIGHTS)
# The labelled natural set the repository's config names (imagenet-samples), from ../shared.
SHARED_NATURALS = REPO.parent / "shared/naturals/imagenet-sample-images"
if SHARED_NATURALS.is_dir():
    os.environ.setdefault("FILTER_ATLAS_IMAGENET_SAMPLES", str(SHARED_NATURALS.resolve()))
DEAD_FILTER = 5  # conv_b's filter 5 in the tiny model: zero kernel, negative bias
# The slowest files, slowest first (measured with --durations=0): run first, they let the two
# workers of `pytest -n 2 --dist loadfile` (which hands out whole files in collection order)
# finish together instead of one starting the slowest file last.
SLOWEST_FIRST = ("test_cli.py", "test_site_browser.py", "test_own_models.py", "test_engine.py",
                 "test_data_safety.py", "test_pages.py", "test_shards.py", "test_views.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: in-file order kept


@pytest.fixture(scope="session")
def weights_path() -> Path:
    if not WEIGHTS.is_file():
        pytest.skip(f"real VGG16 ImageNet weights not found at {WEIGHTS} "
                    "(set FILTER_ATLAS_WEIGHTS or see ../shared/weights/README.md)")
    return WEIGHTS


@pytest.fixture(scope="session")
def vgg16(weights_path):
    from filter_atlas.models import load_model

    return load_model("vgg16", str(weights_path))


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small trained-looking conv net saved as .keras; conv_b filter 5 can never fire."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_b")(x)
    model = keras.Model(inputs, x, name="tiny")
    kernel, bias = model.get_layer("conv_b").get_weights()
    kernel[..., DEAD_FILTER] = 0.0
    bias[DEAD_FILTER] = -1.0
    model.get_layer("conv_b").set_weights([kernel, bias])
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run ``filter-atlas`` in-process in an empty directory; returns (exit code, stdout, stderr)."""
    from filter_atlas.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FILTER_ATLAS_WEIGHTS", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def read_images(root: Path, pattern: str = "*.webp") -> dict[str, bytes]:
    """Every image file under ``root`` (every view's images are WebP), by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob(pattern))}


def rgb(seed: int, shape=(2, 16, 16, 3)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype("float32")


# --- The site: synthetic atlases in the real manifest format -------------------------------------

# VGG16's conv layers: name, filters, output side at 224 px, receptive field (px).
VGG16_LAYERS = [
    ("block1_conv1", 64, 224, 3), ("block1_conv2", 64, 224, 5),
    ("block2_conv1", 128, 112, 10), ("block2_conv2", 128, 112, 14),
    ("block3_conv1", 256, 56, 24), ("block3_conv2", 256, 56, 32), ("block3_conv3", 256, 56, 40),
    ("block4_conv1", 512, 28, 60), ("block4_conv2", 512, 28, 76), ("block4_conv3", 512, 28, 92),
    ("block5_conv1", 512, 14, 132), ("block5_conv2", 512, 14, 164), ("block5_conv3", 512, 14, 196),
]


def grating(period: float, hue: int, side: int) -> np.ndarray:
    """An RGB sine grating: ``period`` px per cycle, colour from ``hue`` (0..5)."""
    y, x = np.mgrid[:side, :side]
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.5 * y) / period)
    colour = np.array([(hue >> 0) & 1, (hue >> 1) & 1, (hue >> 2) & 1], dtype=float) * 0.8 + 0.2
    return (255 * wave[..., None] * colour).astype("uint8")


def write_atlas(out: Path, layers: dict[str, list[int]], *, variants=(("vgg16", "lucid"),),
                dead: frozenset = frozenset(), size: int = 32, models: bool = True,
                legacy: bool = False) -> None:
    """Write images, thumbnails and ``manifest.json`` through the store, for ``layers`` (name ->
    filter indices) of each (model, recipe) in ``variants``, replacing any atlas in ``out``; a model
    whose name ends in ``-untrained`` is VGG16 with random weights. Images are gratings whose period
    grows with depth; files are hard links to a few encoded images, so thousands of filters stay
    cheap. ``legacy``: PNG channel images and thumbnails, as rendered before every view was WebP."""
    from filter_atlas.imaging import png_bytes, thumbnail, webp_bytes
    from filter_atlas.naming import entry_paths
    from filter_atlas.store import (
        SCHEMA,
        ConvLayerRecord,
        FilterEntry,
        Manifest,
        ModelRecord,
        RunRecord,
        Store,
        Views,
    )
    from filter_atlas.views import ImageRecord

    (out / "manifest.json").unlink(missing_ok=True)
    store = Store(out)
    info = {name: (filters, side, rf) for name, filters, side, rf in VGG16_LAYERS}
    pool: dict[tuple[int, int], tuple[Path, Path]] = {}
    entries = []
    for model, recipe in variants:
        trained = not model.endswith("-untrained")
        for depth, (layer, indices) in enumerate(layers.items()):
            for index in indices:
                image, thumb = entry_paths((model, layer, index, recipe))
                if legacy:
                    image, thumb = (p.removesuffix(".webp") + ".png" for p in (image, thumb))
                is_dead = (model, layer, index) in dead
                if not is_dead:
                    key = (depth, index % 6)
                    if key not in pool:
                        pixels = grating(2.5 + 3 * depth, index % 6, size)
                        encode = png_bytes if legacy else webp_bytes
                        pool[key] = (out / f".pool-{len(pool)}", out / f".pool-{len(pool)}-t")
                        pool[key][0].write_bytes(encode(pixels))
                        pool[key][1].write_bytes(encode(thumbnail(pixels)))
                    for src, rel in zip(pool[key], (image, thumb), strict=True):
                        (out / rel).parent.mkdir(parents=True, exist_ok=True)
                        (out / rel).unlink(missing_ok=True)
                        os.link(src, out / rel)
                channel = ImageRecord(
                    image=None if is_dead else image, thumbnail=None if is_dead else thumb,
                    steps=8, size=size, start_activation=0.5,
                    activation=0.0 if is_dead else round(10 + index * 0.37 + depth, 4),
                    seconds=0.1, key=f"{model}/{layer}/{index}/{recipe}",
                    sha256=None if is_dead else "0" * 64, run="run0")
                entries.append(FilterEntry(
                    model=model, layer=layer, index=index, recipe=recipe, seed=0, trained=trained,
                    natural_activation=round(4 + (index % 7) * 2.5, 4), dead=is_dead,
                    views=Views(channel=channel)))
    for src in pool.values():
        for path in src:
            path.unlink()
    store.adopt(Manifest(
        SCHEMA, runs={"run0": RunRecord("tensorflow", "cpu", {"filter-atlas": "0.1.0", "keras": "3"})},
        filters=tuple(entries),
        models={model: ModelRecord(
            name=model.removesuffix("-untrained"), trained=not model.endswith("-untrained"),
            weights="random" if model.endswith("-untrained") else "imagenet",
            weights_sha256="ab" * 32, preprocess="caffe", input_size=size,
            layers=tuple(ConvLayerRecord(
                name=name, filters=info[name][0] if name in info else 8,
                output_shape=(*[info[name][1] * size // 224 if name in info else size] * 2,
                              info[name][0] if name in info else 8),
                receptive_field=info[name][2] if name in info else 3) for name in layers),
        ) for model in dict.fromkeys(m for m, _ in variants)} if models else {},
    ))
    store.save()
