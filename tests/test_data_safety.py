"""Nothing is ever lost: concurrent renders, names that clean to one path, two models of one name,
damaged thumbnails, half-done merges, write failures and malformed manifests all end in the
right result or in one line on stderr and exit code 2, never a traceback or a half-written atlas."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock, Timeout
from filter_atlas import shards
from filter_atlas.errors import AtlasError
from filter_atlas.imaging import THUMB_SIDE, png_bytes, webp_bytes
from filter_atlas.naming import entry_paths, view_paths
from filter_atlas.store import (
    LOCK,
    MANIFEST,
    ConvLayerRecord,
    FilterEntry,
    ModelRecord,
    RunRecord,
    Store,
    Views,
    atlas_lock,
    atomic_write,
    read_manifest,
    slug,
)
from filter_atlas.views import ImageRecord
from filter_atlas.views.base import shown
from PIL import Image

from .conftest import write_atlas

RUN = RunRecord("tensorflow", "cpu", {})
TINY = ("--size", "32", "--steps", "4", "--views", "channel", "--quiet")


def render(cli, model: Path, out: Path, *args: str) -> tuple[int, str, str]:
    """``filter-atlas render`` of a small model file, channel view only, at 32 px and 4 steps."""
    return cli("render", "--model", model, "--out", out, *TINY, *args)


def one_line_error(result: tuple[int, str, str], needle: str) -> str:
    """Check the CLI failed with exit code 2 and one line naming ``needle``; returns the line."""
    code, _, err = result
    assert code == 2, err
    assert err.startswith("filter-atlas: error: ") and err.count("\n") == 1, err
    assert needle in err, err
    return err


def listed_files(out: Path) -> list[str]:
    """Every image and thumbnail the manifest in ``out`` lists."""
    return [rel for e in read_manifest(out).filters for rel in (e.image, e.thumbnail) if rel]


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file under ``out``, by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def model_record(source: str | None = None) -> ModelRecord:
    return ModelRecord(name="m", weights="random", weights_sha256="0", trained=True, preprocess="raw",
                       input_size=8, layers=(ConvLayerRecord("conv", 4, (8, 8, 4), 3),), source=source)


def put(store: Store, index: int, key: str = "k") -> tuple[str, str, int, str]:
    """Store filter ``index`` of model m's layer conv, an 8 px grey image; returns its identity."""
    identity = ("m", "conv", index, "lucid")
    image, thumb = entry_paths(identity)
    pixels = np.full((8, 8, 3), 40 * index, "uint8")
    hashes = store.write({image: png_bytes(pixels), thumb: png_bytes(pixels)})
    channel = ImageRecord(image=image, thumbnail=thumb, activation=1.5, start_activation=0.1, size=8, steps=2,
                          seconds=0.01, key=key, sha256=hashes[image], run=store.add_run(RUN))
    store.put_entry(FilterEntry(model="m", layer="conv", index=index, recipe="lucid", seed=0, trained=True,
                                natural_activation=2.0, dead=False, views=Views(channel=channel)))
    store.save()
    return identity


def lock_is_free(root: Path) -> bool:
    """Whether no process holds the atlas's lock now."""
    try:
        with FileLock(root / LOCK, timeout=0):
            return True
    except Timeout:
        return False


# --- 1. Two processes, one --out ------------------------------------------------------------------

# Runs the real command line after making it wait, once its store has read the manifest, until the
# other process has read it too: both then hold the same stale manifest when they save.
TOGETHER = """
import sys, time
from pathlib import Path
from filter_atlas import cli, store

opened = store.Store.__init__

def wait_for_the_other(self, root):
    opened(self, root)
    Path(sys.argv[1]).touch()
    deadline = time.monotonic() + 300
    while not Path(sys.argv[2]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)

store.Store.__init__ = wait_for_the_other
sys.exit(cli.main(sys.argv[3:]))
"""


