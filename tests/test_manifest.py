"""The manifest: one typed record, one reader that names what is wrong, and one writer (the store)
that gives back the committed file byte for byte."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from filter_atlas.errors import AtlasError
from filter_atlas.shards import merge
from filter_atlas.store import MANIFEST, FilterEntry, ModelRecord, Store, read_manifest

from .conftest import REPO, write_atlas

COMMITTED = REPO / "docs/atlas" / MANIFEST


@pytest.fixture
def atlas(tmp_path) -> Path:
    """A small valid atlas: one trained and one untrained model, one dead filter."""
    out = tmp_path / "atlas"
    write_atlas(out, {"block1_conv1": [0, 2], "block2_conv1": [5]},
                variants=(("vgg16", "lucid"), ("vgg16-untrained", "lucid")),
                dead=frozenset({("vgg16", "block2_conv1", 5)}))
    return out


def rewrite(atlas: Path, change: Callable[[dict], object]) -> Path:
    """Apply ``change`` to the manifest's JSON in place; returns the manifest's path."""
    path = atlas / MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_committed_manifest_round_trips_byte_for_byte(tmp_path):
    if not COMMITTED.is_file():
        pytest.skip("no committed atlas")
    manifest = read_manifest(COMMITTED.parent)
    assert manifest.filters and all(isinstance(e, FilterEntry) for e in manifest.filters)
    assert all(isinstance(m, ModelRecord) for m in manifest.models.values())
    store = Store(tmp_path / "copy")
    store.adopt(manifest)
    store.save()
    assert (tmp_path / "copy" / MANIFEST).read_bytes() == COMMITTED.read_bytes()

    shutil.copy(COMMITTED, tmp_path / MANIFEST)  # loaded by the store itself, then saved again
    store = Store(tmp_path)
    (tmp_path / MANIFEST).unlink()
    store.save()
    assert (tmp_path / MANIFEST).read_bytes() == COMMITTED.read_bytes()


def test_reader_gives_typed_records(atlas):
    manifest = read_manifest(atlas)
    assert manifest == read_manifest(atlas / MANIFEST)
    assert [e.identity for e in manifest.filters] == sorted(e.identity for e in manifest.filters)
    dead = next(e for e in manifest.filters if e.dead)
    assert (dead.layer, dead.index) == ("block2_conv1", 5)
    assert dead.image is dead.thumbnail is dead.sha256 is None
    assert manifest.models["vgg16"].layers[0].output_shape == (32, 32, 64)
    assert manifest.runs["run0"].versions == {"filter-atlas": "0.1.0", "keras": "3"}
    assert manifest.shard is None


def set_in(*keys: str | int, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value
    return change


def delete(*keys: str | int) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for key in keys[:-1]:
            data = data[key]
        del data[keys[-1]]
    return change


@pytest.mark.parametrize(("change", "message"), [
    (delete("filters", 0, "run"), "malformed manifest: filters[0] lacks key(s) 'run'"),
    (delete("runs"), "malformed manifest: the top level lacks key(s) 'runs'"),
    (set_in("filters", 1, "colour", value="red"), "filters[1] has unknown key(s) 'colour'"),
    (set_in("extra", value=1), "malformed manifest: the top level has unknown key(s) 'extra'"),
    (set_in("filters", 0, "index", value="3"), "filters[0].index must be an integer, not a string"),
    (set_in("filters", 0, "index", value=3.0), "filters[0].index must be an integer, not a number"),
    (set_in("filters", 0, "dead", value=0), "filters[0].dead must be true or false, not an integer"),
    (set_in("filters", 0, "steps", value=True), "filters[0].steps must be an integer, not true or false"),
    (set_in("filters", 0, "activation", value="9"), "filters[0].activation must be a number, not a string"),
    (set_in("filters", 0, "key", value=None), "filters[0].key must be a string, not null"),
    (set_in("filters", 0, "image", value=7), "filters[0].image must be a string, not an integer"),
    (set_in("filters", value={}), "filters must be a list, not an object"),
    (set_in("filters", 0, value=[]), "filters[0] must be an object, not a list"),
    (set_in("models", "vgg16", "layers", 0, "filters", value="64"),
     "models.vgg16.layers[0].filters must be an integer, not a string"),
    (set_in("runs", "run0", "versions", "keras", value=3), "runs.run0.versions.keras must be a string"),
    (set_in("shard", value={"index": 1, "count": 2}), "shard lacks key(s) 'plan'"),
    (set_in("schema", value=2), "has an unknown schema (2, expected 1)"),
    (delete("schema"), "has an unknown schema (None, expected 1)"),
])
def test_reader_names_what_is_wrong(atlas, change, message):
    path = rewrite(atlas, change)
    with pytest.raises(AtlasError) as caught:
        read_manifest(atlas)
    text = str(caught.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text, text


@pytest.mark.parametrize(("content", "message"), [
    (b'{"schema": 1, "filters": [', "is not a readable manifest"),
    (b"\xff\xfe not utf-8", "is not a readable manifest"),
    (b"[1, 2]", "malformed manifest: the top level must be an object, not a list"),
])
def test_reader_refuses_what_is_not_a_manifest(tmp_path, content, message):
    (tmp_path / MANIFEST).write_bytes(content)
    with pytest.raises(AtlasError, match="^" + re.escape(str(tmp_path / MANIFEST))) as caught:
        read_manifest(tmp_path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(AtlasError, match="move it away"):  # the store will not overwrite it
        Store(tmp_path)
    with pytest.raises(AtlasError, match="no manifest at"):
        read_manifest(tmp_path / "absent")


def test_numbers_and_the_earliest_manifests_are_read_as_written(atlas, tmp_path):
    rewrite(atlas, set_in("filters", 0, "activation", value=12))  # JSON has no float type of its own
    rewrite(atlas, delete("models"))  # manifests before models were recorded
    manifest = read_manifest(atlas)
    assert manifest.filters[0].activation == 12 and manifest.models == {}
    store = Store(tmp_path / "copy")
    store.adopt(manifest)
    store.save()
    assert read_manifest(tmp_path / "copy") == manifest
    assert '"activation": 12,' in (tmp_path / "copy" / MANIFEST).read_text()


def test_store_types_what_the_renderer_hands_it(tmp_path):
    store = Store(tmp_path)
    image, thumb = store.paths("m", "conv", 3, "lucid")
    entry = {"model": "m", "layer": "conv", "index": 3, "image": image, "thumbnail": thumb,
             "recipe": "lucid", "steps": 2, "size": 8, "seed": 0, "start_activation": 0.1,
             "activation": 1.5, "natural_activation": 2.0, "dead": False, "trained": True,
             "seconds": 0.01, "key": "k"}
    store.describe_model("m", {"name": "m", "weights": "random", "weights_sha256": "0", "trained": True,
                               "preprocess": "raw", "input_size": 8,
                               "layers": [{"name": "conv", "filters": 4, "output_shape": [8, 8, 4],
                                           "receptive_field": 3}]})
    store.put({"backend": "tensorflow", "device": "cpu", "versions": {"keras": "3"}},
              [(entry, np.zeros((8, 8, 3), "uint8")), (dict(entry, index=1, dead=True), None)])
    dead, live = read_manifest(tmp_path).filters
    assert (dead.index, dead.image, dead.sha256) == (1, None, None)
    assert (tmp_path / live.image).is_file() and live.sha256 and live.run in read_manifest(tmp_path).runs
    with pytest.raises(ValueError, match="unknown key"):
        store.put({"backend": "b", "device": "d", "versions": {}}, [(dict(entry, dead=True, colour=1), None)])


def test_merge_names_the_shard_manifest_that_is_wrong(atlas, tmp_path):
    rewrite(atlas, set_in("shard", value={"index": 1, "count": 1, "plan": "p", "when": "now"}))
    with pytest.raises(AtlasError, match=r"cannot read shard manifest: .*shard has unknown key\(s\) 'when'"):
        merge([atlas], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
