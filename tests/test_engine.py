"""Activation Maximization on the real VGG16 ImageNet weights (and a tiny real model).

Several tests here exist to catch specific engine bugs: keep-best storing the post-step
parameters, Adam without bias correction, the ReLU redirect off (or on forever), gradient
normalization off, standardization off, and composed objectives that do not add up.
"""

from dataclasses import replace

import keras
import numpy as np
import pytest
from filter_atlas import AtlasError, channel_means, load_model, render, score
from filter_atlas import objectives as obj
from filter_atlas.api import _renderer
from filter_atlas.engine.objectives import batch_arrays
from filter_atlas.engine.optimize import image_rng
from filter_atlas.engine.optimizers import Adam
from filter_atlas.engine.recipes import KERAS_VIS, LUCID
from filter_atlas.naturals import bundled_set, load_image

from .conftest import DEAD_FILTER


def natural_images(size: int) -> np.ndarray:
    """The bundled set's photos as one array (N, size, size, 3) uint8."""
    return np.stack([load_image(n.path, size) for n in bundled_set().sources])


@pytest.mark.parametrize("recipe", ["lucid", "keras-vis", replace(LUCID, precision="bfloat16")],
                         ids=["lucid", "keras-vis", "lucid-bfloat16"])
def test_optimization_multiplies_the_activation(vgg16, recipe):
    r = render(vgg16, [obj.channel("block3_conv2", i) for i in (3, 17, 21)], recipe=recipe, size=48, steps=40)
    assert r.images.shape == (3, 48, 48, 3) and r.images.dtype == np.uint8
    assert np.all(r.activations > 0)
    assert np.all(r.activations > 5 * r.start_activations), (r.start_activations, r.activations)


def test_saved_activation_is_measured_on_the_saved_pixels(vgg16):
    r = render(vgg16, obj.channel("block2_conv1", 7), size=48, steps=8)
    assert channel_means(vgg16, "block2_conv1", r.images)[0, 7] == pytest.approx(r.activations[0], rel=1e-4)


def test_negative_image_scores_below_its_start_and_the_positive_above(vgg16):
    pos, neg = obj.channel("block3_conv2", 17), -obj.channel("block3_conv2", 17)
    r = render(vgg16, [pos, neg], size=48, steps=32)
    means = channel_means(vgg16, "block3_conv2", r.images)[:, 17]
    assert r.activations[1] == pytest.approx(-means[1], rel=1e-4)  # the negative's own objective
    assert r.start_activations[1] == pytest.approx(-r.start_activations[0])  # one start for both
    assert means[1] < 0.5 * r.start_activations[0] < 0.1 * means[0]


def test_composed_objective_equals_the_sum_of_its_parts(vgg16):
    photos = natural_images(48)[:4]
    a, b = obj.channel("block2_conv2", 5), obj.neuron("block2_conv2", 9, x=3, y=20)
    composed = a + 2.5 * b - 0.5 * obj.lp_norm(6) - obj.total_variation(2) * 3
    parts = (score(vgg16, a, photos) + 2.5 * score(vgg16, b, photos)
             - 0.5 * score(vgg16, 1.0 * obj.lp_norm(6) + 0 * a, photos)
             - 3 * score(vgg16, obj.total_variation(2) + 0 * a, photos))
    np.testing.assert_allclose(score(vgg16, composed, photos), parts, rtol=1e-4)
    np.testing.assert_allclose(score(vgg16, -a, photos), -score(vgg16, a, photos), rtol=1e-6)


def test_neuron_defaults_to_the_centre(vgg16):
    photos = natural_images(48)[:3]
    pre = keras.Model(vgg16.model.inputs, vgg16.model.get_layer("block2_conv1").output)
    x = vgg16.preprocess_fn()(photos.astype("float32") / 255.0)
    maps = keras.ops.convert_to_numpy(pre(x))  # (3, 24, 24, 128), after ReLU
    np.testing.assert_allclose(score(vgg16, obj.neuron("block2_conv1", 11), photos), maps[:, 12, 12, 11],
                               rtol=1e-4, atol=1e-4)


def test_diversity_pushes_the_images_of_a_group_apart(vgg16):
    plain = render(vgg16, obj.channel("block3_conv1", 40), n=3, size=48, steps=48)
    diverse = render(vgg16, obj.channel("block3_conv1", 40) - 1e3 * obj.diversity("block3_conv1"), n=3,
                     size=48, steps=48)
    similarity = [score(vgg16, obj.diversity("block3_conv1"), r.images).sum() for r in (plain, diverse)]
    assert similarity[1] < similarity[0] - 0.1, similarity
    assert len({im.tobytes() for im in plain.images}) == 3  # without diversity: three seeds


