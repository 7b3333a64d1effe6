"""Natural image sets: labels from ImageNet names or class folders, and the named set
``imagenet-samples`` (a local copy named by the environment, else the cache, else a download), every
file checked against the pinned SHA-256 list."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import shutil
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from filter_atlas import downloads
from filter_atlas.downloads import IMAGENET_SAMPLES, IMAGENET_SAMPLES_ENV
from filter_atlas.errors import AtlasError
from filter_atlas.naturals import folder_labels, folder_set, imagenet_samples, resolve_set
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared/naturals"
REAL = SHARED / "imagenet-sample-images"
# (wnid, class as the file name spells it, label)
CLASSES = [("n01440764", "tench", "tench"), ("n02089973", "English_foxhound", "English foxhound"),
           ("n02085620", "Chihuahua", "Chihuahua")]


def _png(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype="uint8").repeat(4, 0).repeat(4, 1)
    Image.fromarray(pixels).save(path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _by_content(image_set) -> dict[str, str | None]:
    return {_sha(image.path): image.label for image in image_set.sources}


def test_imagenet_names_and_class_folders_give_the_same_labels(tmp_path):
    for seed, (wnid, spelled, label) in enumerate(CLASSES):
        _png(tmp_path / "names" / f"{wnid}_{spelled}.png", seed)
        _png(tmp_path / "folders" / label / f"photo{seed}.png", seed)
    by_names, by_folders = folder_set(tmp_path / "names"), folder_set(tmp_path / "folders")
    assert by_names.labelled and by_folders.labelled
    assert _by_content(by_names) == _by_content(by_folders)
    assert sorted(_by_content(by_names).values()) == sorted(label for _, _, label in CLASSES)
    assert {image.label: image.wnid for image in by_names.sources} == {lab: w for w, _, lab in CLASSES}


def test_a_folder_with_neither_layout_is_unlabelled(tmp_path):
    _png(tmp_path / "mixed" / "n01440764_tench.png", 0)
    _png(tmp_path / "mixed" / "holiday.png", 1)  # not an ImageNet name, and not in a class folder
    _png(tmp_path / "mixed" / "dogs" / "rex.png", 2)
    _png(tmp_path / "one" / "dogs" / "rex.png", 3)  # a single class folder is no labelling
    _png(tmp_path / "one" / "dogs" / "max.png", 4)
    for folder in ("mixed", "one"):
        image_set = folder_set(tmp_path / folder)
        assert [image.label for image in image_set.sources] == [None] * len(image_set.sources)
        assert not image_set.labelled


def test_label_rules():
    # ImageNet names win, at any depth; a numbered training file is no class name (its folder is).
    assert folder_labels(["a/n01440764_tench.JPEG", "n02089973_English_foxhound.jpg"]) == \
        [("tench", "n01440764"), ("English foxhound", "n02089973")]
    assert folder_labels(["n01440764/n01440764_10026.JPEG", "n01443537/n01443537_2.JPEG"]) == \
        [("n01440764", None), ("n01443537", None)]
    assert folder_labels(["a/b/x.png", "c/y.png"]) == [(None, None)] * 2


# -- the named set: download, cache, local copy ---------------------------------------------------


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(IMAGENET_SAMPLES_ENV, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def tiny_set(tmp_path) -> tuple[Path, Path]:
    """Three ImageNet-named PNGs and their pinned list: (folder, list)."""
    folder = tmp_path / "tiny-set"
    files = [_png(folder / f"{wnid}_{spelled}.png", seed) for seed, (wnid, spelled, _) in enumerate(CLASSES)]
    pinned = tmp_path / "tiny.sha256"
    pinned.write_text("".join(f"{_sha(f)}  {f.name}\n" for f in files))
    return folder, pinned


def _zip(folder: Path, dest: Path, altered: str | None = None) -> Path:
    """``folder``'s files in one top folder, as GitHub's archives are, plus a README the list does not
    name; ``altered`` gets other bytes."""
    with zipfile.ZipFile(dest, "w") as zf:
        zf.writestr("repo-bc69043/README.md", "not pinned")
        for path in sorted(folder.iterdir()):
            data = path.read_bytes()
            zf.writestr(f"repo-bc69043/{path.name}", data + b"x" if path.name == altered else data)
    return dest


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``: (base URL, stop())."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    running = [True]

    def stop() -> None:
        if running.pop():
            httpd.shutdown()
            httpd.server_close()
            thread.join()

    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, stop
    if running:
        stop()


def _served(tmp_path, tiny_set, server, altered: str | None = None):
    """The tiny set zipped (one file ``altered``) and served, pinned to its true hashes; an empty cache."""
    folder, hashes = tiny_set
    base, www, _ = server
    _zip(folder, www / "set.zip", altered=altered)
    return dataclasses.replace(IMAGENET_SAMPLES, url=f"{base}/set.zip", hashes=hashes), tmp_path / "cache"


def test_a_download_is_checked_cached_and_used_offline(tmp_path, tiny_set, server, no_env, monkeypatch):
    folder, stop = tiny_set[0], server[2]
    pinned, cache = _served(tmp_path, tiny_set, server)
    hashed = []
    monkeypatch.setattr(downloads, "_sha256", lambda path: hashed.append(path) or _sha(path))
    first = imagenet_samples(pinned, cache)
    assert len(hashed) == len(CLASSES)  # each file checked once, in the temporary folder
    assert [p.name for p in cache.iterdir()] == ["imagenet-samples"]  # no temporary folder left
    assert sorted(p.name for p in (cache / "imagenet-samples").iterdir()) == \
        sorted(p.name for p in folder.iterdir())
    assert all(image.path.parent == cache / "imagenet-samples" for image in first.sources)
    assert [image.label for image in first.sources] == [label for _, _, label in CLASSES]
    assert first.name == "imagenet-samples" and "non-commercial" in first.description

    stop()  # no network from here on
    assert imagenet_samples(pinned, cache) == first
    assert len(hashed) == len(CLASSES)  # not checked again in this process
    downloads._VERIFIED.clear()  # a new process: the cached copy is checked again, still offline
    assert imagenet_samples(pinned, cache) == first
    assert len(hashed) == 2 * len(CLASSES)


def test_an_altered_archive_is_refused_and_nothing_cached(tmp_path, tiny_set, server, no_env):
    altered = f"{CLASSES[1][0]}_{CLASSES[1][1]}.png"
    pinned, cache = _served(tmp_path, tiny_set, server, altered)
    with pytest.raises(AtlasError, match=f"{altered} does not match its pinned SHA-256") as caught:
        imagenet_samples(pinned, cache)
    assert "\n" not in str(caught.value)
    assert list(cache.iterdir()) == []


def test_a_damaged_cached_copy_is_downloaded_again(tmp_path, tiny_set, server, no_env, capsys):
    folder = tiny_set[0]
    pinned, cache = _served(tmp_path, tiny_set, server)
    shutil.copytree(folder, cache / "imagenet-samples")
    damaged = cache / "imagenet-samples" / f"{CLASSES[0][0]}_{CLASSES[0][1]}.png"
    damaged.write_bytes(b"not a png")
    image_set = imagenet_samples(pinned, cache)
    assert f"{damaged.name} does not match" in capsys.readouterr().err
    assert _sha(damaged) == _sha(folder / damaged.name) and len(image_set.sources) == len(CLASSES)


def test_offline_and_uncached_says_how_to_name_a_local_copy(tmp_path, tiny_set, no_env):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pinned = dataclasses.replace(IMAGENET_SAMPLES, url=f"http://127.0.0.1:{port}/set.zip", hashes=tiny_set[1])
    cache = tmp_path / "cache"
    with pytest.raises(AtlasError, match=f"offline\\? set {IMAGENET_SAMPLES_ENV}=/absolute/path/to/"
                       "imagenet-sample-images") as caught:
        imagenet_samples(pinned, cache)
    assert "\n" not in str(caught.value)
    assert list(cache.iterdir()) == []


def test_the_environment_names_a_local_copy(tmp_path, tiny_set, monkeypatch):
    folder, hashes = tiny_set
    pinned = dataclasses.replace(IMAGENET_SAMPLES, url="http://127.0.0.1:1/none.zip", hashes=hashes)
    monkeypatch.setenv(IMAGENET_SAMPLES_ENV, "tiny-set")
    monkeypatch.chdir(tmp_path)
    relative = f"^{IMAGENET_SAMPLES_ENV} must be an absolute path, got 'tiny-set'"
    with pytest.raises(AtlasError, match=relative) as caught:
        imagenet_samples(pinned, tmp_path / "cache")
    assert "\n" not in str(caught.value)

    copy = shutil.copytree(folder, tmp_path / "copy")
    monkeypatch.setenv(IMAGENET_SAMPLES_ENV, str(copy))
    assert {image.path.parent for image in imagenet_samples(pinned, tmp_path / "cache").sources} == {copy}
    altered = copy / f"{CLASSES[2][0]}_{CLASSES[2][1]}.png"
    altered.write_bytes(altered.read_bytes() + b"x")
    downloads._VERIFIED.clear()
    with pytest.raises(AtlasError, match=f"{altered.name} does not match its pinned SHA-256"):
        imagenet_samples(pinned, tmp_path / "cache")
    altered.unlink()
    with pytest.raises(AtlasError, match=f"{altered.name} is missing"):
        imagenet_samples(pinned, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # a named copy is never cached


def test_resolve_set(tmp_path):
    assert resolve_set(None).name == "bundled-photos"
    _png(tmp_path / "mine" / "a.png", 0)
    assert [image.name for image in resolve_set(str(tmp_path / "mine")).sources] == ["a.png"]
    with pytest.raises(AtlasError, match="examples folder not found"):
        resolve_set(str(tmp_path / "none"))


def test_the_shipped_list_pins_the_whole_set():
    hashes = downloads.read_hashes(IMAGENET_SAMPLES.hashes)
    assert len(hashes) == 1000 and hashes["n01440764_tench.JPEG"].startswith("98f7e89b")
    if (SHARED / "imagenet-sample-images.sha256").is_file():
        assert IMAGENET_SAMPLES.hashes.read_bytes() == (SHARED / "imagenet-sample-images.sha256").read_bytes()


@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real imagenet-samples copy is not at {REAL}")
def test_the_real_set_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(IMAGENET_SAMPLES_ENV, str(REAL))
    image_set = resolve_set("imagenet-samples")
    assert image_set.name == "imagenet-samples" and len(image_set.sources) == 1000 and image_set.labelled
    first = image_set.sources[0]
    assert (first.name, first.label, first.wnid, first.path) == \
        ("n01440764_tench.JPEG", "tench", "n01440764", REAL / "n01440764_tench.JPEG")
    assert {i.label for i in image_set.sources} >= {"Chihuahua", "English foxhound", "great white shark"}
    assert "non-commercial" in first.licence