def test_two_renders_into_one_out_keep_both(tiny_model_path, tmp_path):
    out = tmp_path / "atlas"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("FILTER_ATLAS_WEIGHTS", None)
    procs = [subprocess.Popen(
        [sys.executable, "-c", TOGETHER, str(tmp_path / mine), str(tmp_path / other), "render",
         "--model", str(tiny_model_path), "--layers", layer, "--filters", "all", "--out", str(out), *TINY],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for mine, other, layer in (("a", "b", "conv_a"), ("b", "a", "conv_b"))]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    manifest = read_manifest(out)
    assert sorted((e.layer, e.index) for e in manifest.filters) == \
        [("conv_a", i) for i in range(4)] + [("conv_b", i) for i in range(6)]
    assert all((out / rel).is_file() for rel in listed_files(out))
    assert {e.run for e in manifest.filters} <= set(manifest.runs)
    assert lock_is_free(out)


def test_saves_of_two_stores_merge(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)  # both read the same (absent) manifest
    first.describe_model("m", model_record())
    one, two = put(first, 1), put(second, 2)
    identities = {e.identity for e in read_manifest(tmp_path).filters}
    assert identities == {one, two}
    put(first, 2, key="newer")  # this store's own change wins over what it read from disk
    assert {e.index: e.key for e in read_manifest(tmp_path).filters} == {1: "k", 2: "newer"}
    assert read_manifest(tmp_path).models.keys() == {"m"}


def test_a_view_saved_by_another_store_is_kept(tmp_path):
    identity = put(Store(tmp_path), 1)
    first, second = Store(tmp_path), Store(tmp_path)
    path = "m/conv/0001-lucid-negative.webp"
    hashes = first.write({path: webp_bytes(np.zeros((8, 8, 3), "uint8"))})
    first.put_view(identity, "negative", ImageRecord(
        image=path, thumbnail=path, activation=-1.0, start_activation=0.0, size=8, steps=2, seconds=0.1,
        key="v", sha256=hashes[path], run=first.add_run(RUN)))
    first.save()
    put(second, 1, key="again")  # the channel again, in a store that never saw the negative view
    (entry,) = read_manifest(tmp_path).filters
    assert entry.key == "again" and entry.views.negative is not None and entry.views.negative.key == "v"


def test_save_waits_for_the_lock(tmp_path):
    store = Store(tmp_path)
    held, events = threading.Event(), []

    def hold() -> None:
        with atlas_lock(tmp_path):
            held.set()
            time.sleep(0.3)
            events.append("released")

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    store.save()
    events.append("saved")
    thread.join()
    assert events == ["released", "saved"]
    assert lock_is_free(tmp_path)


# --- 2. Names that clean to the same path ---------------------------------------------------------

ODD_LAYERS = ("a.b.c", "a_b_c", "Conv_A", "conv_a")  # TensorFlow takes no spaces nor accents


@pytest.fixture(scope="module")
def odd_model_path(tmp_path_factory) -> Path:
    """A conv net whose layer names clean to the same path component in pairs."""
    import keras

    keras.utils.set_random_seed(2)
    x = inputs = keras.Input((None, None, 3))
    for name in ODD_LAYERS:
        x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name=name)(x)
    path = tmp_path_factory.mktemp("models") / "odd.keras"
    keras.Model(inputs, x, name="odd").save(path)
    return path


def test_slug_keeps_safe_names_and_tells_others_apart():
    for safe in ("vgg16", "vgg16-untrained", "block1_conv1", "keras-vis", "conv2d_1"):
        assert slug(safe) == safe
    odd = (*ODD_LAYERS, "a b c", "conv_ä", "conv_ö", "conv ", "", "x" * 65, "../up", "ä")
    cleaned = [slug(name) for name in odd]
    assert len(set(cleaned)) == len(cleaned) and {"a_b_c", "conv_a"} <= set(cleaned)
    assert cleaned[0].startswith("a_b_c-") and len(cleaned[0]) == len("a_b_c-") + 8
    assert all(len(s) <= 64 and "." not in s and "/" not in s for s in cleaned)


def test_layers_whose_names_clean_alike_keep_their_own_images(cli, odd_model_path, tmp_path):
    out = tmp_path / "atlas"
    code, _, err = render(cli, odd_model_path, out, "--layers", ",".join(ODD_LAYERS), "--filters", "0")
    assert code == 0, err
    entries = {e.layer: e for e in read_manifest(out).filters}
    assert entries.keys() == set(ODD_LAYERS)
    images = {name: (out / e.image).read_bytes() for name, e in entries.items()}
    assert len({e.image for e in entries.values()}) == len({e.thumbnail for e in entries.values()}) == 4
    assert len(set(images.values())) == 4  # four layers, four different images, none overwritten
    assert all(images[n] and entries[n].sha256 for n in ODD_LAYERS)
    assert entries["a_b_c"].image.split("/")[1] == "a_b_c"


# --- 3. Two models of one name --------------------------------------------------------------------

