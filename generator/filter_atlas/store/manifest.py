"""Reading and writing ``manifest.json``: JSON through the records, with schema migrations.

Reading accepts every schema this package ever wrote (``MIGRATIONS`` brings an older one up to
``SCHEMA``); writing always writes ``SCHEMA``, as standard JSON (no NaN: a non-finite value is
an error here, recorded as ``None`` by the runner before it gets this far).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ..errors import AtlasError
from ..naming import copy_path
from .records import SCHEMA, Manifest

MANIFEST = "manifest.json"

# Schema 1 repeated the channel view's fields on the filter entry; schema 2 keeps them in the view.
_CHANNEL_FIELDS = ("image", "thumbnail", "activation", "start_activation", "steps", "size", "width",
                   "seconds", "key", "sha256", "run")


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: the channel fields move from the entry into ``views.channel``; an entry
    whose activation is not a number (a NaN that schema 1 wrote) is marked failed."""
    filters = []
    for entry in data.get("filters", []):
        if not isinstance(entry, dict):
            filters.append(entry)
            continue
        entry = dict(entry)
        own = {name: entry.pop(name) for name in _CHANNEL_FIELDS if name in entry}
        views = dict(entry.get("views") or {})
        views["channel"] = views.get("channel") or own
        entry["views"] = views
        if views["channel"].get("activation") is None:
            entry["failed"] = True
        filters.append(entry)
    return {**data, "schema": 2, "filters": filters}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 -> 3: an examples view's patches are windows onto their images' shared copies
    (``copy``) instead of files of their own (``image``); a copy that is not there makes the view
    stale, so the next render writes it."""
    filters = []
    for entry in data.get("filters", []):
        examples = entry.get("views", {}).get("examples") if isinstance(entry, dict) else None
        if isinstance(examples, dict):
            sides = {side: [{**{k: v for k, v in p.items() if k != "image"},
                             "copy": copy_path(examples.get("set", ""), p.get("source", ""))}
                            for p in examples.get(side, [])] for side in ("top", "bottom")}
            entry = {**entry, "views": {**entry["views"], "examples": {**examples, **sides}}}
        filters.append(entry)
    return {**data, "schema": 3, "filters": filters}


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 3 -> 4: ``radius90`` (the radius holding 90% of a neuron image's deviation from grey:
    the spread of the parameterization, about the same at every layer; null in other views) is
    dropped. The neuron view's ``effective_radius`` (its gradient's) needs the model, so that view
    is made stale (an empty key): the next render measures it."""
    filters = []
    for entry in data.get("filters", []):
        views = entry.get("views") if isinstance(entry, dict) else None
        if isinstance(views, dict):
            views = {name: {k: v for k, v in record.items() if k != "radius90"} if isinstance(record, dict)
                     else record for name, record in views.items()}
            if isinstance(views.get("neuron"), dict):
                views["neuron"]["key"] = ""
            entry = {**entry, "views": views}
        filters.append(entry)
    return {**data, "schema": 4, "filters": filters}


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}


def _not_a_number(constant: str) -> None:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` in an old manifest are read as: no value."""
    return None


def decode(text: str | bytes, where: str = "manifest") -> Manifest:
    """A manifest's text as a ``Manifest``, migrated to ``SCHEMA``.

    Raises:
        AtlasError: in one line naming ``where`` when it is not JSON, of an unknown schema, or
            has a key missing, unknown or of the wrong type.
    """
    try:
        data = json.loads(text, parse_constant=_not_a_number)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AtlasError(f"{where} is not a readable manifest ({exc})") from exc
    schema = data.get("schema") if isinstance(data, dict) else None
    while schema in MIGRATIONS:
        data = MIGRATIONS[schema](data)
        schema = data["schema"]
    if schema != SCHEMA:
        raise AtlasError(f"{where} has an unknown schema ({schema!r}, expected {SCHEMA} or older)")
    try:
        return msgspec.convert(data, Manifest)
    except msgspec.ValidationError as exc:
        raise AtlasError(f"{where}: malformed manifest: {exc}") from None


def encode(manifest: Manifest) -> bytes:
    """The manifest as ``manifest.json`` holds it: sorted keys, one space of indent, a final newline.

    Raises:
        ValueError: a float in it is not finite (a bug upstream: never written).
    """
    data = msgspec.to_builtins(manifest)
    return (json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def read_manifest(source: Path) -> Manifest:
    """The manifest in the atlas directory ``source``, or in the file ``source``.

    Raises:
        AtlasError: in one line naming the file, when it is missing, unreadable or malformed.
    """
    path = source / MANIFEST if source.is_dir() else source
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise AtlasError(f"no manifest at {path}: run 'filter-atlas render' first") from None
    except OSError as exc:
        raise AtlasError(f"{path} is not a readable manifest ({exc.strerror})") from exc
    return decode(text, str(path))


def finite(value: float) -> float | None:
    """``value`` rounded to 4 decimals as the manifest records numbers; None when not finite."""
    return round(float(value), 4) if math.isfinite(value) else None
