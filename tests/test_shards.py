"""Sharded rendering: balanced partition, and merged shards equal the unsharded run."""

import shutil
from pathlib import Path

import pytest
from filter_atlas.errors import AtlasError
from filter_atlas.shards import Shard, merge, partition
from filter_atlas.spec import build_spec
from filter_atlas.store import FilterEntry, read_manifest
from msgspec.structs import replace

from .conftest import read_images


def test_partition_balances_cost_deterministically():
    costs = [1.0, 1.0, 1.0, 1.0, 10.0, 4.0, 4.0]
    owner = partition(costs, 2)
    assert owner == partition(costs, 2)
    loads = [sum(c for c, o in zip(costs, owner, strict=True) if o == s) for s in range(2)]
    assert sorted(loads) == [11.0, 11.0]
    assert set(partition(costs, 10)) <= set(range(10)) and len(set(partition(costs, 10))) == 7


def test_shard_parsing():
    assert Shard.parse("2/4") == Shard(2, 4)
    for bad in ("0/4", "5/4", "2", "a/b"):
        with pytest.raises(AtlasError):
            Shard.parse(bad)


def entries(out: Path) -> list[FilterEntry]:
    """The manifest's entries, without their timings."""
    return [replace(e, views=replace(e.views, channel=replace(e.views.channel, seconds=0.0),
                                     negative=replace(e.views.negative, seconds=0.0)))
            for e in read_manifest(out).filters]


@pytest.fixture(scope="module")
def sharded(weights_path, tmp_path_factory):
    """The same small atlas rendered whole and as three shards."""
    from filter_atlas.atlas import render

    root = tmp_path_factory.mktemp("shards")
    overrides = {"weights": str(weights_path), "layers": "block1_conv1,block2_conv1,block3_conv2",
                 "sample": 3, "batch": 2, "size": 32, "steps": 4, "views": "negative,examples"}
    render(build_spec({}, {**overrides, "out": root / "whole"}), quiet=True)
    for i in (1, 2, 3):
        summary = render(build_spec({}, {**overrides, "out": root / f"s{i}"}), quiet=True, shard=Shard(i, 3))
        assert summary.rendered > 0  # six batches over three shards: none is idle
    render(build_spec({}, {**overrides, "steps": 5, "out": root / "other"}), quiet=True, shard=Shard(1, 3))
    return root


def test_merged_shards_equal_the_unsharded_run(sharded, tmp_path):
    out = tmp_path / "merged"
    assert merge([sharded / "s3", sharded / "s1", sharded / "s2"], out) == (9, 0)
    assert entries(out) == entries(sharded / "whole")
    assert read_images(out) == read_images(sharded / "whole")
    # the channel image and its thumbnail, the negative view (at 32 px its own thumbnail), and one
    # copy per photo that some patch shows, shared by the filters (no file per patch)
    copies = {p.copy for e in read_manifest(out).filters
              for p in e.views.examples.top + e.views.examples.bottom}
    assert copies and set(read_images(out)) >= copies
    assert len(read_images(out)) == 9 * (2 + 1) + len(copies)
    assert read_manifest(out).shard is None


def test_merge_refuses_missing_duplicate_or_foreign_shards(sharded, tmp_path):
    with pytest.raises(AtlasError, match=r"missing shard\(s\) 2/3"):
        merge([sharded / "s1", sharded / "s3"], tmp_path / "m1")
    with pytest.raises(AtlasError, match="given twice"):
        merge([sharded / "s1", sharded / "s1", sharded / "s2", sharded / "s3"], tmp_path / "m2")
    with pytest.raises(AtlasError, match="different plans"):
        merge([sharded / "other", sharded / "s2", sharded / "s3"], tmp_path / "m3")
    with pytest.raises(AtlasError, match="not a shard's manifest"):
        merge([sharded / "whole"], tmp_path / "m4")
    assert not any((tmp_path / f"m{i}").exists() for i in range(1, 5))


def test_merge_refuses_a_damaged_image(sharded, tmp_path):
    broken = tmp_path / "s2"
    shutil.copytree(sharded / "s2", broken)
    victim = next(broken.rglob("????-lucid.webp"))
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(AtlasError, match="does not match its manifest entry"):
        merge([sharded / "s1", broken, sharded / "s3"], tmp_path / "m")