def test_a_model_from_another_source_is_refused(tmp_path):
    store = Store(tmp_path)
    store.describe_model("m", model_record("/data/one/m.keras"))
    store.describe_model("m", model_record("/data/one/m.keras"))  # the same file again: fine
    store.save()
    refused = re.escape("already holds model 'm' from /data/one/m.keras; use another --out")
    with pytest.raises(AtlasError, match=refused):
        Store(tmp_path).describe_model("m", model_record("/data/two/m.keras"))
    Store(tmp_path).describe_model("m", model_record())  # no source known: nothing to compare


def test_a_model_from_another_source_saved_meanwhile_is_refused(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    first.describe_model("m", model_record("/data/one/m.keras"))
    first.save()
    second.describe_model("m", model_record("/data/two/m.keras"))
    with pytest.raises(AtlasError, match=re.escape("already holds model 'm' from /data/one/m.keras")):
        second.save()
    assert read_manifest(tmp_path).models["m"].source == "/data/one/m.keras"


def test_a_model_record_without_source_reads_and_writes_as_before(tmp_path):
    store = Store(tmp_path)
    store.describe_model("m", model_record())
    store.save()
    assert "source" not in json.loads((tmp_path / MANIFEST).read_text())["models"]["m"]
    assert read_manifest(tmp_path).models["m"].source is None


# --- 4. Damaged thumbnails ------------------------------------------------------------------------

def test_render_rebuilds_damaged_thumbnails(cli, tiny_model_path, tmp_path):
    out = tmp_path / "atlas"
    assert render(cli, tiny_model_path, out, "--layers", "conv_a", "--filters", "all")[0] == 0
    thumbs = [out / e.thumbnail for e in read_manifest(out).filters]
    before = {t: t.read_bytes() for t in thumbs}
    thumbs[0].write_bytes(b"")
    thumbs[1].unlink()
    thumbs[2].write_bytes(before[thumbs[2]][:40])
    code, stdout, _ = render(cli, tiny_model_path, out, "--layers", "conv_a", "--filters", "all")
    assert code == 0 and "rendered 0, skipped 4" in stdout
    assert thumbs[3].read_bytes() == before[thumbs[3]]  # an intact one is left alone
    for t in thumbs[:3]:  # rebuilt from the lossy WebP image, not the rendered pixels: close, not equal
        with Image.open(t) as rebuilt, Image.open(io.BytesIO(before[t])) as first:
            assert rebuilt.format == "WEBP" and rebuilt.size == first.size
            assert np.abs(np.asarray(rebuilt, dtype=int) - np.asarray(first, dtype=int)).mean() < 4


def test_view_thumbnails_are_rebuilt_from_their_webp(tmp_path):
    store = Store(tmp_path)
    identity = put(store, 1)
    pixels = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype="uint8")
    (image, thumb), = view_paths(identity, "negative")
    shown_thumb, files = shown(image, thumb, pixels)
    assert shown_thumb == thumb
    hashes = store.write({rel: webp_bytes(p) for rel, p in files.items()})
    store.put_view(identity, "negative", ImageRecord(
        image=image, thumbnail=thumb, activation=-1.0, start_activation=0.0, size=200, steps=2, seconds=0.1,
        key="v", sha256=hashes[image], run=store.add_run(RUN)))
    store.save()
    (tmp_path / thumb).write_bytes(b"")
    (tmp_path / store.entry(identity).thumbnail).write_bytes(b"not a png")
    assert Store(tmp_path).repair_thumbnails() == 2
    with Image.open(tmp_path / thumb) as rebuilt:
        assert rebuilt.format == "WEBP" and rebuilt.size == (THUMB_SIDE, THUMB_SIDE)
    assert Store(tmp_path).repair_thumbnails() == 0


# --- 5. Merge: all or nothing ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_shards(tiny_model_path, tmp_path_factory) -> Path:
    """The tiny model's conv_a and conv_b (10 filters, 5 batches) rendered as two shards."""
    from filter_atlas.cli import main

    root = tmp_path_factory.mktemp("tiny-shards")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FILTER_ATLAS_WEIGHTS", raising=False)
        patch.chdir(root)  # no [tool.filter-atlas] here: the flags alone
        for i in (1, 2):
            assert main(["render", "--model", str(tiny_model_path), "--layers", "conv_a,conv_b",
                         "--filters", "all", "--batch", "2", "--out", str(root / f"s{i}"),
                         "--shard", f"{i}/2", *TINY]) == 0
    return root


@pytest.fixture
def existing(tmp_path) -> Path:
    """An atlas already in place where the shards are merged."""
    out = tmp_path / "atlas"
    write_atlas(out, {"block1_conv1": [0, 2]})
    return out


