"""The all-filter natural pass (every filter of every conv layer over a labelled set), its evidence
file and copies, and the layer pages' cards; on a tiny real Keras model with hand-set weights."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from filter_atlas.evidence_pass import natural_evidence
from filter_atlas.examples import find, find_examples, measure
from filter_atlas.naturals import folder_set
from filter_atlas.numbers import number
from filter_atlas.pages import render_pages
from filter_atlas.semantics import coarse_categories
from filter_atlas.spec import AtlasSpec
from filter_atlas.store.evidence import evidence_path, read_evidence

from .test_examples import GREEN, GREY, NAVY, SIZE, _flat, _save, colour_model  # noqa: F401

RED_COUNT = 20  # images of the class "red"; the others hold no red at all
SQUARE = 8


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """110 PNGs named ImageNet-style (``n0000000k_<class>.png``), enough for one patch per image:
    20 "red" (an 8x8 pure red square on grey, at a seeded place), 30 each "grey", "green", "navy"."""
    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    places = {}
    for k in range(RED_COUNT):
        y, x = (int(v) for v in rng.integers(0, SIZE - SQUARE, 2))
        image = _flat(GREY)
        image[y : y + SQUARE, x : x + SQUARE] = (255, 0, 0)
        name = f"n{k:08d}_red.png"
        _save(root / name, image)
        places[name] = (x, y)
    for n, (label, colour) in enumerate([("grey", GREY), ("green", GREEN), ("navy", NAVY)]):
        for k in range(30):
            _save(root / f"n{100 + 30 * n + k:08d}_{label}.png", _flat(colour))
    return root, places


@pytest.fixture(scope="module")
def model(colour_model, tmp_path_factory):  # noqa: F811
    """The colour model with its weights in a file, as a model file's atlas records them."""
    path = tmp_path_factory.mktemp("weights") / "colours.weights.h5"
    colour_model.model.save_weights(path)
    return replace(colour_model, weights=str(path))


def _spec(folder, out) -> AtlasSpec:
    return AtlasSpec(model="colours", size=(SIZE, SIZE), out=out, examples=folder)


def test_the_class_that_holds_the_colour_tops_the_filter(model, labelled, tmp_path):
    folder, places = labelled
    summary = natural_evidence(_spec(folder, tmp_path / "atlas"), model, quiet=True,
                               cache_dir=tmp_path / "cache")
    evidence = read_evidence(summary.path)
    assert summary.filters == 3 and summary.layers == 2 and evidence.used == 110
    colour = evidence.layer("colour")
    names = [image.name for image in evidence.images]
    labels = [evidence.images[i].label for i in colour.top.image[0]]
    assert labels == ["red"] * 9
    # Filter 0 is r - g - b: positive only on the red squares, so exactly the red images are active,
    # and its best mean is the square's share of 255 less the grey's ReLU (0).
    assert colour.active[0] == RED_COUNT
    assert colour.best[0] == pytest.approx(255 * SQUARE * SQUARE / SIZE**2, rel=1e-3)
    # The same mean on each red image and 0 elsewhere: lifetime sparsity (1 - 20/110) / (1 - 1/110).
    assert colour.sparsity[0] == pytest.approx((1 - RED_COUNT / 110) / (1 - 1 / 110), abs=1e-4)
    for image, box in zip(colour.top.image[0], colour.top.box[0], strict=True):
        x, y = places[names[image]]
        assert x <= box[0] < x + SQUARE and y <= box[1] < y + SQUARE  # the patch is on the square
    # Filter 1 is green: pure green images top it, and every image but the grey ones is positive
    # somewhere (navy has green 40, red images their grey background).
    assert {evidence.images[i].label for i in colour.top.image[1]} == {"green"}
    assert colour.active[1] == 110
    for image in evidence.images:  # a copy for every image some patch uses, nothing else
        assert (image.copy is not None) == (tmp_path / "atlas" / (image.copy or "-")).is_file()
    assert json.loads(summary.path.read_text())["set"] == folder.name


def test_all_filter_evidence_equals_the_examples_of_chosen_filters(model, labelled, tmp_path):
    folder, _ = labelled
    summary = natural_evidence(_spec(folder, tmp_path / "atlas"), model, quiet=True,
                               cache_dir=tmp_path / "cache")
    evidence = read_evidence(summary.path)
    chosen = find_examples(model, {"colour": [1], "area": [0]}, folder_set(folder), SIZE,
                           cache_dir=tmp_path / "other-cache", progress=False)
    names = [image.name for image in evidence.images]
    for (layer, index), found in chosen.filters.items():
        record = evidence.layer(layer)
        for side in ("top", "bottom"):
            column = getattr(record, side)
            patches = getattr(found, side)
            assert [names[i] for i in column.image[index]] == [p.source for p in patches]
            assert list(column.box[index]) == [tuple(p.box) for p in patches]
            assert list(column.activation[index]) == pytest.approx([p.activation for p in patches], rel=1e-3)


def test_extremes_found_in_the_graph_equal_the_selection_on_the_maps(model, labelled, tmp_path,
                                                                     monkeypatch):
    folder, _ = labelled
    image_set = folder_set(folder)
    layers = ["colour", "area"]
    fast = measure(model, layers, image_set, SIZE, cache_dir=tmp_path / "a", progress=False)
    original = find.Forward
    monkeypatch.setattr(find, "Forward", lambda model, names, batch, extremes: original(model, names, batch))
    slow = measure(model, layers, image_set, SIZE, cache_dir=tmp_path / "b", progress=False)
    for name in ("colour", "area"):
        a, b = fast.layers[name], slow.layers[name]
        for side in ("top", "bottom"):
            for x, y in zip(getattr(a, side), getattr(b, side), strict=True):
                np.testing.assert_allclose(x, y, rtol=1e-6)
        np.testing.assert_array_equal(a.active, b.active)


