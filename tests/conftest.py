"""Shared fixtures: the real VGG16 weights from ../shared, a tiny real model, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = REPO.parent / "shared/weights/vgg16_imagenet_notop.h5"
WEIGHTS = Path(os.environ.get("FILTER_ATLAS_WEIGHTS") or SHARED_WEIGHTS)
DEAD_FILTER = 5  # conv_b's filter 5 in the tiny model: zero kernel, negative bias


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


def read_pngs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def rgb(seed: int, shape=(2, 16, 16, 3)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype("float32")