def test_merge_into_an_existing_atlas_keeps_it(tiny_shards, existing):
    kept = {e.identity for e in read_manifest(existing).filters}
    assert shards.merge([tiny_shards / "s1", tiny_shards / "s2"], existing) == (10, 0)
    manifest = read_manifest(existing)
    assert kept < {e.identity for e in manifest.filters} and len(manifest.filters) == len(kept) + 10
    assert all((existing / rel).is_file() for rel in listed_files(existing))
    assert sorted(p.name for p in existing.parent.iterdir()) == ["atlas"]  # no stage left beside it
    assert lock_is_free(existing) and manifest.shard is None


def test_merge_that_fails_midway_leaves_out_as_it_was(tiny_shards, existing, monkeypatch):
    before = snapshot(existing)
    writes = []

    def full_disk(path: Path, data: bytes) -> None:
        if len(writes) == 5:
            raise AtlasError(f"cannot write {path}: No space left on device")
        writes.append(path)
        atomic_write(path, data)

    monkeypatch.setattr(shards, "atomic_write", full_disk)
    with pytest.raises(AtlasError, match="No space left"):
        shards.merge([tiny_shards / "s1", tiny_shards / "s2"], existing)
    assert snapshot(existing) == before
    assert sorted(p.name for p in existing.parent.iterdir()) == ["atlas"]


@pytest.mark.parametrize("damage", ["unlink", "empty"])
def test_merge_refuses_a_shard_missing_a_file(tiny_shards, tmp_path, damage):
    broken = tmp_path / "s2"
    shutil.copytree(tiny_shards / "s2", broken)
    victim = broken / read_manifest(broken).filters[-1].thumbnail
    victim.unlink() if damage == "unlink" else victim.write_bytes(b"")
    with pytest.raises(AtlasError, match=re.escape(f"{victim} is missing or empty")) as caught:
        shards.merge([tiny_shards / "s1", broken], tmp_path / "merged")
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2"]


