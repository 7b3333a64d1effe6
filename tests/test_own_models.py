"""Your own model: nested, grayscale, non-square and fixed-size models, depthwise and separable
layers, names TensorFlow refuses as scopes, and the commands the pages print for them, end to end
with small real Keras models saved to disk."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tomllib
from filter_atlas.cli import main
from filter_atlas.models import load_model, receptive_geometry
from PIL import Image

from .conftest import REPO

FAST = ("--steps", "4", "--views", "channel", "--quiet")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Small models saved as .keras: transfer learning (VGG16 nested in a Sequential), grayscale
    with depthwise and separable layers and scope-unsafe names, and a fixed non-square input."""
    folder = tmp_path_factory.mktemp("own")
    keras.utils.set_random_seed(3)
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    transfer = keras.Sequential([keras.Input((32, 32, 3)), base, keras.layers.GlobalAveragePooling2D(),
                                 keras.layers.Dense(5)], name="transfer")
    gray = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="first conv"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(8, 3, activation="relu", name="<img src=x>"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu", name="dw"),
        keras.layers.SeparableConv2D(6, 3, activation="relu", name="sep"),
    ], name="sequential")
    rect = keras.Sequential([keras.Input((24, 40, 3)), keras.layers.Conv2D(4, 3, strides=2, name="c1"),
                             keras.layers.Conv2D(4, 3, activation="relu", name="c2")], name="sequential")
    paths = {}
    for name, model in (("transfer", transfer), ("gray", gray), ("rect", rect)):
        paths[name] = folder / f"{name}.keras"
        model.save(paths[name])
    return paths


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """Run where no pyproject.toml sets a size, with no weights variable (as a user's own folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FILTER_ATLAS_WEIGHTS", raising=False)


def run(*args) -> tuple[int, str, str]:
    """The CLI in this process, stdout and stderr captured by the caller's capsys."""
    return main([str(a) for a in args])


def entries(out: Path) -> list[dict]:
    return json.loads((out / "manifest.json").read_text())["filters"]


def build_site(capsys, out_docs: Path, tmp_path: Path) -> Path:
    """The pages and the strict MkDocs build of this repository's configuration over ``out_docs``."""
    assert run("build", "--no-render", "--out", out_docs / "atlas", "--docs", out_docs,
               "--mkdocs", REPO / "mkdocs.yml", "--site", tmp_path / "site") == 0, capsys.readouterr().err
    return tmp_path / "site"


def reproduce_lines(docs: Path) -> list[list[str]]:
    """The ``filter-atlas render`` commands of the Reproduce page, as argument lists."""
    text = (docs / "reproduce.md").read_text()
    commands = re.findall(r"^filter-atlas render .*?(?:\\\n.*?)*$", text, flags=re.M)
    return [shlex.split(c.replace("\\\n", " "))[1:] for c in commands]


