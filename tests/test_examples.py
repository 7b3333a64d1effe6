"""Dataset examples and natural image sets, on tiny real Keras models with hand-set weights."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from filter_atlas.errors import AtlasError
from filter_atlas.examples import find, find_examples, selection
from filter_atlas.models import (
    LoadedModel,
    box_centre,
    centre_box,
    position_boxes,
    receptive_geometry,
    weights_digest,
)
from filter_atlas.naturals import bundled_set, folder_set, load_image
from PIL import Image

SIZE = 32
GREY, GREEN, NAVY = (128, 128, 128), (0, 255, 0), (40, 40, 200)


def _wrap(model: keras.Model) -> LoadedModel:
    return LoadedModel(model=model, name=model.name, weights="test", trained=True,
                       weights_sha256=weights_digest(model), preprocess="raw", min_size=1,
                       fixed_size=(None, None))


@pytest.fixture(scope="module")
def colour_model() -> LoadedModel:
    """``colour``: 1x1 conv, filter 0 = red - green - blue (pre-activation in 0-255 units), filter 1 =
    green; ``area``: after a 2x2 max pool, a 3x3 sum of filter 0's ReLU (receptive field 6, jump 2)."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 1, activation="relu", name="colour")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="area")(x)
    model = keras.Model(inputs, x, name="colours")
    colour = np.zeros((1, 1, 3, 2), "float32")
    colour[0, 0, :, 0] = (1.0, -1.0, -1.0)
    colour[0, 0, 1, 1] = 1.0
    area = np.zeros((3, 3, 2, 1), "float32")
    area[:, :, 0, 0] = 1.0
    model.get_layer("colour").set_weights([colour, np.zeros(2, "float32")])
    model.get_layer("area").set_weights([area, np.zeros(1, "float32")])
    return _wrap(model)


def _save(path, pixels: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kwargs)


def _flat(colour, side: int = SIZE) -> np.ndarray:
    return np.full((side, side, 3), colour, "uint8")


@pytest.fixture
def folder(tmp_path):
    """Five PNGs; only b/red.png has red: an 8x8 square at x 20..27, y 4..11."""
    root = tmp_path / "photos"
    red = _flat(GREY)
    red[4:12, 20:28] = (255, 0, 0)
    _save(root / "a-grey.png", _flat(GREY))
    _save(root / "b/red.png", red)
    _save(root / "c-green.png", _flat(GREEN))
    _save(root / "d-navy.png", _flat(NAVY))
    _save(root / "e-noise.png", np.random.default_rng(0).integers(0, 100, (SIZE, SIZE, 3), dtype="uint8"))
    return root


def _run(model, root, cache, **kwargs):
    return find_examples(model, {"colour": [0, 1], "area": [0]}, folder_set(root), SIZE,
                         cache_dir=cache, progress=False, **kwargs)


def test_the_image_with_the_detected_colour_is_the_top_example(colour_model, folder, tmp_path):
    result = _run(colour_model, folder, tmp_path / "cache")
    assert (result.used, result.skipped) == (5, ())
    top = result.filters["colour", 0].top
    assert top[0].source == "b/red.png" and top[0].activation == pytest.approx(255.0)
    x0, y0, x1, y1 = top[0].box
    assert 20 <= x0 < x1 <= 28 and 4 <= y0 < y1 <= 12  # the 1x1 field lies on the red square
    assert (load_image(folder / top[0].source, SIZE)[y0:y1, x0:x1] == (255, 0, 0)).all()
    area = result.filters["area", 0].top[0]
    x0, y0, x1, y1 = area.box
    assert area.source == "b/red.png" and x1 - x0 == y1 - y0 == 6
    assert 20 <= x0 < x1 <= 28 and 4 <= y0 < y1 <= 12  # a field wholly inside the square
    assert area.activation == pytest.approx(9 * 255.0)
    assert result.filters["colour", 0].best_mean == pytest.approx(255.0 * 64 / SIZE**2)


