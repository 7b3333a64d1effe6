"""A model's natural evidence: for every filter of every measured conv layer, its top and bottom
natural-image patches over one labelled set, its best mean activation and the images that activate
it at all. One file per model (``<atlas>/<model>/evidence.json``); the set's images are shown from
downscaled copies (``<atlas>/naturals/<set>/``), each patch drawn from its copy by its box.

The arrays are stored by column (one tuple per filter) so that 4,224 filters stay a few MB.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..errors import AtlasError
from .files import atomic_write

EVIDENCE = "evidence.json"
EVIDENCE_SCHEMA = 2  # 2: sparsity


class Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of the evidence records."""


class Side(Strict, frozen=True):
    """One side (top or bottom) of every filter of a layer, best first; per filter up to k
    patches, each an image (its index in ``Evidence.images``), a box [x0, y0, x1, y1) in the
    measured image, and the filter's pre-activation there."""

    image: tuple[tuple[int, ...], ...]
    box: tuple[tuple[tuple[int, int, int, int], ...], ...]
    activation: tuple[tuple[float, ...], ...]


class LayerEvidence(Strict, frozen=True):
    """Every filter of one conv layer."""

    name: str
    filters: int
    receptive_field: int
    top: Side
    bottom: Side
    best: tuple[float, ...]  # per filter: the best mean activation (after ReLU) over the set
    active: tuple[int, ...]  # per filter: images on which it is positive at some position
    sparsity: tuple[float, ...] = ()  # per filter: lifetime sparsity over the set (none before schema 2)


class EvidenceImage(Strict, frozen=True):
    """One image of the set."""

    name: str
    label: str | None  # its class, where the set is labelled
    copy: str | None  # its downscaled copy, relative to the atlas folder; None: no patch uses it


class Evidence(Strict, frozen=True):
    """The contents of ``evidence.json``."""

    schema: int
    model: str  # the model's slug (its folder in the atlas)
    set: str
    description: str
    key: str  # what the numbers depend on (``keys.evidence_key``)
    size: tuple[int, int]  # (height, width) the images were measured at
    copy_side: int  # the copies' side in pixels (boxes scale by copy_side / size)
    used: int  # images read
    skipped: int  # unreadable files
    images: tuple[EvidenceImage, ...]
    layers: tuple[LayerEvidence, ...]

    def layer(self, name: str) -> LayerEvidence | None:
        return next((layer for layer in self.layers if layer.name == name), None)


def evidence_path(atlas_dir: Path, model: str) -> Path:
    """Where a model's evidence lives (``model``: its slug)."""
    return Path(atlas_dir) / model / EVIDENCE


def read_evidence(path: Path) -> Evidence | None:
    """The evidence at ``path``; None where there is none.

    Raises:
        AtlasError: The file is damaged or of another schema (one line naming it).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        evidence = msgspec.json.decode(data, type=Evidence)
    except msgspec.ValidationError as exc:
        raise AtlasError(f"{path}: not a Filter Atlas evidence file ({exc})") from exc
    except msgspec.DecodeError as exc:
        raise AtlasError(f"{path}: damaged ({exc}); delete it and run `filter-atlas naturals` again") from exc
    if evidence.schema > EVIDENCE_SCHEMA:  # older ones lack only later columns: read, and measured again
        raise AtlasError(f"{path}: evidence schema {evidence.schema}, written by a newer filter-atlas "
                         f"(this one reads up to {EVIDENCE_SCHEMA})")
    return evidence


def write_evidence(path: Path, evidence: Evidence) -> None:
    """Write ``evidence`` atomically (standard JSON: a value that is not finite is refused)."""
    atomic_write(path, msgspec.json.encode(evidence) + b"\n")