def test_transfer_learning_model_end_to_end(models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(models["transfer"].parent)
    assert run("layers", "--model", "transfer.keras") == 0
    listed = capsys.readouterr().out
    assert "vgg16/block5_conv2" in listed and "output at 32 px" in listed  # the model's own size
    docs = tmp_path / "docs"
    # A nested layer by its own name (unambiguous), at the model's own input size, in bfloat16
    # (every layer of the nested model computes in it while optimizing).
    assert run("render", "--model", "transfer.keras", "--layers", "block1_conv1,block5_conv2",
               "--filters", "0,3", "--precision", "bfloat16", "--out", docs / "atlas", *FAST) == 0, \
        capsys.readouterr().err
    found = {(e["layer"], e["index"], e["precision"]) for e in entries(docs / "atlas")}
    assert found == {(layer, i, "bfloat16") for layer in ("vgg16/block1_conv1", "vgg16/block5_conv2")
                     for i in (0, 3)}
    model = json.loads((docs / "atlas/manifest.json").read_text())["models"]["transfer"]
    assert model["trained"] is None and model["input_size"] == 32  # weights from a file: not known
    site = build_site(capsys, docs, tmp_path)
    assert (site / "blocks").is_dir() and "weights from file" in (docs / "index.md").read_text()
    galleries = list((docs / "blocks").glob("*.md"))
    assert galleries and all('<span class="fa-label">bfloat16</span>' in g.read_text() for g in galleries)
    # Each command the pages print runs, and renders nothing new: it names these very images.
    lines = [line for line in reproduce_lines(docs) if line[line.index("--recipe") + 1] == "lucid"]
    assert lines and all(line[line.index("--model") + 1] == "transfer.keras" for line in lines), lines
    assert all(line[line.index("--precision") + 1] == "bfloat16" for line in lines), lines
    for line in lines:
        capsys.readouterr()
        assert run(*line, "--out", docs / "atlas", "--quiet") == 0, capsys.readouterr().err
        assert "rendered 0," in capsys.readouterr().out


def test_grayscale_model_with_depthwise_separable_and_unsafe_names(models, tmp_path, capsys):
    assert run("layers", "--model", models["gray"]) == 0
    listed = capsys.readouterr().out
    for name, kind in (("first conv", "conv 3x3"), ("<img src=x>", "conv 3x3"), ("dw", "depthwise 3x3"),
                       ("sep", "separable 3x3")):
        assert re.search(rf"^{re.escape(name)}\s+\d+\s+.*{kind}", listed, flags=re.M), listed
    docs = tmp_path / "docs"
    code = run("render", "--model", models["gray"], "--filters", "1,2", "--out", docs / "atlas", *FAST)
    assert code == 0, capsys.readouterr().err
    found = entries(docs / "atlas")
    assert {e["layer"] for e in found} == {"first conv", "<img src=x>", "dw", "sep"}
    live = [e for e in found if not e["dead"]]
    assert live
    for e in live:
        with Image.open(docs / "atlas" / e["views"]["channel"]["image"]) as image:
            # WebP has no grayscale mode: the one channel is stored in all three
            grey = np.asarray(image.convert("RGB"), dtype=int)
            assert image.size == (28, 28) and np.abs(grey - grey[..., :1]).max() <= 1
    folders = {e["views"]["channel"]["image"].split("/")[1] for e in live}
    assert len(folders) == len({e["layer"] for e in live})  # own folders
    code = run("render", "--model", models["gray"], "--layers", "first conv", "--filters", "1,2", "--out",
               docs / "atlas", "--steps", "4", "--views", "channel,neuron", "--quiet")
    assert code == 0, capsys.readouterr().err
    for e in entries(docs / "atlas"):  # measured on its one channel: a 3x3 field, at most a corner away
        if e["layer"] == "first conv" and not e["dead"]:
            assert 0 < e["views"]["neuron"]["effective_radius"] <= 2 ** 0.5 + 0.01
    build_site(capsys, docs, tmp_path)


def test_non_square_fixed_model_renders_at_its_own_shape(models, tmp_path, capsys):
    out = tmp_path / "atlas"
    assert run("render", "--model", models["rect"], "--layers", "c2", "--filters", "all", "--out", out,
               "--views", "channel,negative,neuron", "--steps", "4", "--quiet") == 0, capsys.readouterr().err
    for e in entries(out):
        channel = e["views"]["channel"]
        assert (channel["size"], channel["width"]) == (24, 40)
        if not e["dead"]:
            with Image.open(out / channel["image"]) as image:
                assert image.size == (40, 24)  # width x height
    assert run("render", "--model", models["rect"], "--size", "24x40", "--out", out, *FAST) == 0
    assert "skipped" in capsys.readouterr().out
    naturals = json.loads((out / "manifest.json").read_text())["naturals"]
    assert (naturals["size"], naturals["width"]) == (24, 40)  # measured at the model's own shape
    assert run("pages", "--out", out, "--docs", tmp_path) == 0
    assert "cover 24 \u00d7 40 px (height \u00d7 width)" in (tmp_path / "naturals.md").read_text()
    assert run("render", "--model", models["rect"], "--size", "32", "--out", out, *FAST) == 2
    assert "only accepts 24x40 px inputs" in capsys.readouterr().err


def test_receptive_fields_through_every_spatial_layer():
    """The geometry of the last layer matches the input pixels that reach its first positions,
    through a nested model with strided, dilated, depthwise, separable, pooling and padding layers,
    on a non-square input."""
    inner_in = keras.Input((None, None, 1))
    x = keras.layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", name="dw")(inner_in)
    x = keras.layers.SeparableConv2D(1, 3, strides=2, padding="same", name="sep")(x)
    inner = keras.Model(inner_in, x, name="inner")
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(1, 3, strides=2, padding="same", name="a")(inputs)
    x = keras.layers.ZeroPadding2D(((1, 0), (2, 1)), name="zp")(x)
    x = inner(x)
    x = keras.layers.MaxPooling2D(2, padding="same", name="p")(x)
    x = keras.layers.Conv2D(1, 3, padding="valid", name="last")(x)
    model = keras.Model(inputs, x)
    for layer in model.layers + inner.layers:
        layer.set_weights([np.ones(w.shape, "float32") for w in layer.get_weights()])
    size = (30, 37)
    g = receptive_geometry(model, size)["last"]
    assert receptive_geometry(model, size)["inner/sep"].field == (15, 15)  # named through the nesting
    base = np.ones(size, "float32")
    probes = np.repeat(base[None], size[0] * size[1], axis=0)
    probes.reshape(len(probes), -1)[np.arange(len(probes)), np.arange(len(probes))] = 100.0
    out = np.asarray(model.predict(probes[..., None], verbose=0))[..., 0]
    reference = np.asarray(model.predict(base[None, ..., None], verbose=0))[0, ..., 0]
    for row, col in ((0, 0), (1, 2)):
        ys, xs = np.nonzero((out[:, row, col] != reference[row, col]).reshape(size))
        for axis, (found, position) in enumerate(((ys, row), (xs, col))):
            low = int(np.floor(g.start[axis] + position * g.jump[axis] - (g.field[axis] - 1) / 2))
            assert (found.min(), found.max() + 1) == (max(low, 0), min(low + g.field[axis], size[axis])), axis


def test_weights_labels(models, vgg16, tmp_path):
    assert vgg16.trained is True  # a local copy of the ImageNet weights, known by its values
    assert load_model(str(models["rect"])).trained is None  # random or trained: a file does not say
    assert load_model("vgg16", "random").trained is False
    assert load_model("mobilenet_v2", "random").name == "mobilenetv2"  # the module's spelling
    assert load_model("MobileNetV2", "random").name == "mobilenetv2"


def test_weights_variable_belongs_to_the_default_model(models, weights_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FILTER_ATLAS_WEIGHTS", str(weights_path))
    assert run("render", "--model", models["rect"], "--filters", "0", "--layers", "c1",
               "--out", tmp_path / "a", *FAST) == 0, capsys.readouterr().err


def test_selection_notes(models, tmp_path, capsys):
    assert run("render", "--model", models["rect"], "--layers", "c1", "--filters", "1,1,2",
               "--out", tmp_path / "a", *FAST) == 0
    err = capsys.readouterr().err
    assert "--filters names 1 more than once; each is rendered once" in err
    assert sorted(e["index"] for e in entries(tmp_path / "a")) == [1, 2]
    assert run("render", "--model", models["rect"], "--layers", "c1", "--sample", "9",
               "--out", tmp_path / "b", *FAST) == 0
    assert "--sample 9 is not below c1's 4 filters; rendering all of them" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "needle"), [
    (("--seed", "-1"), "--seed must be 0 or more"),
    (("--size", "100000"), "above the maximum side of 4096 px"),
    (("--size", "12x0"), "--size must be positive"),
    (("--config", "nowhere.toml"), "--config nowhere.toml: no such file"),
    (("--model", "missing.keras", "--shard", "3/2"), "--shard 3/2: need 1 <= i <= n"),  # before the model
])
def test_bad_values_are_one_line(cli, args, needle):
    code, _, err = cli("render", "--out", "out", *args)
    assert code == 2 and err.count("\n") == 1 and needle in err, err


