"""A filter whose render gives a non-finite value: contained to its own image, recorded as
failed (never fresh), reported, and the manifest stays standard JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from filter_atlas.store import MANIFEST, read_manifest

from .conftest import read_images

NAN_FILTER = 2
TINY = ("--layers", "conv_b", "--filters", "all", "--size", "32", "--steps", "6", "--views", "channel",
        "--quiet", "--batch", "6")


@pytest.fixture(scope="module")
def nan_model_path(tiny_model_path, tmp_path_factory) -> Path:
    """The tiny model with one NaN in the kernel of conv_b's filter ``NAN_FILTER``."""
    import keras

    model = keras.saving.load_model(tiny_model_path)
    kernel, bias = model.get_layer("conv_b").get_weights()
    kernel[0, 0, 0, NAN_FILTER] = np.nan
    model.get_layer("conv_b").set_weights([kernel, bias])
    path = tmp_path_factory.mktemp("nan") / "tiny.keras"
    model.save(path)
    return path


def strict_json(path: Path) -> dict:
    """The file's JSON, refusing NaN and Infinity (not JSON, though Python's json writes them)."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_one_nan_filter_fails_alone_and_is_never_fresh(cli, tiny_model_path, nan_model_path, tmp_path):
    clean, broken = tmp_path / "clean", tmp_path / "broken"
    code, _, err = cli("render", "--model", tiny_model_path, "--out", clean, *TINY)
    assert code == 0, err
    code, stdout, err = cli("render", "--model", nan_model_path, "--out", broken, *TINY)
    assert code == 0, err
    assert f"conv_b/{NAN_FILTER} channel: the render gave a non-finite value" in err
    assert "1 failed" in stdout

    data = strict_json(broken / MANIFEST)  # standard JSON: no bare NaN
    entries = {e["index"]: e for e in data["filters"]}
    failed = entries[NAN_FILTER]
    assert failed["failed"] is True and failed["views"]["channel"]["image"] is None
    assert failed["views"]["channel"]["activation"] is None  # null, not a bare NaN
    # the other filters of the batch are the images rendered without the NaN (an image does not
    # depend on what else is rendered); filter 5 of the tiny model is dead in both
    ours = {k: v for k, v in read_images(broken).items() if f"/{NAN_FILTER:04d}-" not in k}
    theirs = {k: v for k, v in read_images(clean).items() if f"/{NAN_FILTER:04d}-" not in k}
    assert ours == theirs and len(ours) == 2 * 4  # 4 live filters, image and thumbnail each
    assert not [e for i, e in entries.items() if i != NAN_FILTER and e.get("failed")]

    code, stdout, err = cli("render", "--model", nan_model_path, "--out", broken, *TINY)
    assert code == 0 and "rendered 6, skipped 0" in stdout  # its batch again: a failed filter is not fresh
    assert read_manifest(broken).filters[NAN_FILTER].failed