def _kernel_energy_share(loaded, image, kernels):
    """Share of the image's patch energy (3x3x3, DC removed) along each unit-norm kernel."""
    pre = np.asarray(loaded.preprocess_fn()(image[None].astype("float32") / 255.0))[0]
    patches = np.lib.stride_tricks.sliding_window_view(pre, (3, 3, 3))[..., 0, :, :, :].reshape(-1, 27)
    patches = patches - patches.mean(axis=1, keepdims=True)
    return ((patches @ kernels) ** 2).sum(axis=0) / (patches**2).sum()


def test_bfloat16_changes_the_step_and_leaves_the_model_float32(vgg16):
    """bfloat16 really computes the trunk in bfloat16 (other pixels, a different key), and the
    shared model's layers are float32 again afterwards (a float32 render repeats exactly)."""
    objectives = [obj.channel("block3_conv2", i) for i in (3, 17)]
    before = render(vgg16, objectives, size=48, steps=12)
    half = render(vgg16, objectives, recipe=replace(LUCID, precision="bfloat16"), size=48, steps=12)
    after = render(vgg16, objectives, size=48, steps=12)
    assert not np.array_equal(half.images, before.images)
    np.testing.assert_allclose(half.activations, before.activations, rtol=0.1)  # as far in the same steps
    np.testing.assert_array_equal(after.images, before.images)
    assert all(layer.compute_dtype == "float32" for layer in vgg16.model.layers)
    assert "precision" not in LUCID.key()  # float32 keys are those of before the option
    assert replace(LUCID, precision="bfloat16").key()["precision"] == "bfloat16"
    with pytest.raises(AtlasError, match="unknown precision 'float16'"):
        replace(LUCID, precision="float16")


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
    r = render(vgg16, [obj.channel("block1_conv1", i) for i in chosen], size=64, steps=64)
    share = np.stack([_kernel_energy_share(vgg16, image, unit) for image in r.images])  # [image, kernel]
    own = share.diagonal()
    others = (share.sum(axis=0) - own) / (len(chosen) - 1)
    assert np.all(own > others), share.round(3)
    photos = np.stack([_kernel_energy_share(vgg16, p, unit) for p in natural_images(64)])
    assert own.mean() > 2 * photos.mean(), (own.round(3), photos.mean(axis=0).round(3))


def test_same_inputs_give_identical_images_whatever_else_is_rendered(vgg16):
    a = render(vgg16, [obj.channel("block2_conv1", i) for i in (1, 2)], size=48, steps=10, seed=4)
    b = render(vgg16, [obj.channel("block2_conv1", i) for i in (2, 9)], size=48, steps=10, seed=4)
    c = render(vgg16, obj.channel("block2_conv1", 1), size=48, steps=10, seed=5)
    assert np.array_equal(a.images[1], b.images[0])
    assert not np.array_equal(a.images[0], c.images[0])


def _dead_at_start(model, layer, size):
    """Filters of ``layer`` whose mean activation is zero on the starting images of two seeds."""
    rend = _renderer(model, layer, obj.channel(layer, 0).template(), LUCID, size)
    rngs = [image_rng(0, obj.channel(layer, i).seed_words(), 0) for i in range(2)]
    state, _ = rend.start(rngs)
    return np.flatnonzero((channel_means(model, layer, rend.finish(state[0])[0]) == 0).all(axis=0))


def test_a_filter_dead_at_the_start_gets_a_first_gradient(vgg16):
    dead = _dead_at_start(vgg16, "block4_conv1", 48)[:3].tolist()
    assert len(dead) == 3  # block4_conv1 has such filters on Lucid's grey start at 48 px
    objs = [obj.channel("block4_conv1", i) for i in dead]
    rend = _renderer(vgg16, "block4_conv1", objs[0].template(), LUCID.with_steps(1), 48)
    state, warps = rend.start([image_rng(0, o.seed_words(), 0) for o in objs])
    start = np.asarray(keras.ops.convert_to_numpy(state[0]))
    after = rend.optimize(state, warps[:1], batch_arrays(objs, [0, 1, 2]))
    moved = np.abs(np.asarray(keras.ops.convert_to_numpy(after[0])) - start).reshape(3, -1).max(axis=1)
    assert np.all(moved > 1e-3), moved  # Adam's first step is ~learning rate wherever g != 0


