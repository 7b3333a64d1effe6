"""The natural-evidence pass: every filter of every conv layer of the spec's model over one natural
set (one forward pass per image, cached per image), written as the model's ``evidence.json`` and
downscaled copies of the set's images that the site draws the patches from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .atlas import model_record
from .copies import COPY_QUALITY, COPY_SIDE, prune_copies, write_copy
from .examples import CACHE_VERSION, LayerPicks, Measured, measure
from .keys import digest, set_key, size_key
from .models import LoadedModel
from .naturals import ImageSet, resolve_set
from .sizes import as_size
from .spec import AtlasSpec
from .store import Store
from .store.evidence import (
    EVIDENCE,
    EVIDENCE_SCHEMA,
    Evidence,
    EvidenceImage,
    LayerEvidence,
    Side,
    evidence_path,
    read_evidence,
    write_evidence,
)
from .store.files import atlas_lock
from .views.examples import K


@dataclass(frozen=True)
class EvidenceSummary:
    path: Path
    fresh: bool  # nothing to do: the evidence was already there for this model, set and size
    filters: int
    layers: int
    used: int
    cached: int  # images that came from the examples cache (no forward pass)


def evidence_key(loaded: LoadedModel, the_set: str, size: tuple[int, int]) -> str:
    """What a model's evidence depends on: weights, preprocessing, the set's files, the size, the
    selection (``CACHE_VERSION``, ``K``) and the copies' format."""
    return digest({"model": loaded.slug, "weights": loaded.weights_sha256, "preprocess": loaded.preprocess,
                   "set": the_set, "size": size_key(size), "cache": CACHE_VERSION, "k": K,
                   "copies": [COPY_SIDE, COPY_QUALITY]})


def natural_evidence(spec: AtlasSpec, loaded: LoadedModel, quiet: bool = False, force: bool = False,
                     cache_dir: Path | None = None) -> EvidenceSummary:
    """Measure every filter of every conv layer of ``loaded`` over the spec's natural set and
    write the evidence, unless it is there already for this model, set and size (or ``force``).

    Args:
        spec: Its ``examples`` set (``naturals.resolve_set``), ``size`` and ``out`` (the atlas folder).
        loaded: The spec's model (``atlas.open_model``).
        quiet: No progress bar.
        force: Measure again although the evidence is fresh.
        cache_dir: The examples cache (default: ``examples.default_cache_dir()``).

    Returns:
        What was written (or found fresh).
    """
    size = as_size(spec.size or loaded.default_size())
    loaded.check_size(size)
    image_set = resolve_set(None if spec.examples is None else str(spec.examples))
    convs = loaded.conv_layers(size)
    key = evidence_key(loaded, set_key([(n.name, Path(n.path)) for n in image_set.sources], size,
                                       loaded.channels), size)
    path = evidence_path(spec.out, loaded.slug)
    old = read_evidence(path)
    count = sum(c.filters for c in convs)
    if old is not None and old.key == key and old.schema == EVIDENCE_SCHEMA and not force \
            and _copies_present(spec.out, old):
        return EvidenceSummary(path, True, count, len(convs), old.used, old.used)
    found = measure(loaded, [c.name for c in convs], image_set, size, k=K, cache_dir=cache_dir,
                    progress=not quiet)
    fields = {c.name: c.receptive_field for c in convs}
    store = Store(Path(spec.out))
    with atlas_lock(Path(spec.out)):
        copies = _write_copies(Path(spec.out), image_set, found, loaded.channels, path, store.listed_files(),
                               quiet)
        images = tuple(EvidenceImage(n.name, n.label, copies.get(i)) for i, n in enumerate(image_set.sources))
        layers = tuple(_layer(name, picks, fields[name]) for name, picks in found.layers.items())
        write_evidence(path, Evidence(EVIDENCE_SCHEMA, loaded.slug, image_set.name, image_set.description,
                                      key, size, COPY_SIDE, found.used, len(found.skipped), images, layers))
    store.describe_model(loaded.slug, model_record(loaded, size))
    store.save()
    return EvidenceSummary(path, False, count, len(convs), found.used, found.cached)


def _layer(name: str, picks: LayerPicks, field: int) -> LayerEvidence:
    """One layer's columns: per filter, its patches that exist (an image of -1 marks none)."""

    def side(pick) -> Side:
        activations, images, positions = pick
        keep = [images[f] >= 0 for f in range(len(images))]
        return Side(
            image=tuple(tuple(int(i) for i in images[f][keep[f]]) for f in range(len(images))),
            box=tuple(tuple(tuple(int(v) for v in picks.boxes[p]) for p in positions[f][keep[f]])
                      for f in range(len(images))),
            activation=tuple(tuple(_round(a) for a in activations[f][keep[f]]) for f in range(len(images))))

    return LayerEvidence(name, len(picks.best), field, side(picks.top), side(picks.bottom),
                         tuple(_round(b) for b in picks.best), tuple(int(a) for a in picks.active),
                         tuple(round(float(v), 4) for v in picks.sparsity))


def _round(value: float) -> float:
    """Four significant figures: the pages show three."""
    return float(f"{float(value):.4g}")


def _write_copies(atlas_dir: Path, image_set: ImageSet, found: Measured, channels: int, own: Path,
                  listed: set[str], quiet: bool) -> dict[int, str]:
    """The copies of every image some patch uses; copies that neither another model's evidence
    nor the manifest (``listed``: its files; examples views list their copies) uses any more are
    removed (``own``: this model's evidence file, about to be replaced). Returns each used image's
    copy, relative to the atlas folder."""
    used = sorted({int(i) for picks in found.layers.values() for pick in (picks.top, picks.bottom)
                   for i in np.unique(pick[1]) if i >= 0})
    out = {}
    for order in tqdm(used, desc="copies", unit="img", disable=quiet, dynamic_ncols=True):
        rel = write_copy(atlas_dir, image_set.name, image_set.sources[order], found.size, channels)
        if rel is not None:
            out[order] = rel
    keep = set(out.values()) | listed
    for other in atlas_dir.glob(f"*/{EVIDENCE}"):
        evidence = read_evidence(other) if other != own else None
        keep |= {image.copy for image in evidence.images if image.copy} if evidence else set()
    prune_copies(atlas_dir, image_set.name, keep)
    return out


def _copies_present(atlas_dir: Path, evidence: Evidence) -> bool:
    return all((Path(atlas_dir) / image.copy).is_file() for image in evidence.images if image.copy)
