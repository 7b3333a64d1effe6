"""The keras-vis compatibility layer runs the classic filter tutorial with one import change."""

import keras
import numpy as np
import pytest
from filter_atlas import AtlasError
from filter_atlas.keras_vis.input_modifiers import Jitter
from filter_atlas.keras_vis.utils import utils
from filter_atlas.keras_vis.visualization import get_num_filters, visualize_activation


@pytest.fixture(scope="module")
def vgg16_with_top():
    # The tutorial's model; include_top weights are not available offline, so untrained ones.
    keras.utils.set_random_seed(0)
    return keras.applications.VGG16(weights=None, include_top=True)


def test_the_tutorials_loop_runs_unchanged(vgg16_with_top, monkeypatch):
    monkeypatch.setenv("FILTER_ATLAS_MAX_STEPS", "3")
    model = vgg16_with_top
    for layer_name in ("block1_conv2", "block5_conv3"):
        layer_idx = utils.find_layer_idx(model, layer_name)
        filters = np.arange(get_num_filters(model.layers[layer_idx]))[:2]
        vis_images = []
        for idx in filters:
            img = visualize_activation(model, layer_idx, filter_indices=idx, input_modifiers=[Jitter(16)])
            img = utils.draw_text(img, f"Filter {idx}")
            vis_images.append(img)
        stitched = utils.stitch_images(vis_images, cols=8)
        assert stitched.shape == (224, 224 * 2 + 5, 3) and stitched.dtype == np.uint8
        assert not np.array_equal(vis_images[0], vis_images[1])
    assert get_num_filters(model.layers[utils.find_layer_idx(model, "block5_conv3")]) == 512


def test_activation_rises_and_errors_are_clear(vgg16_with_top, monkeypatch):
    model = vgg16_with_top
    idx = utils.find_layer_idx(model, "block1_conv1")
    seed = np.full((224, 224, 3), 127.0)
    start, done = (visualize_activation(model, idx, filter_indices=[3, 5], seed_input=seed, max_iter=steps,
                                        lp_norm_weight=0, tv_weight=0) for steps in (1, 20))
    probe = keras.Model(model.inputs, model.layers[idx].output)
    score = [float(np.asarray(probe(im[None].astype("float32")))[..., [3, 5]].mean()) for im in (start, done)]
    assert score[1] > score[0]
    with pytest.raises(ValueError, match="No such layer"):
        utils.find_layer_idx(model, "block9_conv1")
    with pytest.raises(AtlasError, match="not a conv layer"):
        visualize_activation(model, utils.find_layer_idx(model, "fc1"), filter_indices=0, max_iter=1)