def test_keep_best_returns_the_iterate_with_the_lowest_recorded_loss(vgg16):
    recipe = replace(KERAS_VIS, transforms=(), steps=12)  # no warps, all steps redirected: loss = -values
    objs = [obj.channel("block2_conv1", i) - recipe.penalty for i in (3, 17)]
    rend = _renderer(vgg16, "block2_conv1", objs[0].template(), recipe, 32)
    arrays = batch_arrays(objs, [0, 1])
    state, warps = rend.start([image_rng(0, o.seed_words(), 0) for o in objs])
    state = rend.optimize(state, warps, arrays)
    best_loss = np.asarray(keras.ops.convert_to_numpy(state[3]))
    np.testing.assert_allclose(-rend.values(rend.result(state), arrays, True), best_loss, rtol=1e-5)
    assert np.all(-rend.values(state[0], arrays, True) != best_loss)  # the last iterate is another one


def test_adam_matches_keras_bias_corrected_adam():
    rng = np.random.default_rng(0)
    target, scale = rng.normal(size=(2, 5)).astype("float32"), rng.uniform(0.1, 3, (2, 5)).astype("float32")
    ours, theirs = keras.ops.zeros((2, 5)), keras.Variable(np.zeros((2, 5), "float32"))
    adam = Adam(learning_rate=0.05)
    reference = keras.optimizers.Adam(learning_rate=0.05, epsilon=1e-8)
    state = adam.init(ours)
    for t in range(1, 6):
        ours, state = adam.update(ours, 2 * scale * (ours - target), state, float(t))
        reference.apply_gradients([(2 * scale * (theirs - target), theirs)])
        np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), theirs.numpy(), rtol=1e-4, atol=1e-6)


def test_keras_vis_steps_do_not_depend_on_the_loss_scale(vgg16):
    """keras-vis divides each gradient by its RMS: scaling the objective leaves the images."""
    recipe = replace(KERAS_VIS, penalty=None, steps=12)
    one = render(vgg16, obj.channel("block2_conv1", 7), recipe=recipe, size=32)
    big = render(vgg16, 1e3 * obj.channel("block2_conv1", 7), recipe=recipe, size=32)
    difference = np.abs(one.images.astype(int) - big.images)
    assert difference.mean() < 0.05 and difference.max() <= 3, (difference.mean(), difference.max())


def test_keras_vis_images_are_standardized_around_grey(vgg16):
    r = render(vgg16, [obj.channel("block2_conv1", i) for i in (3, 17)], recipe="keras-vis", size=48,
               steps=10)
    assert np.all(np.abs(r.images.mean(axis=(1, 2, 3)) - 127.5) < 1.0)
    assert np.all(np.abs(r.images.std(axis=(1, 2, 3)) - 25.5) < 1.0)


def test_max_steps_caps_every_render(vgg16, monkeypatch):
    monkeypatch.setenv("FILTER_ATLAS_MAX_STEPS", "3")
    assert render(vgg16, obj.channel("block1_conv1", 1), size=32).recipe.steps == 3
    monkeypatch.setenv("FILTER_ATLAS_MAX_STEPS", "many")
    with pytest.raises(AtlasError, match="FILTER_ATLAS_MAX_STEPS must be a positive integer"):
        render(vgg16, obj.channel("block1_conv1", 1), size=32)


@pytest.mark.parametrize(("objective", "needle"), [
    (lambda: obj.channel("block9_conv1", 0), "unknown layer 'block9_conv1'"),
    (lambda: obj.channel("block1_conv1", 64), "filter index 64 out of range"),
    (lambda: obj.neuron("block1_conv1", 0, x=40), "neuron x=40 is outside"),
    (lambda: obj.channel("block1_conv1", 0) + obj.channel("block2_conv1", 0), "terms on several layers"),
    (lambda: obj.lp_norm(6), "no layer term"),
])
def test_bad_objectives_are_one_line_errors(vgg16, objective, needle):
    with pytest.raises(AtlasError, match=needle):
        render(vgg16, objective(), size=32, steps=1)


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
    r = render(tiny, [obj.channel("conv_b", i) for i in range(6)], size=16, steps=20)
    assert [a <= 0 for a in r.activations] == [i == DEAD_FILTER for i in range(6)]
