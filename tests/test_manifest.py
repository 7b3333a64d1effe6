"""The manifest: one typed record, one reader that names what is wrong, and one writer (the store)
that gives back the committed file byte for byte."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import msgspec
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


def test_schema_1_manifest_migrates_with_every_value_kept(tmp_path):
    """A copy of the committed manifest as schema 1 wrote it (before this package's schema 2):
    every entry's channel fields move into its channel view; each natural patch's file of its own
    becomes its photo's copy (schema 3); each neuron view loses its contrast radius and is made
    stale (schema 4); nothing else changes."""
    old = json.loads(gzip.decompress((REPO / "tests/data/manifest-v1.json.gz").read_bytes()))
    assert old["schema"] == 1
    (tmp_path / MANIFEST).write_text(json.dumps(old))
    manifest = read_manifest(tmp_path)
    assert manifest.schema == 4 and len(manifest.filters) == len(old["filters"])
    rows = sorted(old["filters"], key=lambda e: (e["model"], e["layer"], e["index"], e["recipe"]))
    for raw, entry in zip(rows, manifest.filters, strict=True):
        channel = {k: v for k, v in (raw.get("views") or {}).get("channel", {}).items() if v is not None}
        for name in ("image", "thumbnail", "activation", "start_activation", "steps", "size", "seconds",
                     "key", "sha256", "run"):
            assert getattr(entry, name) == raw[name] == channel.get(name, raw[name]), name
        assert (entry.natural_activation, entry.dead, entry.seed) == \
            (raw["natural_activation"], raw["dead"], raw["seed"])
        for view, record in (raw.get("views") or {}).items():
            written = json.loads(msgspec.json.encode(getattr(entry.views, view)))
            expected = {k: v for k, v in record.items() if v is not None}
            if view == "examples":  # ImageNet names: n01817953_African_grey.JPEG -> lower case + hash
                for side in ("top", "bottom"):
                    for patch in expected[side]:
                        del patch["image"]
                        stem = patch["source"].rsplit(".", 1)[0]
                        name = stem if stem == stem.lower() else \
                            f"{stem.lower()}-{hashlib.sha256(stem.encode()).hexdigest()[:8]}"
                        patch["copy"] = f"naturals/{record['set']}/{name}.webp"
            if view == "neuron":
                expected = {**{k: v for k, v in expected.items() if k != "radius90"}, "key": ""}
            assert written == expected, view
    assert json.loads(msgspec.json.encode(manifest.models)) == old["models"]
    Store(tmp_path).save()  # the next save writes schema 4, with the same values
    again = json.loads((tmp_path / MANIFEST).read_text())
    assert again["schema"] == 4 and "image" not in again["filters"][0]
    assert read_manifest(tmp_path) == manifest


def test_schema_3_neuron_views_lose_their_contrast_radius_and_render_again(tmp_path):
    """The committed manifest as schema 3 wrote it (a ``radius90``, no ``effective_radius``): every
    neuron view reads back without the radius and with an empty key, so the next render measures
    it again; every other view keeps its key and stays fresh."""
    data = json.loads(COMMITTED.read_text())
    neurons = 0
    for entry in data["filters"]:
        neuron = entry["views"].get("neuron")
        if neuron:
            neuron["radius90"] = 59.0
            del neuron["effective_radius"]
            neurons += 1
    data["schema"] = 3
    shutil.copytree(COMMITTED.parent, tmp_path, dirs_exist_ok=True)
    (tmp_path / MANIFEST).write_text(json.dumps(data))
    store = Store(tmp_path)
    assert neurons == 78
    for raw, entry in zip(data["filters"], store.filters, strict=True):
        identity = (entry.model, entry.layer, entry.index, entry.recipe)
        for view, record in raw["views"].items():
            fresh = store.view_fresh(identity, view, record["key"])
            assert fresh == (view != "neuron"), (identity, view)
        if entry.views.neuron:
            assert entry.views.neuron.key == "" and entry.views.neuron.effective_radius is None
            assert entry.views.neuron.crop == tuple(raw["views"]["neuron"]["crop"])


def test_manifest_of_schema_1_with_a_nan_reads_as_a_failed_filter(atlas):
    text = (atlas / MANIFEST).read_text()
    data = json.loads(text)
    data["schema"] = 1
    entry = data["filters"][0]
    entry.update({k: v for k, v in entry.pop("views")["channel"].items()})
    entry["activation"] = float("nan")
    (atlas / MANIFEST).write_text(json.dumps(data))  # json writes a bare NaN, as schema 1 did
    assert "NaN" in (atlas / MANIFEST).read_text()
    first = read_manifest(atlas).filters[0]
    assert first.failed and first.activation is None
    Store(atlas).save()
    json.loads((atlas / MANIFEST).read_text(), parse_constant=pytest.fail)  # standard JSON again


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
    (delete("filters", 0, "views", "channel", "run"),
     "missing required field `run` - at `$.filters[0].views.channel`"),
    (delete("runs"), "missing required field `runs`"),
    (set_in("filters", 1, "colour", value="red"), "unknown field `colour` - at `$.filters[1]`"),
    (set_in("filters", 1, "views", "sketch", value={}), "unknown field `sketch` - at `$.filters[1].views`"),
    (set_in("extra", value=1), "unknown field `extra`"),
    (set_in("filters", 0, "index", value="3"), "Expected `int`, got `str` - at `$.filters[0].index`"),
    (set_in("filters", 0, "index", value=3.0), "Expected `int`, got `float` - at `$.filters[0].index`"),
    (set_in("filters", 0, "dead", value=0), "Expected `bool`, got `int` - at `$.filters[0].dead`"),
    (set_in("filters", 0, "views", "channel", "steps", value=True),
     "Expected `int`, got `bool` - at `$.filters[0].views.channel.steps`"),
    (set_in("filters", 0, "views", "channel", "activation", value="9"),
     "Expected `float | null`, got `str` - at `$.filters[0].views.channel.activation`"),
    (set_in("filters", 0, "views", "channel", "key", value=None),
     "Expected `str`, got `null` - at `$.filters[0].views.channel.key`"),
    (set_in("filters", value={}), "Expected `array`, got `object` - at `$.filters`"),
    (set_in("filters", 0, value=[]), "Expected `object`, got `array` - at `$.filters[0]`"),
    (set_in("models", "vgg16", "layers", 0, "filters", value="64"),
     "Expected `int`, got `str` - at `$.models[...].layers[0].filters`"),
    (set_in("runs", "run0", "versions", "keras", value=3),
     "Expected `str`, got `int` - at `$.runs[...].versions"),
    (set_in("shard", value={"index": 1, "count": 2}), "missing required field `plan` - at `$.shard`"),
    (set_in("schema", value=5), "has an unknown schema (5, expected 4 or older)"),
    (delete("schema"), "has an unknown schema (None, expected 4 or older)"),
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
    (b"[1, 2]", "has an unknown schema (None"),
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
    rewrite(atlas, set_in("filters", 0, "views", "channel", "activation", value=12))  # JSON has no float type
    rewrite(atlas, delete("models"))  # manifests before models were recorded
    manifest = read_manifest(atlas)
    assert manifest.filters[0].activation == 12 and manifest.models == {}
    store = Store(tmp_path / "copy")
    store.adopt(manifest)
    store.save()
    assert read_manifest(tmp_path / "copy") == manifest
    written = json.loads((tmp_path / "copy" / MANIFEST).read_text())
    assert written["filters"][0]["views"]["channel"]["activation"] == 12  # written as the float 12.0


def test_failed_rename_of_the_manifest_keeps_the_old_one_whole(atlas, monkeypatch):
    before = (atlas / MANIFEST).read_bytes()
    store = Store(atlas)
    store.set_natural_activation(store.filters[0].identity, 99.0)  # a change to save
    real = os.replace

    def refuse(src, dst):
        if Path(dst).name == MANIFEST:
            raise OSError(errno.EIO, "input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(AtlasError, match=f"cannot write {re.escape(str(atlas / MANIFEST))}"):
        store.save()
    assert (atlas / MANIFEST).read_bytes() == before
    assert read_manifest(atlas).filters[0].natural_activation != 99.0
    assert not [p for p in atlas.iterdir() if p.name.endswith(".tmp")]


def test_merge_names_the_shard_manifest_that_is_wrong(atlas, tmp_path):
    rewrite(atlas, set_in("shard", value={"index": 1, "count": 1, "plan": "p", "when": "now"}))
    with pytest.raises(AtlasError, match=r"shard manifest: .*unknown field `when` - at `\$\.shard"):
        merge([atlas], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