def test_a_large_set_gives_one_patch_per_image(colour_model, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(selection, "LARGE_SET", 5)
    monkeypatch.setattr(selection, "MERGE_EVERY", 2)  # the running top k is merged several times
    result = _run(colour_model, folder, tmp_path / "cache", k=4)
    top = result.filters["colour", 0].top
    assert len(top) == 4 and len({p.source for p in top}) == 4
    assert top[0].source == "b/red.png" and top[0].activation == pytest.approx(255.0)
    assert [p.source for p in result.filters["colour", 0].bottom[:2]] == ["c-green.png", "d-navy.png"]


def test_bottom_examples_are_the_most_negative_positions(colour_model, folder, tmp_path):
    result = _run(colour_model, folder, tmp_path / "cache")
    bottom = result.filters["colour", 0].bottom
    assert [p.source for p in bottom[:3]] == ["c-green.png"] * 3  # green: -255, navy: -200
    assert [p.activation for p in bottom[:4]] == pytest.approx([-255.0] * 3 + [-200.0])
    assert bottom[3].source == "d-navy.png"
    assert all(a.activation <= b.activation for a, b in itertools.pairwise(bottom))
    assert result.filters["colour", 1].top[0].source == "c-green.png"
    no_green = result.filters["colour", 1].bottom[0]  # green filter: lowest on the red square (G = 0)
    x0, y0, x1, y1 = no_green.box
    assert no_green.source == "b/red.png" and no_green.activation == 0.0
    assert 20 <= x0 < x1 <= 28 and 4 <= y0 < y1 <= 12


def test_ties_go_to_the_earlier_image_then_the_earlier_position(colour_model, tmp_path):
    for i in range(12):
        _save(tmp_path / "flat" / f"{i:02d}.png", _flat(GREY, 8))
    result = find_examples(colour_model, {"colour": [0]}, folder_set(tmp_path / "flat"), 8,
                           cache_dir=tmp_path / "cache", progress=False)
    for side in (result.filters["colour", 0].top, result.filters["colour", 0].bottom):
        assert [(p.source, p.box) for p in side] == [
            (f"{i:02d}.png", (x, 0, x + 1, 1)) for i in range(3) for x in range(3)]


def _overlap(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return max(w, 0) * max(h, 0) / small


def test_patches_of_one_image_are_distinct_places(colour_model, folder, tmp_path):
    result = _run(colour_model, folder, tmp_path / "cache")
    for found in (result.filters["area", 0], result.filters["colour", 0]):
        for side in (found.top, found.bottom):
            by_image = {}
            for patch in side:
                by_image.setdefault(patch.source, []).append(patch.box)
            assert max(len(b) for b in by_image.values()) == 3  # m = 3 for a small set
            for boxes in by_image.values():
                assert all(_overlap(a, b) <= 0.5 for a, b in itertools.combinations(boxes, 2)), boxes
    red = [p for p in result.filters["area", 0].top if p.source == "b/red.png"]
    assert len(red) == 3 and red[0].activation == 9 * 255.0 and len({p.box for p in red}) == 3


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(
        (x.best_mean, [(p.source, p.box, p.activation) for p in x.top + x.bottom])
        == (y.best_mean, [(p.source, p.box, p.activation) for p in y.top + y.bottom])
        for x, y in ((a[key], b[key]) for key in a))


def test_a_second_run_reads_the_cache_and_never_calls_the_model(colour_model, folder, tmp_path, monkeypatch):
    first = _run(colour_model, folder, tmp_path / "cache")
    assert first.cached == 0
    assert list((tmp_path / "cache").rglob("*.sqlite"))

    def no_model(model, names, *args):
        raise AssertionError(f"the model was cut for a forward pass through {names}")

    with monkeypatch.context() as patched:
        patched.setattr(find, "Forward", no_model)  # the forward pass, built at the first uncached image
        second = _run(colour_model, folder, tmp_path / "cache")
        assert second.cached == second.used == 5
        with pytest.raises(AssertionError, match="the model was cut"):  # the guard does bite
            _run(colour_model, folder, tmp_path / "other-cache")
    assert _same(first.filters, second.filters)
    assert _run(colour_model, folder, tmp_path / "other-cache").cached == 0


def test_unreadable_images_are_skipped_counted_and_reported_once(colour_model, folder, tmp_path, capsys):
    (folder / "corrupt.jpg").write_bytes(np.random.default_rng(1).bytes(3000))
    _save(folder / "full.jpg", np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype="uint8"))
    data = (folder / "full.jpg").read_bytes()
    (folder / "full.jpg").unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    assert load_image(folder / "truncated.jpg", SIZE) is None
    result = _run(colour_model, folder, tmp_path / "cache")
    assert result.used == 5 and len(result.skipped) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["filter-atlas: skipped 2 unreadable image(s) in photos, e.g. corrupt.jpg"]


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), "uint8")  # stored: left half red, right half blue
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: red on top
    _save(tmp_path / "rotated.jpg", pixels, exif=exif, quality=95)
    image = load_image(tmp_path / "rotated.jpg", 20)
    assert image.shape == (20, 20, 3) and image.dtype == np.uint8
    assert image[2, 17, 0] > 200 and image[2, 17, 2] < 60  # top right: red
    assert image[17, 2, 2] > 200 and image[17, 2, 0] < 60  # bottom left: blue