def test_negative_seed_in_config(cli, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.filter-atlas]\nseed = -3\n")
    code, _, err = cli("render", "--out", "out")
    assert code == 2 and "--seed must be 0 or more, got -3" in err


def test_library_logs_only_with_verbose(models):
    def stderr(*extra: str) -> str:
        done = subprocess.run([sys.executable, "-m", "filter_atlas", "layers", "--model", str(models["rect"]),
                               *extra], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert stderr() == ""
    assert "oneDNN" in stderr("--verbose") or "cuda" in stderr("--verbose").lower()


def test_init_takes_a_model_file_to_a_browsable_site(models, tmp_path, capsys, monkeypatch):
    """``filter-atlas init DIR --model FILE``: the two files written, the filters rendered, the pages
    and a strict site built, with nothing of this repository; ``build`` in DIR then renders nothing;
    existing configuration is never overwritten."""
    folder = tmp_path / "my atlas"
    code = run("init", folder, "--model", models["gray"], "--layers", "first conv,sep", "--sample", "2",
               *FAST)
    out, err = capsys.readouterr()
    assert code == 0, err
    config = tomllib.loads((folder / "pyproject.toml").read_text())["tool"]["filter-atlas"]
    assert config == {"model": str(models["gray"]), "layers": ["first conv", "sep"], "sample": 2, "steps": 4,
                      "views": "channel", "out": "docs/atlas"}
    assert "rendered 4, skipped 0" in out and "filter-atlas serve" in out
    site = folder / "site"
    assert '"gray filter atlas"' in (folder / "mkdocs.yml").read_text()
    assert "<title>gray filter atlas" in (site / "index.html").read_text()
    manifest = json.loads((folder / "docs/atlas/manifest.json").read_text())
    shown = "".join(p.read_text() for p in (site / "blocks").glob("*.html"))
    for entry in manifest["filters"]:
        image = entry["views"]["channel"]["image"]
        assert (site / "atlas" / image).is_file() and f"atlas/{image}" in shown
    assert (site / "assets/filter-atlas.css").is_file() and (site / "search/search_index.json").is_file()
    # The natural evidence of every filter of every conv layer, each with its card on the site.
    [evidence] = (folder / "docs/atlas").glob("*/evidence.json")
    filters = sum(layer["filters"] for layer in json.loads(evidence.read_text())["layers"])
    assert filters > 4 and shown.count('<section class="fa-cell') == filters

    monkeypatch.chdir(folder)  # the user's next run, in their folder
    assert run("build", "--quiet") == 0
    out = capsys.readouterr().out
    assert "rendered 0, skipped 4" in out and "fresh, nothing to do" in out
    monkeypatch.chdir(tmp_path)
    before = {p: p.read_bytes() for p in (folder / "pyproject.toml", folder / "mkdocs.yml")}
    assert run("init", folder, "--model", models["rect"], "--no-build") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mkdocs.yml exists: not overwriting it" in err
    assert before == {p: p.read_bytes() for p in before}

    project = tmp_path / "project"  # a pyproject.toml of the user's own: the table is added to it
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    (project / "rect.keras").write_bytes(models["rect"].read_bytes())
    assert run("init", project, "--model", project / "rect.keras", "--size", "24x40", "--no-build") == 0
    data = tomllib.loads((project / "pyproject.toml").read_text())
    assert data["project"] == {"name": "mine"} and data["tool"]["filter-atlas"] == {
        "model": "rect.keras", "size": "24x40", "out": "docs/atlas"}
    (project / "mkdocs.yml").unlink()
    assert run("init", project, "--model", project / "rect.keras", "--no-build") == 2
    assert "already has [tool.filter-atlas]" in capsys.readouterr().err
    assert run("init", project / "pyproject.toml", "--no-build") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