def test_merge_refuses_a_shard_with_a_truncated_thumbnail(tiny_shards, tmp_path):
    broken = tmp_path / "s2"
    shutil.copytree(tiny_shards / "s2", broken)
    victim = broken / read_manifest(broken).filters[-1].thumbnail
    victim.write_bytes(victim.read_bytes()[:40])  # a thumbnail has no sha256 in the manifest
    with pytest.raises(AtlasError, match=re.escape(f"{victim} is damaged")):
        shards.merge([tiny_shards / "s1", broken], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_to_replace_filters_rendered_with_other_settings(cli, tiny_model_path, tiny_shards,
                                                                       tmp_path):
    out = tmp_path / "atlas"
    code, _, err = render(cli, tiny_model_path, out, "--layers", "conv_a", "--filters", "all", "--size", "48")
    assert code == 0, err
    before = snapshot(out)
    err = one_line_error(cli("merge", tiny_shards / "s1", tiny_shards / "s2", "--out", out),
                         "holds 4 of these filters rendered with other settings")
    assert "48 px" in err and "--replace" in err
    assert snapshot(out) == before
    code, stdout, err = cli("merge", tiny_shards / "s1", tiny_shards / "s2", "--out", out, "--replace")
    assert code == 0, err
    assert "merged 10 filters" in stdout and "replaced 4" in stdout
    assert {e.size for e in read_manifest(out).filters} == {32}


def test_a_shard_folder_of_another_sharding_is_refused(cli, tiny_model_path, tiny_shards, tmp_path):
    old = tmp_path / "s1"
    shutil.copytree(tiny_shards / "s1", old)  # shard 1 of 2, rendered earlier
    before = snapshot(old)
    one_line_error(cli("render", "--model", tiny_model_path, "--layers", "conv_a,conv_b", "--filters", "all",
                       "--batch", "2", "--out", old, "--shard", "1/3", *TINY),
                   "holds another render's filters")
    assert snapshot(old) == before


@pytest.mark.parametrize("where", [".", "inside"])
def test_merge_refuses_an_out_in_a_shard(tiny_shards, where):
    before = snapshot(tiny_shards / "s1")
    with pytest.raises(AtlasError, match="is inside shard"):
        shards.merge([tiny_shards / "s1", tiny_shards / "s2"], tiny_shards / "s1" / where)
    assert snapshot(tiny_shards / "s1") == before


def test_merge_command_refuses_an_out_that_is_a_file(cli, tiny_shards, tmp_path):
    (tmp_path / "afile").write_text("mine")
    one_line_error(cli("merge", tiny_shards / "s1", tiny_shards / "s2", "--out", tmp_path / "afile"),
                   f"--out {tmp_path / 'afile'} is a file, not a directory")
    assert (tmp_path / "afile").read_text() == "mine"


# --- 6. Write failures ----------------------------------------------------------------------------

def test_a_file_where_a_folder_should_be(cli, tiny_model_path, tmp_path):
    out = tmp_path / "atlas"
    out.mkdir()
    (out / slug(tiny_model_path.stem)).write_text("in the way")
    err = one_line_error(render(cli, tiny_model_path, out, "--layers", "conv_a", "--filters", "0"),
                         "Not a directory")
    assert f"cannot write {out}" in err and not list(out.rglob("*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions are not enforced for root")
def test_a_read_only_folder(cli, tiny_model_path, tmp_path):
    out = tmp_path / "atlas"
    (out / slug(tiny_model_path.stem)).mkdir(parents=True)
    (out / slug(tiny_model_path.stem)).chmod(0o555)
    one_line_error(render(cli, tiny_model_path, out, "--layers", "conv_a", "--filters", "0"),
                   "Permission denied")


def test_a_full_disk(cli, tiny_model_path, tmp_path, monkeypatch):
    out = tmp_path / "atlas"
    assert render(cli, tiny_model_path, out, "--layers", "conv_a", "--filters", "0,1")[0] == 0
    before = snapshot(out)

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    one_line_error(render(cli, tiny_model_path, out, "--layers", "conv_a", "--filters", "0,1", "--force"),
                   "No space left on device")
    assert snapshot(out) == before  # no temporary file left, nothing half-written


def test_atomic_write_failure_removes_the_temporary_file(tmp_path, monkeypatch):
    (tmp_path / "f").write_bytes(b"old")

    class FullDisk(io.FileIO):
        def write(self, _data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(fd, mode))
    refused = re.escape(f"cannot write {tmp_path / 'f'}: No space left on device")
    with pytest.raises(AtlasError, match=refused):
        atomic_write(tmp_path / "f", b"new")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"] and (tmp_path / "f").read_bytes() == b"old"


def test_out_that_is_a_file(cli, tiny_model_path, tmp_path):
    (tmp_path / "afile").write_text("mine")
    one_line_error(render(cli, tiny_model_path, tmp_path / "afile", "--layers", "conv_a", "--filters", "0"),
                   f"--out {tmp_path / 'afile'} is a file, not a directory")
    assert (tmp_path / "afile").read_text() == "mine"


# --- 7. Malformed manifests -----------------------------------------------------------------------

def _without_filters(data: dict) -> None:
    del data["filters"]


def _entry_without_key(data: dict) -> None:
    del data["filters"][0]["views"]["channel"]["key"]


@pytest.mark.parametrize(("change", "message"), [
    (_without_filters, "Object missing required field `filters`"),
    (_entry_without_key, "Object missing required field `key` - at `$.filters[0].views.channel`"),
])
@pytest.mark.parametrize("command", ["render", "pages"])
def test_a_malformed_manifest_is_one_line(cli, tiny_model_path, tmp_path, change, message, command):
    docs = tmp_path / "docs"
    out = docs / "atlas"
    write_atlas(out, {"block1_conv1": [0, 2]})
    data = json.loads((out / MANIFEST).read_text())
    change(data)
    (out / MANIFEST).write_text(json.dumps(data))
    before = snapshot(docs)
    if command == "render":
        result = render(cli, tiny_model_path, out, "--layers", "conv_a", "--filters", "0")
    else:
        result = cli("pages", "--out", out, "--docs", docs)
    one_line_error(result, f"{out / MANIFEST}: malformed manifest: {message}")
    assert snapshot(docs) == before


def test_a_loaded_model_is_reused_until_its_file_changes(tiny_model_path, tmp_path):
    """In one process the same model file gives the same loaded model (its compiled steps are
    reused); a file rewritten since, even at the same path, is loaded again."""
    import keras
    from filter_atlas.atlas import open_model
    from filter_atlas.spec import build_spec

    path = tmp_path / "mine.keras"
    shutil.copy(tiny_model_path, path)
    spec = build_spec({}, {"model": str(path)})
    first = open_model(spec)
    assert open_model(spec) is first
    model = keras.saving.load_model(path, compile=False)
    kernel, bias = model.get_layer("conv_a").get_weights()
    model.get_layer("conv_a").set_weights([kernel + 1.0, bias])
    model.save(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse clocks
    second = open_model(spec)
    assert second is not first
    np.testing.assert_allclose(second.model.get_layer("conv_a").get_weights()[0], kernel + 1.0)
