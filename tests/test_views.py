"""The views of a filter: negative, neuron, diversity and examples, through the API and the atlas."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
from filter_atlas import Adam, AtlasError, Pixel, Recipe, gradient, render, score
from filter_atlas import objectives as obj
from filter_atlas.engine.recipes import get_recipe
from filter_atlas.engine.transforms import Jitter
from filter_atlas.models import LoadedModel, receptive_geometry
from filter_atlas.models.geometry import centre_box
from filter_atlas.views import VIEWS
from filter_atlas.views.diversity import IMAGES, scale
from filter_atlas.views.examples import window
from filter_atlas.views.neuron import effective_radius
from PIL import Image

from .conftest import REPO


def test_negative_view_scores_below_the_channel_views_start(vgg16):
    layer, index = "block3_conv2", 17
    r = render(vgg16, [VIEWS[v].objective(layer, index) for v in ("channel", "negative")], size=48, steps=32)
    pre = -r.activations[1]  # the negative view minimizes the mean pre-activation
    measured = score(vgg16, obj.channel(layer, index, relu=False), r.images[1:])[0]
    assert pre == pytest.approx(measured, rel=1e-4)
    assert pre < 0  # a mean after ReLU never is: the view minimizes the pre-activation
    assert pre < r.start_activations[0]  # below the channel view's start (the same start image)
    assert pre < -r.start_activations[1] - 1.0  # and well below its own start's pre-activation
    assert r.activations[0] > r.start_activations[0]


def test_diversity_view_pushes_its_four_images_apart(vgg16):
    layer, index = "block3_conv2", 70
    seeds = render(vgg16, obj.channel(layer, index), n=IMAGES, size=48, steps=48)
    weight = scale(float(seeds.activations.mean()))
    diverse = render(vgg16, VIEWS["diversity"].objective(layer, index, weight), n=IMAGES, size=48,
                     steps=48)
    similarity = [score(vgg16, obj.diversity(layer), r.images).mean() for r in (seeds, diverse)]
    assert similarity[1] < similarity[0] - 0.05, similarity
    assert np.all(score(vgg16, obj.channel(layer, index), diverse.images) > 0)  # still the filter's


def test_neuron_view_without_transforms_changes_only_its_receptive_field(vgg16):
    layer, size = "block1_conv1", 32
    plain = Recipe("plain", Pixel(), (), Adam(learning_rate=4.0), steps=6)
    start = np.random.default_rng(0).uniform(96, 160, (1, size, size, 3)).astype("float32")
    r = render(vgg16, VIEWS["neuron"].objective(layer, 9), recipe=plain, size=size, start=start)
    changed = np.abs(r.images[0].astype(int) - np.round(start[0]).astype(int)).sum(axis=-1) > 0
    geometry = receptive_geometry(vgg16.model, size)[layer]
    x0, y0, x1, y1 = centre_box((size, size), (size, size), geometry)
    assert (x1 - x0, y1 - y0) == (3, 3)
    inside = np.zeros_like(changed)
    inside[y0:y1, x0:x1] = True
    assert changed[inside].any() and not changed[~inside].any(), np.argwhere(changed)


def test_effective_radius_of_a_disc():
    y, x = np.mgrid[:64, :64]
    grad = np.zeros((64, 64, 3))
    grad[np.hypot(x + 0.5 - 20, y + 0.5 - 30) <= 8] = [-1.0, 0.5, 2.0]  # magnitude, whatever the sign
    assert 6.5 < effective_radius(grad, (20, 30)) <= 8.0
    assert effective_radius(grad, (50, 10)) > 30  # measured from another centre: far larger
    assert effective_radius(np.zeros((8, 8, 3)), (4, 4)) is None  # nothing moves it


def test_gradient_is_the_change_of_the_score_per_pixel_unit(vgg16):
    """block1_conv1 is linear in the pixels where its pre-activation is positive: raising one pixel
    by 1 changes the neuron's value by exactly its gradient there; a pixel outside its 3x3 field
    changes nothing and has a zero gradient."""
    rng = np.random.default_rng(3)
    image = rng.integers(60, 200, (1, 32, 32, 3)).astype("uint8")
    # the centre position (16, 16) of a 32 px image, for the first filter active there
    neuron = next(n for i in range(64) if score(vgg16, n := obj.neuron("block1_conv1", i), image)[0] > 1.0)
    grad = gradient(vgg16, neuron, image)[0]
    for y, x, c in [(16, 16, 0), (15, 17, 1), (17, 15, 2), (15, 15, 0), (3, 12, 1)]:
        moved = image.copy()
        moved[0, y, x, c] += 1
        change = score(vgg16, neuron, moved)[0] - score(vgg16, neuron, image)[0]
        assert grad[y, x, c] == pytest.approx(change, rel=1e-3, abs=1e-3), (y, x, c)
    moving = np.abs(grad).sum(-1) > 0
    assert moving[15:18, 15:18].all() and moving.sum() == 9


def test_the_neuron_views_effective_radius_is_its_kernels_at_block1_conv1(vgg16):
    """At block1_conv1 the gradient of the centre position is the filter's 3x3 kernel wherever it
    is active, so the view's effective radius comes from the kernel's weights alone: the share of
    |w| at the centre (distance 0), the edges (1) and the corners (sqrt 2)."""
    from filter_atlas.views.base import Outcome, Target

    layer, index, size = "block1_conv1", 43, 32
    kernel = np.abs(np.asarray(vgg16.model.get_layer(layer).kernel)[:, :, :, index]).sum(-1)
    rings = [(0.0, kernel[1, 1]), (1.0, kernel[[0, 1, 1, 2], [1, 0, 2, 1]].sum()),
             (np.sqrt(2), kernel[[0, 0, 2, 2], [0, 2, 0, 2]].sum())]
    held, expected = 0.0, None
    for radius, weight in rings:
        held += weight
        if expected is None and held >= 0.9 * kernel.sum():
            expected = radius
    r = render(vgg16, VIEWS["neuron"].objective(layer, index), size=size, steps=24,
               recipe=VIEWS["neuron"].fitted(get_recipe("lucid"), 3))
    assert r.activations[0] > 0
    made = VIEWS["neuron"].made(vgg16, Target(("vgg16", layer, index, "lucid"), (size, size), "k"),
                                Outcome(r.images, r.activations, r.start_activations, 1.0, 24))
    record = made.record({p: "0" * 64 for p in made.files}, "run0")
    assert record.effective_radius == pytest.approx(expected, abs=0.01)


def test_a_patch_window_centres_its_box_with_context_inside_the_photo():
    # A 3 px box in a 224 px image: a 32 px window, so the copy is 700% of it; centred on
    # x = 97.5 the window starts at 81.5 px = 254.7% of its side.
    assert window((96, 144, 99, 147), (224, 224)) == (700, 255, 405)
    assert window((0, 0, 3, 3), (224, 224)) == (700, 0, 0)  # at the corner: no offset past the edge
    assert window((221, 221, 224, 224), (224, 224)) == (700, 600, 600)  # 192 px = 6 sides
    assert window((10, 20, 110, 120), (224, 224)) == (224, 10, 20)  # a box wider than 32: itself
    # A 212 px box in a 100 x 160 image: a 100 px window (the image's height), centred on x = 106.
    assert window((0, 0, 212, 212), (100, 160)) == (160, 56, 0)


def test_diversity_scale_is_one_significant_figure():
    assert scale(1236.4) == scale(1233.6) == 1000.0
    assert scale(26580.0) == 30000.0
    assert scale(0.0) == scale(None) == 1.0


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for p in out.rglob("*") if p.suffix in (".png", ".webp")}


def test_atlas_adds_missing_views_without_rerendering_fresh_ones(cli, weights_path, tmp_path, monkeypatch):
    docs, photos = tmp_path / "docs", tmp_path / "photos"
    out = docs / "atlas"
    photos.mkdir()
    for k, colour in enumerate([(220, 30, 30), (30, 200, 40), (40, 40, 220)]):
        Image.fromarray(np.full((40, 48, 3), colour, dtype="uint8")).save(photos / f"p{k}.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg at all")
    base = ("render", "--weights", weights_path, "--layers", "block2_conv1", "--filters", "5,9",
            "--size", "32", "--steps", "6", "--out", out, "--examples", photos, "--quiet")
    code, stdout, err = cli(*base, "--views", "channel")
    assert code == 0 and "rendered 2, skipped 0" in stdout
    assert err.count("skipped 1 unreadable image(s)") == 1
    first = _mtimes(out)
    data = _manifest(out)
    assert data["naturals"]["name"] == "photos" and len(data["naturals"]["images"]) == 3
    assert data["naturals"]["skipped"] == 1
    assert all(set(e["views"]) == {"channel"} for e in data["filters"])

    with monkeypatch.context() as patch:  # the natural pass is built from LoadedModel.trunks
        patch.setattr(LoadedModel, "trunks", lambda self, names: pytest.fail(f"a forward pass: {names}"))
        code, stdout, _ = cli(*base, "--views", "all", "--views-size", "40")
    assert code == 0 and "rendered 0, skipped 2" in stdout  # and the natural set came from the cache
    after = _mtimes(out)
    assert all(after[p] == t for p, t in first.items())  # the channel images were not touched
    data = _manifest(out)
    for e in data["filters"]:
        v = e["views"]
        assert set(v) == {"channel", "negative", "neuron", "diversity", "examples"}
        assert v["channel"]["image"].endswith(f"{e['index']:04d}-lucid.webp")
        assert v["negative"]["size"] == v["neuron"]["size"] == v["diversity"]["size"] == 40
        assert v["negative"]["activation"] < v["negative"]["start_activation"]
        assert len(v["diversity"]["images"]) == 4 and 0 <= v["diversity"]["similarity"] <= 1
        assert v["neuron"]["crop"] and 0 < v["neuron"]["effective_radius"] <= 5 * 2 ** 0.5  # 10 px field
        assert v["examples"]["set"] == "photos" and len(v["examples"]["top"]) == 9
        tops = [p["activation"] for p in v["examples"]["top"]]
        assert tops == sorted(tops, reverse=True) and tops[0] >= v["examples"]["bottom"][0]["activation"]
        for rel in [v["negative"]["image"], v["neuron"]["thumbnail"], *v["diversity"]["images"],
                    *(p["copy"] for p in v["examples"]["top"])]:
            assert (out / rel).is_file()
    # The patches are windows onto one copy per photo, shared by both filters: no file per patch.
    copies = {p["copy"] for e in data["filters"] for side in ("top", "bottom")
              for p in e["views"]["examples"][side]}
    assert copies == {f"naturals/photos/{p.stem}.webp" for p in (tmp_path / "photos").glob("p*.png")}
    assert not [p for p in out.rglob("*.webp") if "examples" in p.name]

    before = _mtimes(out)
    code, stdout, err = cli(*base, "--views", "all", "--views-size", "40")
    assert code == 0 and "rendered 0, skipped 2" in stdout
    assert _mtimes(out) == before  # every view fresh: nothing written again

    from filter_atlas.pages import write_pages

    write_pages(out, docs)
    page = (docs / "blocks" / "block2_conv1.md").read_text()
    assert page.count('<section class="fa-unit" id="block2_conv1-') == 2  # the stable anchors
    assert 'id="block2_conv1-5"' in page and 'id="block2_conv1-9"' in page
    assert page.count("fa-shot fa-diverse") == 8 and page.count("fa-shot fa-example") == 2 * 18
    assert page.count('loading="lazy"') == 2 * (1 + 1 + 4 + 1 + 18)
    assert "from p0.png" in page or "from p1.png" in page or "from p2.png" in page
    naturals = (docs / "naturals.md").read_text()
    assert "**photos**, 3 images (1 unreadable file skipped)" in naturals and "p2\\.png" in naturals
    assert str(tmp_path) not in naturals.replace("\\", "")  # no local path on a published page
    assert "## The neuron view" in (docs / "progression.md").read_text()

    victim = out / data["filters"][0]["views"]["negative"]["image"]
    victim.write_bytes(b"broken")
    code, _, _ = cli(*base, "--views", "all", "--views-size", "40")
    assert victim.read_bytes()[:4] == b"RIFF"  # a damaged view is rendered again

    # Another view size changes every rendered view's key: they are made again at that size.
    code, _, _ = cli(*base, "--views", "negative,neuron", "--views-size", "36")
    views_ = [e["views"] for e in _manifest(out)["filters"]]
    assert code == 0 and {v["negative"]["size"] for v in views_} == {36}
    assert {v["neuron"]["size"] for v in views_} == {36}
    assert {v["diversity"]["size"] for v in views_} == {40}  # not asked for: left as it was


def test_the_unit_panel_is_what_the_views_say(monkeypatch):
    """The pages list no view: each view's ``panel`` and ``place`` decide what its filter's unit
    panel shows, so a view moved or given another note shows so without touching the pages."""
    from filter_atlas.pages import render_pages
    from filter_atlas.views import Panel
    from filter_atlas.views.negative import Negative
    from filter_atlas.views.neuron import Neuron

    atlas = REPO / "docs/atlas"
    if not (atlas / "manifest.json").is_file():
        pytest.skip("no committed atlas")

    def first_row(pages: dict[str, str]) -> list[str]:
        row = pages["blocks/block5_conv2.md"].split('<div class="fa-unit-row">', 1)[1]
        row = re.split(r'<div class="fa-unit-examples"|<p class="fa-unit-note"', row, maxsplit=1)[0]
        return re.findall(r'class="fa-shot fa-(\w+)"', row)

    before = first_row(render_pages(atlas, REPO / "docs"))
    assert before[0] == "neuron" and before[-1] == "negative"
    monkeypatch.setattr(Neuron, "place", 9)  # after every other view
    original = Negative.panel
    monkeypatch.setattr(Negative, "panel", lambda self, record, layer, index, channel=None: Panel(
        original(self, record, layer, index).shots, notes=(f"a new note on {layer} #{index}",)))
    pages = render_pages(atlas, REPO / "docs")
    after = first_row(pages)
    assert after == [*before[1:], "neuron"]
    assert "a new note on block5_conv2 #119" in pages["blocks/block5_conv2.md"]
    assert "negative: mean pre-activation" not in pages["blocks/block5_conv2.md"]


def test_the_neuron_view_keeps_its_jitter_inside_the_receptive_field(vgg16):
    """Lucid's jitter (8 then 4 px) moves block1_conv1's 3-pixel field off the pattern it learns
    from step to step: with it, the centre ends at 0 for filters 43 and 62; the neuron view's own
    recipe shifts by at most a quarter of the field, and the centre is driven."""
    lucid = get_recipe("lucid").with_steps(64)
    fitted = VIEWS["neuron"].fitted(lucid, 3)
    assert [t.pixels for t in fitted.transforms if isinstance(t, Jitter)] == [0, 0]
    assert fitted.transforms[2:] == lucid.transforms[2:]  # scale and rotation stay
    assert VIEWS["neuron"].fitted(lucid, 196) == lucid and VIEWS["channel"].fitted(lucid, 3) == lucid
    wanted = [obj.neuron("block1_conv1", i) for i in (43, 62)]
    assert max(render(vgg16, wanted, recipe=lucid, size=64).activations) == 0
    assert min(render(vgg16, wanted, recipe=fitted, size=64).activations) > 100


def test_a_view_that_ends_no_better_than_its_start_is_labelled_failed(vgg16):
    """Block1_conv1's filter 43 under Lucid's full jitter ends where it started (0): its neuron
    shot says it failed, with its numbers, and the page shows no image for it; a capped render of
    the same filter is shown as a result."""
    from types import SimpleNamespace

    from filter_atlas.pages.write import _environment
    from filter_atlas.views import ImageRecord

    lucid = get_recipe("lucid").with_steps(64)
    shots = {}
    for name, recipe in (("full jitter", lucid), ("capped", VIEWS["neuron"].fitted(lucid, 3))):
        out = render(vgg16, [obj.neuron("block1_conv1", 43)], recipe=recipe, size=64)
        record = ImageRecord(image="n.webp", thumbnail="n.webp", activation=float(out.activations[0]),
                             start_activation=float(out.start_activations[0]), size=64, steps=64,
                             seconds=1.0, key="k", sha256="0" * 64, run="r")
        (shots[name],) = VIEWS["neuron"].panel(record, "block1_conv1", 43).shots
    assert shots["full jitter"].failed.startswith("failed: 0.00, no higher than")
    assert shots["capped"].failed is None
    macro = _environment().get_template("_tiles.md.j2").module.shot
    tile = SimpleNamespace(anchor="block1_conv1-43", index=43, caption="vgg16 · block1_conv1 · filter 43")
    failed, shown = (str(macro(shots[n], "../", tile)) for n in ("full jitter", "capped"))
    assert "<img" not in failed and ">failed</div>" in failed and shots["full jitter"].failed in failed
    assert '<img src="../n.webp"' in shown and "failed" not in shown


def test_a_failed_neuron_view_is_neither_measured_nor_counted():
    from types import SimpleNamespace

    from filter_atlas.pages.statistics import measure_layer

    def tile(activation: float, start: float, radius: float) -> SimpleNamespace:
        neuron = SimpleNamespace(activation=activation, start_activation=start, effective_radius=radius,
                                 size=40)
        return SimpleNamespace(live=False, file=None, ratio=None,
                               unit=SimpleNamespace(records=SimpleNamespace(neuron=neuron)))

    stats = measure_layer([tile(5.0, 1.0, 10.0), tile(7.0, 2.0, 14.0), tile(0.0, 0.7, 60.0)], 8)
    assert (stats.neuron_images, stats.effective_radius, stats.effective_fraction) == (2, 12.0, 3.0)
    assert stats.neuron_side == 40


def test_a_diverse_image_under_a_third_of_the_channel_image_is_labelled_failed():
    from types import SimpleNamespace

    from filter_atlas.pages.write import _environment
    from filter_atlas.views.diversity import ImagesRecord

    names = tuple(f"d{k}.webp" for k in range(4))
    record = ImagesRecord(images=names, thumbnails=names, activations=(10.0, 40.0, 33.2, 33.4),
                          similarity=0.5, weight=100.0, size=64, steps=8, seconds=1.0, key="k",
                          sha256=("0" * 64,) * 4, run="r")
    shots = VIEWS["diversity"].panel(record, "block1_conv1", 43, channel=100.0).shots
    # 100 / 3 = 33.33...: 10 and 33.2 fall under it, 33.4 and 40 do not.
    assert [s.failed is not None for s in shots] == [True, False, True, False]
    assert shots[0].failed == "failed: 10.0, under a third of the channel image's 100"
    unjudged = VIEWS["diversity"].panel(record, "block1_conv1", 43).shots  # no channel image to judge by
    assert all(s.failed is None for s in unjudged)
    macro = _environment().get_template("_tiles.md.j2").module.shot
    tile = SimpleNamespace(anchor="block1_conv1-43", index=43, caption="vgg16 · block1_conv1 · filter 43")
    failed, shown = (str(macro(s, "../", tile)) for s in (shots[0], shots[1]))
    assert "<img" not in failed and shots[0].failed in html.unescape(failed)
    assert '<img src="../d1.webp"' in shown


def test_a_gated_diversity_term_pushes_only_images_above_the_gate(vgg16):
    """From the same starts: a gate no image reaches is the channel objective (the term weighted
    0), a gate every image passes is Lucid's ungated term, and a gate in between keeps the images
    the ungated term pushes down higher."""
    plain = Recipe("plain", Pixel(), (), Adam(learning_rate=4.0), steps=12)
    start = np.random.default_rng(0).uniform(64, 192, (3, 32, 32, 3)).astype("float32")
    layer, index, weight = "block1_conv1", 43, 400.0
    objectives = {"ungated": obj.channel(layer, index) - weight * obj.diversity(layer),
                  "never": obj.channel(layer, index) - weight * obj.diversity(layer, gate=1e30),
                  "zero": obj.channel(layer, index) - 0.0 * obj.diversity(layer),
                  "always": obj.channel(layer, index) - weight * obj.diversity(layer, gate=-1e30),
                  "gated": obj.channel(layer, index) - weight * obj.diversity(layer, gate=0.05)}
    images = {name: render(vgg16, o, n=3, recipe=plain, size=32, start=start).images
              for name, o in objectives.items()}
    np.testing.assert_array_equal(images["never"], images["zero"])
    np.testing.assert_array_equal(images["always"], images["ungated"])
    reached = {name: score(vgg16, obj.channel(layer, index), images[name]) for name in ("ungated", "gated")}
    assert reached["gated"].min() > reached["ungated"].min()
    assert not np.array_equal(images["gated"], images["never"])  # it did push
    with pytest.raises(AtlasError, match="gate"):
        obj.diversity(layer, gate=float("nan"))
