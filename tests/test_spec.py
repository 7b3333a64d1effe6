"""The atlas spec: filter selection, config reading and precedence (no Keras needed)."""

from pathlib import Path

import pytest
from filter_atlas.errors import AtlasError
from filter_atlas.spec import Selection, build_spec, read_config


def test_sample_is_seeded_without_replacement_and_per_layer():
    pick = Selection(sample=6).pick
    a = pick("block3_conv2", 256, seed=0)
    assert a == pick("block3_conv2", 256, seed=0)
    assert len(set(a)) == 6 and all(0 <= i < 256 for i in a) and a == sorted(a)
    assert a != pick("block3_conv2", 256, seed=1)
    assert a != pick("block3_conv1", 256, seed=0)


def test_sample_larger_than_layer_takes_all():
    assert Selection(sample=10).pick("conv", 4, seed=0) == [0, 1, 2, 3]


def test_explicit_and_all_filters():
    assert Selection.parse("17,3,3").pick("c", 64, 0) == [3, 17]
    assert Selection.parse("all").pick("c", 5, 0) == [0, 1, 2, 3, 4]
    with pytest.raises(AtlasError, match="out of range for c"):
        Selection.parse("64").pick("c", 64, 0)
    with pytest.raises(AtlasError, match="'all' or integers"):
        Selection.parse("a,b")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return path


def test_config_then_flags_override(tmp_path, monkeypatch):
    monkeypatch.delenv("FILTER_ATLAS_WEIGHTS", raising=False)
    config = read_config(write(tmp_path, """
[tool.filter-atlas]
layers = ["block1_conv1"]
sample = 3
size = 64
recipe = "keras-vis"
"""))
    spec = build_spec(config, {"size": 32, "filters": None})
    assert spec.layers == ("block1_conv1",) and spec.size == (32, 32) and spec.recipe == "keras-vis"
    assert spec.selection == Selection(sample=3)
    assert build_spec(config, {"filters": "1,2"}).selection.indices == (1, 2)
    assert build_spec(config, {"layers": "a,b"}).layers == ("a", "b")


def test_weights_precedence_flag_env_config(monkeypatch):
    config = {"weights": "imagenet"}
    monkeypatch.setenv("FILTER_ATLAS_WEIGHTS", "/env.h5")
    assert build_spec(config, {}).weights == "/env.h5"
    assert build_spec(config, {"weights": "/flag.h5"}).weights == "/flag.h5"
    monkeypatch.delenv("FILTER_ATLAS_WEIGHTS")
    assert build_spec(config, {}).weights == "imagenet"


def test_repository_config_is_the_classic_atlas():
    config = read_config(Path(__file__).resolve().parents[1] / "pyproject.toml")
    spec = build_spec(config, {})
    assert spec.layers == ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1",
                           "block3_conv2", "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3",
                           "block5_conv1", "block5_conv2", "block5_conv3")
    assert spec.selection == Selection(sample=6) and spec.size == (224, 224) and spec.model == "vgg16"


@pytest.mark.parametrize(("text", "message"), [
    ("[tool.filter-atlas\nsize = 3", "not valid TOML"),
    ("[tool.filter-atlas]\nsizes = 3", "unknown key 'sizes'"),
    ("[tool.filter-atlas]\nsize = 'big'", "size must be a side such as 224"),
    ("[tool.filter-atlas]\nlayers = [1, 2]", "layers must be a list of names"),
    ("[tool.filter-atlas]\nlayers = []", "layers names no layer"),
    ("[tool]\nfilter-atlas = 3", "must be a table"),
])
def test_malformed_config(tmp_path, text, message):
    with pytest.raises(AtlasError, match=message):
        read_config(write(tmp_path, text))


@pytest.mark.parametrize(("override", "message"), [
    ({"steps": 0}, "--steps must be positive"),
    ({"steps": -3}, "--steps must be positive"),
    ({"sample": 0}, "--sample must be positive"),
    ({"batch": 0}, "--batch must be positive"),
])
def test_bad_numbers(override, message):
    with pytest.raises(AtlasError, match=message):
        build_spec({}, override)


@pytest.mark.parametrize("layers", ["", " , "])
def test_layers_that_name_no_layer_are_refused(layers):
    with pytest.raises(AtlasError, match="--layers names no layer"):
        build_spec({"layers": ["block1_conv1"]}, {"layers": layers})
