"""The store: an atlas folder of images and its manifest.

``records`` (the manifest's typed records, msgspec), ``manifest`` (reading with migrations,
writing), ``files`` (atomic writes, the lock), ``merge`` (what two processes saved) and
``store`` (the ``Store``).
"""

from ..naming import slug
from .files import LOCK, atlas_lock, atomic_write
from .manifest import MANIFEST, decode, encode, finite, read_manifest
from .records import (
    LISTED,
    SCHEMA,
    ConvLayerRecord,
    FilterEntry,
    KernelsRecord,
    Manifest,
    ModelRecord,
    NaturalImageRecord,
    NaturalSetRecord,
    RunRecord,
    ShardLabel,
    Views,
)
from .store import Store

__all__ = ["LISTED", "LOCK", "MANIFEST", "SCHEMA", "ConvLayerRecord", "FilterEntry", "KernelsRecord",
           "Manifest", "ModelRecord", "NaturalImageRecord", "NaturalSetRecord", "RunRecord", "ShardLabel",
           "Store", "Views",
           "atlas_lock", "atomic_write", "decode", "encode", "finite", "read_manifest", "slug",
           ]