def test_folder_set_is_recursive_sorted_and_errors_in_one_line(folder, tmp_path):
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "notes.txt").write_text("no image")
    found = folder_set(folder)
    assert found.name == "photos"
    assert [n.name for n in found.sources] == ["a-grey.png", "b/red.png", "c-green.png", "d-navy.png",
                                               "e-noise.png"]
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(AtlasError) as error:
            folder_set(path)
        assert "\n" not in str(error.value)


def test_bundled_set_is_existing_colour_photos_with_source_and_licence():
    found = bundled_set()
    assert len(found.sources) >= 7
    assert len({n.name for n in found.sources}) == len(found.sources)
    for natural in found.sources:
        assert natural.path.is_file() and natural.source and natural.licence
        image = load_image(natural.path, 64).astype(int)
        spread = np.abs(image - image.mean(axis=2, keepdims=True)).mean()
        assert spread > 5, (natural.name, spread)  # not greyscale


def test_receptive_geometry_of_vgg16():
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3))
    geometry = receptive_geometry(vgg, 224)
    expected = {"block1_conv1": (3, 1, 0.0), "block2_conv1": (10, 2, 0.5), "block3_conv2": (32, 4, 1.5),
                "block3_conv3": (40, 4, 1.5), "block5_conv2": (164, 16, 7.5), "block5_conv3": (196, 16, 7.5)}
    square = {name: tuple((v, v) for v in values) for name, values in expected.items()}  # (height, width)
    assert {name: (g.field, g.jump, g.start) for name, g in geometry.items() if name in expected} == square


@pytest.mark.parametrize("size", [16, 17, 48, 51])
def test_geometry_matches_the_pixels_that_reach_a_position(size):
    """With strided and dilated 'same' convolutions and a pooling, the box of each position is exactly
    the set of input pixels whose change changes that position."""
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(1, 3, strides=2, padding="same", name="a")(inputs)
    x = keras.layers.MaxPooling2D(2, padding="same", name="p")(x)
    x = keras.layers.Conv2D(1, 3, dilation_rate=2, padding="same", name="d")(x)
    x = keras.layers.Conv2D(1, 4, strides=2, padding="same", use_bias=False, name="b")(x)
    model = keras.Model(inputs, x)
    model.get_layer("a").set_weights([np.ones((3, 3, 1, 1), "float32"), np.zeros(1, "float32")])
    model.get_layer("d").set_weights([np.ones((3, 3, 1, 1), "float32"), np.zeros(1, "float32")])
    model.get_layer("b").set_weights([np.ones((4, 4, 1, 1), "float32")])
    g = receptive_geometry(model, size)["b"]
    base = np.ones((size, size), "float32")
    probes = np.repeat(base[None], size * size, axis=0)
    probes.reshape(size * size, -1)[np.arange(size * size), np.arange(size * size)] = 100.0
    out = np.asarray(model.predict(probes[..., None], verbose=0))[..., 0]  # (pixels, H, W)
    reference = np.asarray(model.predict(base[None, ..., None], verbose=0))[0, ..., 0]
    h, w = out.shape[1:]
    reached = []
    for row, col in itertools.product(range(h), range(w)):
        ys, xs = np.nonzero((out[:, row, col] != reference[row, col]).reshape(size, size))
        reached.append([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1])
    assert position_boxes((size, size), (h, w), g).tolist() == reached  # row-major positions
    assert list(centre_box((size, size), (h, w), g)) == reached[(h // 2) * w + w // 2]
    x0, y0, x1, y1 = reached[(h // 2) * w + w // 2]
    if size > 32:  # a field inside the image: its centre is the box's
        assert min(x0, y0) > 0 and max(x1, y1) < size
        assert box_centre((h, w), g) == ((x0 + x1) / 2, (y0 + y1) / 2)
