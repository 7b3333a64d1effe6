"""The runner: executes a plan's jobs on a loaded model and writes what they make to the store.

Each job renders one batch of one view; each filter's outcome goes to its view (``View.made``),
which says what to write and how to record it. A filter whose render gave a non-finite value is
recorded as failed, reported in one line, and never counted fresh.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from .api import render as render_images
from .copies import write_copy
from .errors import AtlasError
from .imaging import webp_bytes
from .models import LoadedModel
from .naming import Identity
from .plan import Job, Plan
from .store import FilterEntry, Store, Views, finite
from .views import VIEWS, ImageRecord, Outcome, Target
from .views.base import size_fields
from .views.diversity import entry_scale


class Progress:
    """One progress bar over the steps of one pass; ``advancer(images)`` gives a batch's ``on_step``."""

    def __init__(self, total: int, desc: str, quiet: bool):
        self.bar = tqdm(total=total, desc=desc, unit="step", disable=quiet or not total, dynamic_ncols=True)

    def advancer(self, images: int):
        done = [0]

        def advance(step: int) -> None:
            self.bar.update(images * (step - done[0]))
            done[0] = step

        return advance

    def close(self) -> None:
        self.bar.close()


class Runner:
    """Runs the jobs of one plan for one model into one store."""

    def __init__(self, loaded: LoadedModel, store: Store, plan: Plan, run: str, seed: int,
                 naturals: dict[tuple[str, int], float | None], quiet: bool):
        self.loaded, self.store, self.plan, self.run, self.seed = loaded, store, plan, run, seed
        self.naturals = naturals  # best natural activation by (layer, index)
        self.quiet = quiet
        self.rendered = self.dead = 0
        self.failed: list[Identity] = []

    def run_view(self, view: str) -> None:
        """Every job of ``view`` in the plan, one batch at a time (the manifest saved after each)."""
        jobs = [j for j in self.plan.jobs if j.view == view]
        n = VIEWS[view].images
        progress = Progress(sum(len(j.targets) for j in jobs) * n * self.plan.recipe.steps, view, self.quiet)
        for job in jobs:
            job = self._keyed(job)
            if job.targets:
                self._batch(job, progress)
        progress.close()

    def _keyed(self, job: Job) -> Job:
        """The job with every target keyed: a target without a scale (a scaled view, diversity)
        takes it from the channel image this run made, and is dropped if that leaves it fresh."""
        targets = []
        for t in job.targets:
            if t.scale is None:
                scale = entry_scale(self.store.entry(t.identity))
                t = Target(t.identity, t.size, self.plan.key(job.view, t.layer, t.index, scale), scale)
                if self.store.view_fresh(t.identity, job.view, t.key):
                    continue
            targets.append(t)
        return Job(job.view, job.layer, tuple(targets))

    def _batch(self, job: Job, progress: Progress) -> None:
        view = VIEWS[job.view]
        n = view.images
        objectives = [view.objective(t.layer, t.index, t.scale) for t in job.targets]
        size = job.targets[0].size
        began = time.perf_counter()
        recipe = view.fitted(self.plan.recipe, self.plan.fields.get((job.layer, size)))
        result = render_images(self.loaded, objectives, n=n, recipe=recipe, size=size,
                               seed=self.seed, on_step=progress.advancer(len(objectives) * n))
        seconds = (time.perf_counter() - began) / len(objectives)
        for k, target in enumerate(job.targets):
            rows = slice(k * n, (k + 1) * n)
            outcome = Outcome(result.images[rows], result.activations[rows], result.start_activations[rows],
                              seconds, result.recipe.steps)
            if outcome.failed:
                self._failed(job.view, target, outcome)
                continue
            made = view.made(self.loaded, target, outcome)
            hashes = self.store.write({rel: webp_bytes(image) for rel, image in made.files.items()})
            record = made.record(hashes, self.run)
            if job.view == "channel":
                self._enter(target, record)
            else:
                self.store.put_view(target.identity, job.view, record)
        self.store.save()
        self._log(job, result.activations[::n], seconds)

    def _enter(self, target: Target, channel: ImageRecord, failed: bool = False) -> None:
        """Record a filter with its channel view."""
        model, layer, index, recipe = target.identity
        dead = not failed and channel.activation <= 0.0
        self.rendered += 1
        self.dead += dead
        precision = self.plan.recipe.precision
        self.store.put_entry(FilterEntry(
            model=model, layer=layer, index=index, recipe=recipe, seed=self.seed, trained=self.loaded.trained,
            natural_activation=self.naturals.get((layer, index)), dead=dead, views=Views(channel=channel),
            failed=failed, precision=precision if precision != "float32" else None))

    def _failed(self, view: str, target: Target, outcome: Outcome) -> None:
        """Report a non-finite render; a channel view is recorded failed (no image, never fresh)."""
        what = "/".join(map(str, target.identity[1:3]))
        print(f"filter-atlas: {what} {view}: the render gave a non-finite value (a NaN or inf in the "
              "model's weights?); recorded as failed, rendered again next run", file=sys.stderr)
        self.failed.append(target.identity)
        if view == "channel":
            start = float(outcome.start_activations[0])
            self._enter(target, ImageRecord(
                image=None, thumbnail=None, activation=None, start_activation=finite(start),
                **size_fields(target.size), steps=outcome.steps, seconds=round(outcome.seconds, 3),
                key=target.key, sha256=None, run=self.run), failed=True)

    def write_examples(self, job: Job, found) -> None:
        """The examples view of one batch, from the natural pass (``found``: its result), and the
        copies of the images its patches come from."""
        view = VIEWS["examples"]
        sources = {n.name: n for n in found.set.sources}
        records = {t.identity: view.found(t, found.filters[t.layer, t.index], found.set.name)
                   for t in job.targets if self.store.entry(t.identity) is not None}  # else nothing to join
        used = dict.fromkeys(p.source for r in records.values() for p in (*r.top, *r.bottom))
        for name in used:  # one copy per photo, however many of the batch's filters show it
            if write_copy(self.store.root, found.set.name, sources[name], self.plan.size,
                          self.loaded.channels) is None:
                raise AtlasError(f"{sources[name].path}: no longer readable; run again")
        for identity, record in records.items():
            self.store.put_view(identity, "examples", record)
        self.store.save()

    def _log(self, job: Job, values, seconds: float) -> None:
        """With ``--quiet``, one line per batch instead of the progress bars."""
        if self.quiet:
            acts = ", ".join(f"#{t.index}={a:.1f}" for t, a in zip(job.targets, values, strict=True))
            print(f"{self.loaded.slug} {job.layer} {job.view}: {acts} ({seconds:.1f} s/filter)",
                  file=sys.stderr)
