"""Activation Maximization on the real VGG16 ImageNet weights (and a tiny real model)."""

import numpy as np
import pytest
from filter_atlas.engine.optimize import LayerRenderer
from filter_atlas.engine.recipes import get_recipe
from filter_atlas.models import load_model
from filter_atlas.naturals import natural_images

from .conftest import DEAD_FILTER


def renderer(loaded, layer, recipe="lucid", steps=32, size=48):
    return LayerRenderer(*loaded.truncate(layer), loaded.preprocess_fn(),
                         get_recipe(recipe).with_steps(steps), size)


@pytest.mark.parametrize("recipe", ["lucid", "keras-vis"])
def test_optimization_multiplies_the_activation(vgg16, recipe):
    results = renderer(vgg16, "block3_conv2", recipe, steps=40).render("block3_conv2", [3, 17, 21], seed=0)
    for res in results:
        assert res.activation > 0
        assert res.activation > 5 * res.start_activation, (res.index, res.start_activation, res.activation)


def test_saved_activation_is_measured_on_the_saved_pixels(vgg16):
    r = renderer(vgg16, "block2_conv1", steps=8)
    (res,) = r.render("block2_conv1", [7], seed=0)
    assert r.measure(res.image[None], [7])[0] == pytest.approx(res.activation, rel=1e-5)


def _kernel_energy_share(loaded, image, kernels):
    """Share of the image's patch energy (3x3x3, DC removed) along each unit-norm kernel."""
    pre = np.asarray(loaded.preprocess_fn()(image[None].astype("float32") / 255.0))[0]
    patches = np.lib.stride_tricks.sliding_window_view(pre, (3, 3, 3))[..., 0, :, :, :].reshape(-1, 27)
    patches = patches - patches.mean(axis=1, keepdims=True)
    return ((patches @ kernels) ** 2).sum(axis=0) / (patches**2).sum()


def test_first_layer_image_is_its_kernels_matched_pattern(vgg16):
    """block1_conv1 is linear before its ReLU: the image it prefers is its own kernel, tiled.

    For the six most zero-mean kernels (those are edge/colour-opponent detectors, not flat
    colours), each rendered image carries more of its energy along its own kernel than the
    images rendered for the other five do, and far more than natural photos do.
    """
    kernel = np.asarray(vgg16.model.get_layer("block1_conv1").kernel.numpy()).reshape(27, 64)
    centred = kernel - kernel.mean(axis=0, keepdims=True)
    dc = np.abs(kernel.reshape(3, 3, 3, 64).sum(axis=(0, 1))).sum(axis=0)
    chosen = sorted(np.argsort(-np.linalg.norm(centred, axis=0) / (dc + 1e-3))[:6].tolist())
    unit = centred[:, chosen] / np.linalg.norm(centred[:, chosen], axis=0)
    results = renderer(vgg16, "block1_conv1", steps=64, size=64).render("block1_conv1", chosen, seed=0)
    share = np.stack([_kernel_energy_share(vgg16, r.image, unit) for r in results])  # [image, kernel]
    own = share.diagonal()
    others = (share.sum(axis=0) - own) / (len(chosen) - 1)
    assert np.all(own > others), share.round(3)
    photos = np.stack([_kernel_energy_share(vgg16, p, unit) for p in natural_images(64)])
    assert own.mean() > 2 * photos.mean(), (own.round(3), photos.mean(axis=0).round(3))


def test_same_inputs_give_identical_images(vgg16):
    a = renderer(vgg16, "block2_conv1", steps=10).render("block2_conv1", [1, 2], seed=4)
    b = renderer(vgg16, "block2_conv1", steps=10).render("block2_conv1", [1, 2], seed=4)
    c = renderer(vgg16, "block2_conv1", steps=10).render("block2_conv1", [1, 2], seed=5)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0].image, c[0].image)


def test_receptive_fields_of_vgg16(vgg16):
    layers = {c.name: c for c in vgg16.conv_layers(224)}
    # VGG16: 3, 5 | 10, 14 | 24, 32, 40 | 60, 76, 92 | 132, 164, 196 (conv5_3); 212 after pool5.
    assert [layers[n].receptive_field for n in ("block1_conv1", "block1_conv2", "block2_conv1")] == [3, 5, 10]
    assert layers["block3_conv2"].receptive_field == 32
    assert layers["block5_conv3"].receptive_field == 196
    assert layers["block4_conv1"].output_shape == (28, 28, 512)


def test_untrained_weights_are_seeded_and_labelled():
    a = load_model("vgg16", "random", seed=3)
    b = load_model("vgg16", "random", seed=3)
    assert a.weights_sha256 == b.weights_sha256 and not a.trained and a.slug == "vgg16-untrained"
    assert load_model("vgg16", "random", seed=4).weights_sha256 != a.weights_sha256


def test_dead_filter_never_fires(tiny_model_path):
    tiny = load_model(str(tiny_model_path), "imagenet")
    results = renderer(tiny, "conv_b", steps=20, size=16).render("conv_b", list(range(6)), seed=0)
    assert [r.activation <= 0 for r in results] == [i == DEAD_FILTER for i in range(6)]