def test_a_second_pass_is_fresh_and_a_corrupt_image_is_counted(model, labelled, tmp_path,
                                                               monkeypatch):
    folder, _ = labelled
    spec = _spec(folder, tmp_path / "atlas")
    natural_evidence(spec, model, quiet=True, cache_dir=tmp_path / "cache")
    with monkeypatch.context() as patched:
        patched.setattr(find, "Forward", None)  # any model call fails
        assert natural_evidence(spec, model, quiet=True, cache_dir=tmp_path / "cache").fresh
        again = natural_evidence(spec, model, quiet=True, force=True, cache_dir=tmp_path / "cache")
        assert not again.fresh and again.cached == again.used == 110
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in folder.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "n99999999_red.png").write_bytes(b"not a png")
    out = natural_evidence(_spec(broken, tmp_path / "atlas2"), model, quiet=True,
                           cache_dir=tmp_path / "cache")
    evidence = read_evidence(out.path)
    assert (evidence.used, evidence.skipped) == (110, 1)


def test_the_layer_pages_show_every_filter_with_its_classes(model, labelled, tmp_path):
    folder, _ = labelled
    docs = tmp_path / "docs"
    natural_evidence(_spec(folder, docs / "atlas"), model, quiet=True, cache_dir=tmp_path / "cache")
    pages = render_pages(docs / "atlas", docs)
    colour = pages["blocks/colour.md"]
    assert "### #0 · red { #colour-0 }" in colour
    assert "### #1 · green { #colour-1 }" in colour
    assert colour.count('class="fa-crop"') == 2 * 4
    assert '<a href="#colour-1">next</a>' in colour and '<a href="#colour-0">previous</a>' in colour
    assert "not rendered yet" in colour
    assert "blocks/area.md" in pages
    assert evidence_path(docs / "atlas", model.slug).is_file()


def test_coarse_categories_on_the_cards_and_the_shallow_to_deep_page(model, labelled, tmp_path):
    """The same images under real ImageNet names: red ones are dog classes, green ones object
    classes, the rest birds and vehicles. Filter 0 (red) and 1 (green) have their 9 top images in
    one category, which chance reaches far more rarely than ALPHA; the pages say so."""
    folder, _ = labelled
    table = sorted(coarse_categories().items())
    wnids = {name: iter([w for w, c in table if c == name]) for name in ("dog", "object", "bird", "vehicle")}
    kind = {"red": "dog", "green": "object", "grey": "bird", "navy": "vehicle"}
    named = tmp_path / "named"
    named.mkdir()
    for path in sorted(folder.iterdir()):
        label = path.stem.split("_", 1)[1]
        (named / f"{next(wnids[kind[label]])}_{label}.png").write_bytes(path.read_bytes())
    docs = tmp_path / "docs"
    natural_evidence(_spec(named, docs / "atlas"), model, quiet=True, cache_dir=tmp_path / "cache")
    evidence = read_evidence(evidence_path(docs / "atlas", model.slug))
    pages = render_pages(docs / "atlas", docs)
    colour = pages["blocks/colour.md"]
    assert "mostly dog (9 of 9)" in colour and "mostly object (9 of 9)" in colour
    # The table row of each layer: its concentrated share, counted here from the evidence.
    by_name = {image.name: kind[image.name.split("_", 1)[1].rsplit(".", 1)[0]] for image in evidence.images}
    for layer in evidence.layers:
        tops = [[by_name[evidence.images[i].name] for i in top] for top in layer.top.image]
        share = sum(max(Counter(t).values()) == 9 for t in tops) / layer.filters
        mean = sum(max(Counter(t).values()) for t in tops) / layer.filters
        row = next(line for line in pages["progression.md"].splitlines()
                   if line.startswith("| [") and f"#{layer.name})" in line)
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[5] == number(mean, 2) and cells[6] == f"{number(100 * share)}%", row


def test_the_pass_keeps_the_copies_an_examples_view_lists_and_removes_the_rest(model, labelled, tmp_path):
    """Copies are shared: the evidence pass removes a copy of its set only where neither an
    evidence file nor an examples view of the manifest lists it."""
    from filter_atlas.naming import copy_path
    from filter_atlas.store import Store
    from filter_atlas.views import ExamplesRecord, PatchRecord

    from .conftest import write_atlas

    folder, _ = labelled
    out = tmp_path / "atlas"
    out.mkdir()
    write_atlas(out, {"block1_conv1": [0]})
    kept, stray = (copy_path(folder.name, name) for name in ("n77777777_kept.png", "n88888888_stray.png"))
    for rel in (kept, stray):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"RIFF")
    store = Store(out)
    patch = PatchRecord("n77777777_kept.png", (0, 0, 1, 1), 1.0, kept, "kept")
    store.put_view(("vgg16", "block1_conv1", 0, "lucid"), "examples",
                   ExamplesRecord(set=folder.name, size=SIZE, key="k", top=(patch,), bottom=()))
    store.save()
    summary = natural_evidence(_spec(folder, out), model, quiet=True, cache_dir=tmp_path / "cache")
    used = {image.copy for image in read_evidence(summary.path).images if image.copy}
    assert used and all((out / rel).is_file() for rel in used)
    assert (out / kept).is_file() and not (out / stray).exists()
