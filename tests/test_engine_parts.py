"""The engine's building blocks against independent NumPy references."""

from dataclasses import replace

import keras
import numpy as np
import pytest
from filter_atlas.engine import objectives, targets, transforms
from filter_atlas.engine.param import FourierParam, PixelParam
from filter_atlas.engine.recipes import KERAS_VIS, LUCID, choose_xla, get_recipe
from filter_atlas.errors import AtlasError
from filter_atlas.models import preprocessor
from keras import ops

from .conftest import rgb


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


@pytest.mark.parametrize(("size", "channels"), [((16, 16), 3), ((17, 17), 3), ((12, 19), 3), ((15, 10), 1)])
def test_fourier_param_is_the_inverse_real_dft(size, channels):
    param = FourierParam(size, channels)
    params = np.stack([param.init(np.random.default_rng(s)) * 100 for s in range(2)])
    assert params.shape == (2, 2, channels, size[0], size[1] // 2 + 1)
    spectrum = (params[:, 0] + 1j * params[:, 1]) * param._scale
    expected = np.fft.irfft2(spectrum, s=size).transpose(0, 2, 3, 1) / 4.0
    np.testing.assert_allclose(np_(param.spatial(params)), expected, rtol=1e-4, atol=1e-4)
    assert np_(param.to_image(params)).shape == (2, *size, channels)


def test_fourier_image_is_in_unit_range_and_starts_near_grey():
    param = FourierParam((32, 32))
    image = np_(param.to_image(param.init(np.random.default_rng(0))[None]))
    assert image.shape == (1, 32, 32, 3)
    assert image.min() > 0.0 and image.max() < 1.0
    assert abs(image.mean() - 0.5) < 0.05


def test_pixel_param_starts_grey_with_noise():
    image = PixelParam((64, 64)).init(np.random.default_rng(0))
    assert abs(image.mean() - 127.5) < 2 and 10 < image.std() < 15


def test_integer_shift_with_wrap_is_an_exact_roll():
    images = rgb(0)
    params = np.array([[3, -2, 1, 0], [-16, 5, 1, 0]], dtype="float32")
    out = np_(transforms.warp(images, params, wrap=True))
    for k, (tx, ty) in enumerate(params[:, :2].astype(int)):
        np.testing.assert_array_equal(out[k], np.roll(images[k], (ty, tx), axis=(0, 1)))


def test_shift_without_wrap_reveals_grey_padding():
    images = rgb(1)
    out = np_(transforms.warp(images, np.array([[4, 0, 1, 0]] * 2, dtype="float32"), wrap=False))
    np.testing.assert_array_equal(out[:, :, :4], 0.5)
    np.testing.assert_array_equal(out[:, :, 4:], images[:, :, :-4])


def test_rotation_by_90_degrees_turns_the_image():
    images = rgb(2)
    params = np.array([[0, 0, 1, np.pi / 2]] * 2, dtype="float32")
    out = np_(transforms.warp(images, params, wrap=False))
    # a positive angle turns the image clockwise on screen (y points down)
    np.testing.assert_allclose(out, np.rot90(images, k=-1, axes=(1, 2)), atol=1e-5)


def test_draws_respect_the_recipe_ranges_and_are_seeded():
    a = transforms.draw(LUCID.transforms, np.random.default_rng(0), 500)
    assert np.array_equal(a, transforms.draw(LUCID.transforms, np.random.default_rng(0), 500))
    assert np.abs(a[:, :2]).max() == 8 + 4  # jitter 8 and jitter 4 add
    assert np.abs(a[:, 2, None] - np.array(LUCID.transforms[2].factors)[None]).min(axis=1).max() < 1e-6
    assert np.abs(np.rad2deg(a[:, 3])).max() == pytest.approx(10)
    kv = transforms.draw(KERAS_VIS.transforms, np.random.default_rng(0), 500)
    assert np.abs(kv[:, :2]).max() == 16 and np.all(kv[:, 2] == 1) and np.all(kv[:, 3] == 0)


def test_channel_activation_is_the_relu_mean_with_a_redirected_start():
    maps = np.zeros((2, 4, 4), dtype="float32")
    maps[0] = 2.0
    maps[1, :2] = -4.0
    maps[1, 2:] = 1.0
    np.testing.assert_allclose(np_(objectives.channel_activation(maps, False)), [2.0, 0.5])
    np.testing.assert_allclose(np_(objectives.channel_activation(maps, True)), [2.0, -1.5])


LAYERS = {
    "conv": lambda **a: keras.layers.Conv2D(kernel_size=3, **a),
    "depthwise": lambda filters, **a: keras.layers.DepthwiseConv2D(3, depth_multiplier=filters // 4, **a),
    "separable": lambda **a: keras.layers.SeparableConv2D(kernel_size=3, depth_multiplier=2, **a),
}


@pytest.mark.parametrize(("kind", "conv_args", "indices"), [
    ("conv", {"filters": 8}, [5, 0, 7]),  # fewer images than filters: only the chosen filters convolved
    ("conv", {"filters": 3}, [2, 0, 2, 1]),  # at least as many images as filters: all, then selected
    ("conv", {"filters": 8, "groups": 2}, [1, 6]),  # grouped: all, then selected
    ("conv", {"filters": 8, "strides": 2, "padding": "valid", "use_bias": False}, [3, 4]),
    ("depthwise", {"filters": 8}, [5, 0, 7]),  # output channel c * multiplier + m
    ("depthwise", {"filters": 8, "strides": 2, "dilation_rate": 1}, [1, 6]),
    ("separable", {"filters": 8}, [5, 0, 7]),  # only the chosen columns of the 1x1 mix
    ("separable", {"filters": 3, "dilation_rate": 2}, [2, 0, 2, 1]),
    ("separable", {"filters": 8, "use_bias": False}, [3, 4]),
])
def test_own_filter_preact_is_the_layers_output_at_each_images_filter(kind, conv_args, indices):
    conv = LAYERS[kind](padding=conv_args.pop("padding", "same"), **conv_args)
    x = rgb(5, (len(indices), 9, 9, 4))
    conv.build(x.shape)
    if conv.use_bias:
        conv.bias.assign(rgb(6, conv.bias.shape))
    full = np_(conv(x))  # Keras' own layer (no activation)
    assert targets.filter_count(conv) == full.shape[-1]
    own = targets.own_filter_preact(x, conv, targets.weights(conv),
                                    ops.convert_to_tensor(np.array(indices, dtype="int32")[:, None]))
    expected = full[np.arange(len(indices)), :, :, indices]
    np.testing.assert_allclose(np_(own)[..., 0], expected, rtol=1e-5, atol=1e-5)
    every = targets.preact(x, conv, targets.weights(conv))
    np.testing.assert_allclose(np_(every), full, rtol=1e-5, atol=1e-5)


def test_own_filter_preact_with_two_filters_per_image():
    conv = keras.layers.Conv2D(8, 3, padding="same")
    x = rgb(7, (2, 6, 6, 3))
    conv.build(x.shape)
    full = np_(conv(x))
    indices = np.array([[1, 6], [6, 0]], dtype="int32")
    own = np_(targets.own_filter_preact(x, conv, targets.weights(conv), ops.convert_to_tensor(indices)))
    for b in range(2):
        for j in range(2):
            np.testing.assert_allclose(own[b, :, :, j], full[b, :, :, indices[b, j]], rtol=1e-5, atol=1e-5)


def test_penalties_match_keras_vis_definitions():
    x = rgb(3, (1, 5, 6, 3)) * 10
    n = x.size
    lp = (np.abs(x) ** 6).sum() ** (1 / 6) / n
    tv = (((x[:, 1:, :-1] - x[:, :-1, :-1]) ** 2 + (x[:, :-1, 1:] - x[:, :-1, :-1]) ** 2) ** 1.0).sum() / n
    np.testing.assert_allclose(np_(objectives.lp_value(x, 6.0)), [lp], rtol=1e-5)
    np.testing.assert_allclose(np_(objectives.tv_value(x, 2.0)), [tv], rtol=1e-5)


def test_caffe_preprocessing_matches_keras_vgg16():
    from keras.applications.vgg16 import preprocess_input

    images = rgb(4)
    expected = preprocess_input(images * 255.0)
    np.testing.assert_allclose(np_(preprocessor("caffe")(images)), expected, rtol=1e-5, atol=1e-3)


def test_unknown_recipe_and_preprocessing():
    with pytest.raises(AtlasError, match="unknown recipe 'deepdream'"):
        get_recipe("deepdream")
    with pytest.raises(AtlasError, match="unknown preprocessing"):
        preprocessor("bgr")


def test_compile_mode_rule_and_overrides():
    shallow, deep = 1728.0, 38592.0  # VGG16 block1_conv1 and block1_conv2, MACs per pixel
    assert choose_xla(LUCID, "tensorflow", shallow) and not choose_xla(LUCID, "tensorflow", deep)
    assert not choose_xla(KERAS_VIS, "tensorflow", deep)
    assert choose_xla(replace(LUCID, xla=True), "tensorflow", deep)
    assert not choose_xla(replace(LUCID, xla=False), "tensorflow", shallow)
    assert choose_xla(replace(LUCID, xla=False), "jax", deep)  # JAX always compiles with XLA
    assert replace(LUCID, xla=True).key() != replace(LUCID, xla=False).key()
