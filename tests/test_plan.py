"""The plan: which batches and views a run renders, decided from the spec and the store alone
(no model is loaded here: the model's facts are written by hand)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from filter_atlas.engine.recipes import LUCID, Recipe
from filter_atlas.imaging import png_bytes
from filter_atlas.naming import entry_paths
from filter_atlas.plan import Layer, Model, plan
from filter_atlas.shards import Shard
from filter_atlas.spec import AtlasSpec, Selection
from filter_atlas.store import FilterEntry, RunRecord, Store, Views
from filter_atlas.views import ImageRecord

SIZE, VIEWS_SIZE = (32, 32), (24, 24)


def facts(picks: dict[str, list[int]], recipe: Recipe = LUCID) -> Model:
    """A made-up two-layer model; the second layer costs ten times the first."""
    layers = tuple(Layer(name, 16, {SIZE: 1e6 * (1 + 9 * k), VIEWS_SIZE: 5e5 * (1 + 9 * k)})
                   for k, name in enumerate(picks))
    return Model("m", "w" * 64, "raw", "tensorflow", layers, picks,
                 {(name, at): recipe for name in picks for at in (SIZE, VIEWS_SIZE)})


def spec(**changes) -> AtlasSpec:
    chosen = Selection(sample=None, indices=(1, 2, 3))
    return replace(AtlasSpec(layers=("a", "b"), selection=chosen, batch=2), **changes)


def make(store: Store, the_spec: AtlasSpec, picks=None, **kwargs):
    return plan(the_spec, facts(picks or {"a": [1, 2, 3], "b": [4, 5, 6]}), LUCID.with_steps(8), SIZE,
                VIEWS_SIZE, "set-key", store, **kwargs)


def render_channels(store: Store, todo) -> None:
    """Store what rendering the plan's channel jobs would: an image per filter, under its key."""
    run = store.add_run(RunRecord("tensorflow", "cpu", {}))
    for job in (j for j in todo.jobs if j.view == "channel"):
        for t in job.targets:
            image, thumb = entry_paths(t.identity)
            pixels = np.full((8, 8, 3), 10 * t.index, "uint8")
            hashes = store.write({image: png_bytes(pixels), thumb: png_bytes(pixels)})
            channel = ImageRecord(image=image, thumbnail=thumb, activation=3.0, start_activation=1.0, size=32,
                                  steps=8, seconds=0.1, key=t.key, sha256=hashes[image], run=run)
            store.put_entry(FilterEntry(model="m", layer=t.layer, index=t.index, recipe="lucid", seed=0,
                                        trained=True, natural_activation=1.0, dead=False,
                                        views=Views(channel=channel)))
    store.save()


def channel_targets(todo) -> list[tuple[str, int]]:
    return [(t.layer, t.index) for j in todo.jobs if j.view == "channel" for t in j.targets]


def test_batches_are_fixed_groups_and_everything_is_stale_at_first(tmp_path):
    todo = make(Store(tmp_path), spec())
    assert [(b.layer, b.indices) for b in todo.batches] == \
        [("a", (1, 2)), ("a", (3,)), ("b", (4, 5)), ("b", (6,))]
    assert channel_targets(todo) == [("a", 1), ("a", 2), ("a", 3), ("b", 4), ("b", 5), ("b", 6)]
    by_view = {view: sum(len(j.targets) for j in todo.jobs if j.view == view) for view in
               ("channel", "negative", "neuron", "diversity")}
    assert by_view == dict.fromkeys(by_view, 6)
    assert all(t.size == VIEWS_SIZE for j in todo.jobs if j.view != "channel" for t in j.targets)
    # diversity's weight comes from the channel image not made yet: no scale, no key
    assert all(t.scale is None and t.key == "" for j in todo.jobs if j.view == "diversity" for t in j.targets)
    assert len(todo.examples) == 4 and todo.naturals_needed and todo.skipped == 0


