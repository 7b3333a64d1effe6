"""Faults the engine must not hide: transforms that never reach the step, a NaN or inf weight
that spreads from one image to its whole batch, and objectives it must refuse.

The models are tiny real Keras models (3 -> 4 -> 8 channels), corrupted on purpose.
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from filter_atlas import AtlasError, channel_means, load_model, render
from filter_atlas import objectives as obj
from filter_atlas.api import _renderer
from filter_atlas.engine import targets
from filter_atlas.engine.objectives import batch_arrays
from filter_atlas.engine.optimize import image_rng
from filter_atlas.engine.optimizers import RMSProp
from filter_atlas.engine.param import Pixel
from filter_atlas.engine.recipes import KERAS_VIS, LUCID, Recipe
from filter_atlas.engine.transforms import Jitter
from filter_atlas.keras_vis.visualization import visualize_activation
from keras import ops

from .conftest import rgb

BROKEN = 3  # the filter of layer "b" whose weights are corrupted
GREY = 128  # every pixel of a failed image (RenderResult's documentation)


def _two_convs(name: str, shape=(None, None, 3)) -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="b")(x)
    return keras.Model(inputs, x, name=name)


def _nan_kernel(model: keras.Model) -> None:
    kernel, bias = model.get_layer("b").get_weights()
    kernel[..., BROKEN] = np.nan
    model.get_layer("b").set_weights([kernel, bias])


def _inf_bias(model: keras.Model) -> None:
    kernel, bias = model.get_layer("b").get_weights()
    bias[BROKEN] = np.inf
    model.get_layer("b").set_weights([kernel, bias])


def _nan_in_trunk(model: keras.Model) -> None:
    kernel, bias = model.get_layer("a").get_weights()
    kernel[1, 1, 0, 2] = np.nan
    model.get_layer("a").set_weights([kernel, bias])


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory) -> Callable:
    """``corrupted(fault)``: the two-conv model with ``fault`` applied, saved and loaded."""
    folder: Path = tmp_path_factory.mktemp("faults")

    def load(fault: Callable[[keras.Model], None]):
        path = folder / f"{fault.__name__.strip('_')}.keras"
        if not path.exists():
            model = _two_convs(path.stem)
            fault(model)
            model.save(path)
        return load_model(str(path), "imagenet")

    return load


# --- Transforms reach the optimization step ------------------------------------------------------

def test_jitter_changes_the_rendered_pixels(tiny_model_path):
    tiny = load_model(str(tiny_model_path), "imagenet")
    objective = obj.channel("conv_b", 1)
    jittered = render(tiny, objective, recipe=replace(LUCID, transforms=(Jitter(8),)), size=16, steps=8)
    still = render(tiny, objective, recipe=replace(LUCID, transforms=()), size=16, steps=8)
    assert jittered.start_activations[0] == still.start_activations[0]  # one start: only the warps differ
    assert not np.array_equal(jittered.images, still.images)


def test_the_model_sees_the_warped_image(tiny_model_path):
    """One step on a neuron of the first 3x3 conv changes exactly the 9 pixels under it in the
    image the model saw: with a wrapped integer jitter (an exact roll by (ty, tx), as
    test_engine_parts checks) those are the neuron's window rolled back by the step's shift."""
    tiny = load_model(str(tiny_model_path), "imagenet")
    recipe = Recipe(name="probe", param=Pixel(), transforms=(Jitter(4),), optimizer=RMSProp(), steps=1,
                    edge="wrap")
    objective = obj.neuron("conv_a", 2, x=8, y=8)
    rend = _renderer(tiny, "conv_a", objective.template(), recipe, (16, 16))
    start = np.full((1, 16, 16, 3), 100.0, dtype="float32")
    state, warps = rend.start([image_rng(1, objective.seed_words(), 0)], start)
    tx, ty = warps[0, 0, :2].astype(int)
    assert (tx, ty) != (0, 0) and np.array_equal(warps[0, 0, 2:], [1, 0])  # a shift, nothing else
    after = np.asarray(ops.convert_to_numpy(rend.optimize(state, warps, batch_arrays([objective], [0]))[0]))
    changed = np.abs(after[0] - start[0]).max(axis=-1) > 0
    window = np.zeros((16, 16), dtype=bool)
    window[7:10, 7:10] = True
    np.testing.assert_array_equal(changed, np.roll(window, (-ty, -tx), axis=(0, 1)))


# --- A non-finite weight fails its own images and no other ---------------------------------------

@pytest.mark.parametrize(("fault", "recipe", "filters"), [
    (_nan_kernel, "lucid", (0, BROKEN, 5)),  # fewer images than filters: only theirs convolved
    (_nan_kernel, "keras-vis", tuple(range(8))),  # every filter convolved, then selected
    (_inf_bias, "lucid", tuple(range(8))),
    (_inf_bias, "keras-vis", (0, BROKEN, 5)),
])
def test_a_broken_filter_fails_alone(corrupted, fault, recipe, filters):
    model = corrupted(fault)
    r = render(model, [obj.channel("b", i) for i in filters], recipe=recipe, size=16, steps=6)
    others = [i for i in filters if i != BROKEN]
    alone = render(model, [obj.channel("b", i) for i in others], recipe=recipe, size=16, steps=6)
    kept = [k for k, i in enumerate(filters) if i != BROKEN]
    np.testing.assert_array_equal(r.failed, [i == BROKEN for i in filters])
    assert np.isnan(r.activations[filters.index(BROKEN)])
    assert np.all(r.images[filters.index(BROKEN)] == GREY)
    assert np.array_equal(r.images[kept], alone.images)  # byte for byte
    np.testing.assert_allclose(r.activations[kept], alone.activations, rtol=1e-6)
    np.testing.assert_allclose(r.start_activations[kept], alone.start_activations, rtol=1e-6)
    assert not alone.failed.any() and np.all(alone.activations > 0)


def test_an_image_whose_optimization_diverges_fails_alone(tiny_model_path):
    """A start at 3e38 overflows the L6-norm penalty: that image's parameters turn NaN. Its grey
    image measures a finite activation, yet it is marked failed; its batch-mate is unchanged."""
    tiny = load_model(str(tiny_model_path), "imagenet")
    recipe = replace(KERAS_VIS, steps=2, keep_best=False)
    start = np.full((2, 16, 16, 3), 127.0, dtype="float32")
    start[1] = 3e38
    objectives = [obj.channel("conv_b", 0), obj.channel("conv_b", 1)]
    r = render(tiny, objectives, recipe=recipe, size=16, start=start)
    alone = render(tiny, objectives[0], recipe=recipe, size=16, start=start[:1])
    np.testing.assert_array_equal(r.failed, [False, True])
    assert np.isnan(r.activations[1]) and np.all(r.images[1] == GREY)
    assert np.array_equal(r.images[0], alone.images[0])  # byte for byte
    np.testing.assert_allclose(r.activations[0], alone.activations[0], rtol=1e-6)  # batch size: float sums


def test_finish_turns_a_non_finite_image_grey_and_says_so(tiny_model_path):
    tiny = load_model(str(tiny_model_path), "imagenet")
    objective = obj.channel("conv_b", 1)
    rend = _renderer(tiny, "conv_b", objective.template(), LUCID, (16, 16))
    state, _ = rend.start([image_rng(0, objective.seed_words(), k) for k in range(2)])
    params = np.asarray(ops.convert_to_numpy(state[0])).copy()
    healthy, _ = rend.finish(params[:1])
    params[1, 0, 0, 2, 3] = np.nan
    images, finite = rend.finish(params)
    np.testing.assert_array_equal(finite, [True, False])
    assert np.array_equal(images[0], healthy[0]) and np.all(images[1] == GREY)


def test_diversity_reads_every_filter_so_a_broken_one_fails_every_image(corrupted):
    model = corrupted(_nan_kernel)
    r = render(model, obj.channel("b", 0) - 1e2 * obj.diversity("b"), n=2, size=16, steps=2)
    assert r.failed.all() and np.isnan(r.activations).all() and np.all(r.images == GREY)


def test_a_non_finite_weight_before_the_target_fails_every_image(corrupted):
    r = render(corrupted(_nan_in_trunk), [obj.channel("b", i) for i in (0, 1)], size=16, steps=2)
    assert r.failed.all() and np.isnan(r.activations).all() and np.all(r.images == GREY)


def test_channel_means_are_nan_for_the_broken_filter_only(corrupted):
    images = (rgb(8, (2, 16, 16, 3)) * 255).astype("uint8")
    means = channel_means(corrupted(_nan_kernel), "b", images)
    np.testing.assert_array_equal(np.isnan(means).any(axis=0), [i == BROKEN for i in range(8)])


LAYERS = {
    "conv": lambda: keras.layers.Conv2D(6, 3),
    "grouped": lambda: keras.layers.Conv2D(6, 3, groups=2),
    "depthwise": lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
    "separable": lambda: keras.layers.SeparableConv2D(6, 3, depth_multiplier=2),
}


@pytest.mark.parametrize(("kind", "weight", "where"), [
    ("conv", 0, (1, 1, 2, BROKEN)),
    ("conv", 1, (BROKEN,)),  # the bias
    ("grouped", 0, (0, 2, 1, 4)),
    ("depthwise", 0, (2, 0, 1, 1)),  # output channel 1 * 2 + 1
    ("separable", 1, (0, 0, 3, 5)),  # the 1x1 mix: one filter
    ("separable", 0, (1, 1, 2, 0)),  # the depthwise kernel: every filter
])
def test_contain_names_the_filters_a_non_finite_weight_reaches(kind, weight, where):
    layer = LAYERS[kind]()
    x = rgb(9, (2, 7, 7, 4))
    layer.build(x.shape)
    values = layer.get_weights()
    values[weight][where] = np.nan
    layer.set_weights(values)
    reference = np.asarray(ops.convert_to_numpy(layer(x)))  # Keras' own layer
    expected = ~np.isfinite(reference).all(axis=(0, 1, 2))
    finite, broken = targets.contain(layer, targets.weights(layer))
    np.testing.assert_array_equal(broken, expected)
    assert expected.sum() > 0
    ours = np.asarray(ops.convert_to_numpy(targets.preact(x, layer, finite)))
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours[..., ~expected], reference[..., ~expected], rtol=1e-5, atol=1e-5)


def test_contain_leaves_finite_weights_as_they_are():
    layer = keras.layers.Conv2D(4, 3)
    layer.build((1, 5, 5, 3))
    target = targets.weights(layer)
    assert targets.contain(layer, target) == (target, None)


def test_keras_vis_refuses_to_return_a_failed_image():
    model = _two_convs("broken", shape=(16, 16, 3))
    _nan_kernel(model)
    layer_idx = [layer.name for layer in model.layers].index("b")
    with pytest.raises(AtlasError, match=r"no image for .*a NaN or inf"):
        visualize_activation(model, layer_idx, filter_indices=BROKEN, max_iter=2)
    assert visualize_activation(model, layer_idx, filter_indices=0, max_iter=2).shape == (16, 16, 3)


# --- Objectives and starts the API refuses -------------------------------------------------------

@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -float("inf"), 1e39, np.float32("nan")])
def test_non_finite_objective_weights_are_refused(weight):
    with pytest.raises(AtlasError, match="objective weights must be finite float32 numbers"):
        obj.channel("b", 1) * weight  # the product raises
    with pytest.raises(AtlasError, match="objective weights must be finite float32 numbers"):
        obj.channel("b", 1) - weight * obj.lp_norm(6)


@pytest.mark.parametrize("make", [
    lambda: obj.channel("b", 1.5),
    lambda: obj.channel("b", 1.0),
    lambda: obj.channel("b", True),
    lambda: obj.channel("b", np.bool_(True)),
    lambda: obj.channel("b", "1"),
    lambda: obj.neuron("b", 2.0),
    lambda: obj.neuron("b", 1, x=1.5),
    lambda: obj.neuron("b", 1, y=np.float64(2)),
])
def test_filter_indices_and_positions_must_be_integers(make):
    with pytest.raises(AtlasError, match=r"(filter index|neuron [xy]) must be an integer, got"):
        make()


def test_numpy_integers_are_integers(tiny_model_path):
    tiny = load_model(str(tiny_model_path), "imagenet")
    a = render(tiny, [obj.channel("conv_b", np.int64(1)), obj.neuron("conv_b", np.int32(2), x=np.uint8(3))],
               size=16, steps=2)
    b = render(tiny, [obj.channel("conv_b", 1), obj.neuron("conv_b", 2, x=3)], size=16, steps=2)
    assert np.array_equal(a.images, b.images) and a.objectives[0].key() == b.objectives[0].key()


def test_non_finite_start_images_are_refused(tiny_model_path):
    tiny = load_model(str(tiny_model_path), "imagenet")
    start = np.full((1, 16, 16, 3), 127.0, dtype="float32")
    start[0, 3, 4, 1] = np.nan
    with pytest.raises(AtlasError, match="start images must be finite"):
        render(tiny, obj.channel("conv_b", 1), recipe=replace(KERAS_VIS, steps=1), size=16, start=start)
