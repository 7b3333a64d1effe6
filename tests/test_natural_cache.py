"""Faults around the natural image set: the examples cache is only a cache (a corrupt file is
rebuilt, an unwritable folder runs uncached, each with one line on stderr, and the results are
those of a clean run), and ``--examples`` naming a file says so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from filter_atlas.examples import find_examples
from filter_atlas.models import load_model
from filter_atlas.naturals import folder_set
from PIL import Image

SIZE = 32
WANTED = {"conv_a": [0, 1, 2, 3], "conv_b": [0, 4]}


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return load_model(str(tiny_model_path))


@pytest.fixture
def photos(tmp_path) -> Path:
    """Six small PNGs of blocks of colour and noise."""
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(7)
    for i in range(6):
        pixels = rng.integers(0, 256, (5, 5, 3), dtype="uint8").repeat(8, axis=0).repeat(8, axis=1)
        Image.fromarray(pixels).save(root / f"p{i}.png")
    return root


def _find(model, photos: Path, cache: Path):
    return find_examples(model, WANTED, folder_set(photos), SIZE, cache_dir=cache, progress=False)


def _summary(result) -> dict:
    """Everything a result says about each filter, comparable with ==."""
    return {key: (found.best_mean, [(p.source, p.box, p.activation, p.label)
                                    for p in found.top + found.bottom])
            for key, found in result.filters.items()}


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(3).bytes(path.stat().st_size))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [_garbage, _truncated], ids=["garbage", "truncated"])
def test_a_corrupt_cache_file_is_rebuilt_with_one_warning(tiny, photos, tmp_path, capsys, damage):
    clean = _find(tiny, photos, tmp_path / "clean")
    cache = tmp_path / "cache"
    _find(tiny, photos, cache)
    victim = sorted(cache.rglob("*.sqlite"))[0]
    damage(victim)
    capsys.readouterr()
    again = _find(tiny, photos, cache)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("filter-atlas: ") and str(victim) in line and "corrupt" in line
    assert again.cached == 0  # that layer's entries were lost: every image ran again
    assert _summary(again) == _summary(clean)
    third = _find(tiny, photos, cache)  # the rebuilt file serves the next pass
    assert third.cached == third.used == 6 and capsys.readouterr().err == ""
    assert _summary(third) == _summary(clean)


def test_a_cache_folder_that_cannot_be_made_runs_uncached_with_one_warning(tiny, photos, tmp_path, capsys):
    clean = _find(tiny, photos, tmp_path / "clean")
    (tmp_path / "a-file").write_text("in the way")
    cache = tmp_path / "a-file" / "cache"
    capsys.readouterr()
    for _ in range(2):
        result = _find(tiny, photos, cache)
        (line,) = capsys.readouterr().err.splitlines()
        assert str(cache) in line and "FILTER_ATLAS_CACHE=<writable folder>" in line
        assert result.cached == 0 and _summary(result) == _summary(clean)


def test_a_read_only_cache_folder_runs_uncached_with_one_warning(tiny, photos, tmp_path, capsys):
    clean = _find(tiny, photos, tmp_path / "clean")
    cache = tmp_path / "read-only"
    cache.mkdir(mode=0o555)
    try:
        if os.access(cache, os.W_OK):
            pytest.skip("this user writes into read-only folders (root)")
        capsys.readouterr()
        result = _find(tiny, photos, cache)
        (line,) = capsys.readouterr().err.splitlines()
    finally:
        cache.chmod(0o755)
    assert str(cache) in line and "FILTER_ATLAS_CACHE=<writable folder>" in line
    assert result.cached == 0 and _summary(result) == _summary(clean)


# --- The same through the command line ----------------------------------------------------------

def _render(cli, model: Path, photos: Path, out: Path) -> tuple[int, str, str]:
    return cli("render", "--model", model, "--layers", "conv_a", "--filters", "all", "--size", SIZE,
               "--steps", "4", "--views", "channel,examples", "--examples", photos, "--out", out, "--quiet")


def _measured(out: Path) -> dict:
    """Per filter: its examples view and its best natural activation, as the manifest has them."""
    data = json.loads((out / "manifest.json").read_text())
    return {(e["layer"], e["index"]): (e["views"]["examples"], e["natural_activation"])
            for e in data["filters"]}


def test_render_over_a_corrupt_cache_equals_a_clean_render(cli, tiny_model_path, photos, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("FILTER_ATLAS_CACHE", str(tmp_path / "cache"))
    assert _render(cli, tiny_model_path, photos, tmp_path / "one")[0] == 0
    (victim,) = (tmp_path / "cache").rglob("*.sqlite")  # conv_a's
    _garbage(victim)
    code, _, err = _render(cli, tiny_model_path, photos, tmp_path / "two")  # a new atlas: the set is measured
    assert code == 0
    assert [line for line in err.splitlines() if "cache" in line] == [
        f"filter-atlas: the examples cache {victim} is corrupt (file is not a database); "
        "deleted, rebuilding it"]
    assert _measured(tmp_path / "two") == _measured(tmp_path / "one")


def test_render_with_an_unwritable_cache_says_so_and_renders(cli, tiny_model_path, photos, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("FILTER_ATLAS_CACHE", str(tmp_path / "cache"))
    assert _render(cli, tiny_model_path, photos, tmp_path / "one")[0] == 0
    (tmp_path / "a-file").write_text("in the way")
    monkeypatch.setenv("FILTER_ATLAS_CACHE", str(tmp_path / "a-file" / "cache"))
    code, _, err = _render(cli, tiny_model_path, photos, tmp_path / "two")
    assert code == 0
    (line,) = [line for line in err.splitlines() if "cache" in line]
    assert line.startswith(f"filter-atlas: cannot use the examples cache in {tmp_path / 'a-file' / 'cache'}")
    assert line.endswith("; running uncached (set FILTER_ATLAS_CACHE=<writable folder> to cache)")
    assert _measured(tmp_path / "two") == _measured(tmp_path / "one")


def test_examples_naming_a_file_says_it_is_a_file(cli, tiny_model_path, photos, tmp_path):
    image = photos / "p0.png"
    code, _, err = _render(cli, tiny_model_path, image, tmp_path / "out")
    assert code == 2
    assert err.splitlines() == [f"filter-atlas: error: examples: {image} is a file, not a folder; "
                                "give the folder that holds the images"]
    assert not (tmp_path / "out").exists()

