"""The first conv layer's kernels: read from the model as R, G, B, recorded, drawn and counted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from filter_atlas.atlas import kernels_record
from filter_atlas.models import load_model
from filter_atlas.pages.kernels import kernel_figure, kernel_summary, shared_share
from filter_atlas.store import KernelsRecord

REPO = Path(__file__).resolve().parents[1]


def test_the_first_kernels_are_recorded_with_colours_as_r_g_b(tiny_model_path):
    import keras

    kernel = keras.saving.load_model(tiny_model_path).get_layer("conv_a").get_weights()[0]
    raw = kernels_record(load_model(str(tiny_model_path), preprocess="raw"))
    assert raw.layer == "conv_a" and raw.shape == kernel.shape
    np.testing.assert_allclose(np.reshape(raw.weights, raw.shape), kernel, rtol=1e-3)
    # A Caffe model reads B, G, R: its first channel is blue.
    caffe = kernels_record(load_model(str(tiny_model_path), preprocess="caffe"))
    np.testing.assert_allclose(np.reshape(caffe.weights, caffe.shape), kernel[:, :, ::-1], rtol=1e-3)


def test_kernels_behind_another_layer_or_on_one_channel_are_not_drawn(tmp_path):
    import keras

    for name, channels, before in (("scaled", 3, True), ("gray", 1, False)):
        inputs = keras.Input((8, 8, channels))
        x = keras.layers.Rescaling(2.0)(inputs) if before else inputs
        keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(x)).save(tmp_path / f"{name}.keras")
        assert kernels_record(load_model(str(tmp_path / f"{name}.keras"))) is None, name


def test_a_kernels_share_seen_by_all_colours():
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.normal(size=(3, 3, 1)), 3, axis=-1)
    opponent = np.zeros((3, 3, 3))
    opponent[..., 0], opponent[..., 1] = 1.0, -1.0
    assert shared_share(grey) == pytest.approx(1.0) and shared_share(opponent) == pytest.approx(0.0)
    kernel = rng.normal(size=(3, 3, 3))
    shared = kernel @ (np.ones(3) / np.sqrt(3))  # the projection on the grey axis
    assert shared_share(kernel) == pytest.approx((shared ** 2).sum() / (kernel ** 2).sum())


def test_the_figure_draws_each_kernel_on_its_own_scale():
    weights = np.zeros((3, 3, 3, 2))
    weights[0, 0, 0, 0] = 0.5  # kernel 0: red at its top left, 0 elsewhere
    weights[2, 2, :, 1] = -4.0  # kernel 1: black at its bottom right
    svg = kernel_figure(KernelsRecord("k", weights.shape, tuple(weights.ravel())))
    fills = re.findall(r'fill="#([0-9a-f]{6})"', svg)
    assert len(fills) == 2 * 9
    assert fills[0] == "ff8080" and set(fills[1:9]) == {"808080"}
    assert fills[17] == "000000" and set(fills[9:17]) == {"808080"}


def test_the_committed_filters_page_draws_vgg16s_first_kernels():
    model = json.loads((REPO / "docs/atlas/manifest.json").read_text())["models"]["vgg16"]
    record = model["kernels"]
    weights = np.reshape(record["weights"], record["shape"])
    assert record["layer"] == "block1_conv1" and weights.shape == (3, 3, 3, 64)
    grey = np.ones(3) / np.sqrt(3)
    shares = [((weights[..., k] @ grey) ** 2).sum() / (weights[..., k] ** 2).sum() for k in range(64)]
    bright = sum(s >= 0.8 for s in shares)
    page = (REPO / "docs/filters.md").read_text("utf-8")
    assert page.count("<rect ") == 64 * 9 and f"{bright} of 64 put at least 80%" in page
    assert kernel_summary(KernelsRecord(record["layer"], tuple(record["shape"]), tuple(record["weights"]))) \
        .startswith("block1_conv1's 64 kernels")