def test_a_rendered_channel_is_fresh_and_another_seed_renders_again(tmp_path):
    store = Store(tmp_path)
    render_channels(store, make(store, spec()))
    again = make(store, spec())
    assert channel_targets(again) == [] and again.skipped == 6
    everything = channel_targets(make(Store(tmp_path / "new"), spec()))
    assert channel_targets(make(store, spec(seed=1))) == everything  # --seed 1 after --seed 0
    # every key the seed-1 plan computes differs from the stored one
    keys = {(t.layer, t.index): t.key for j in make(store, spec(seed=1)).jobs if j.view == "channel"
            for t in j.targets}
    assert all(keys[e.layer, e.index] != e.key for e in store.filters)


@pytest.mark.parametrize("change", [{"steps": 9}, {"precision": "bfloat16"}, {"xla": True}])
def test_another_recipe_as_run_renders_again(tmp_path, change):
    store = Store(tmp_path)
    render_channels(store, make(store, spec()))
    recipe = replace(LUCID.with_steps(8), **change)
    picks = {"a": [1, 2, 3], "b": [4, 5, 6]}
    todo = plan(spec(), facts(picks, recipe), recipe, SIZE, VIEWS_SIZE, "set-key", store)
    assert len(channel_targets(todo)) == 6


def test_a_damaged_image_makes_its_filter_stale_only(tmp_path):
    store = Store(tmp_path)
    render_channels(store, make(store, spec()))
    victim = store.entry(("m", "b", 5, "lucid"))
    (tmp_path / victim.image).write_bytes(b"not the image")
    assert channel_targets(make(store, spec())) == [("b", 4), ("b", 5)]  # its whole batch, fixed


def test_shards_split_the_batches_without_overlap(tmp_path):
    store = Store(tmp_path)
    whole = make(store, spec())
    parts = [make(store, spec(), shard=Shard(i, 2)) for i in (1, 2)]
    assert sorted((b for p in parts for b in p.batches), key=str) == sorted(whole.batches, key=str)
    assert not set(parts[0].batches) & set(parts[1].batches)
    assert parts[0].shard.plan == parts[1].shard.plan
    assert (parts[0].shard.index, parts[1].shard.index) == (1, 2)
    # longest first onto the least-loaded shard: costs b(4,5)=20, b(6)=10, a(1,2)=2, a(3)=1 ->
    # {20} and {10, 2, 1}
    costs = [sum(len(b.indices) * (10 if b.layer == "b" else 1) for b in p.batches) for p in parts]
    assert sorted(costs) == [13, 20]


def test_only_the_views_asked_for_are_planned_and_force_renders_all(tmp_path):
    store = Store(tmp_path)
    todo = make(store, spec(views=("channel", "neuron")))
    assert {j.view for j in todo.jobs} == {"channel", "neuron"} and todo.examples == []
    render_channels(store, todo)
    assert channel_targets(make(store, spec())) == []
    assert len(channel_targets(make(store, spec(), force=True))) == 6


def test_a_neuron_key_follows_the_receptive_field_it_is_rendered_for(tmp_path):
    """The neuron view renders with jitter capped at a quarter of the layer's receptive field, so
    its key changes with that field where the cap bites, and no other view's does."""
    def keys(field: int) -> dict[str, str]:
        model = facts({"a": [1]})
        model = replace(model, layers=tuple(replace(layer, receptive={SIZE: field, VIEWS_SIZE: field})
                                            for layer in model.layers))
        todo = plan(spec(layers=("a",)), model, LUCID.with_steps(8), SIZE, VIEWS_SIZE, "set-key",
                    Store(tmp_path))
        return {view: todo.key(view, "a", 1) for view in ("channel", "neuron", "negative")}

    small, wide, wider = keys(3), keys(64), keys(200)
    assert small["neuron"] != wide["neuron"] and wide["neuron"] == wider["neuron"]  # 64 // 4 >= 8: uncapped
    assert {small[v] for v in ("channel", "negative")} == {wider[v] for v in ("channel", "negative")}
