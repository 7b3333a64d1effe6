"""The store: an atlas folder of images and its manifest.

``records`` (the manifest's typed records, msgspec), ``manifest`` (reading with migrations,
writing), ``files`` (atomic writes, the lock), ``merge`` (what two processes saved) and
``store`` (the ``Store``).
"""

from ..imaging import THUMB_SIDE, png_bytes, thumbnail, webp_bytes
from ..naming import slug
from .files import LOCK, atlas_lock, atomic_write
from .manifest import MANIFEST, decode, encode, finite, read_manifest
from .records import (
    LISTED,
    SCHEMA,
    ConvLayerRecord,
    FilterEntry,
    Manifest,
    ModelRecord,
    NaturalImageRecord,
    NaturalSetRecord,
    RunRecord,
    ShardLabel,
    Views,
)
from .store import Store

__all__ = ["LISTED", "LOCK", "MANIFEST", "SCHEMA", "THUMB_SIDE", "ConvLayerRecord", "FilterEntry", "Manifest",
           "ModelRecord", "NaturalImageRecord", "NaturalSetRecord", "RunRecord", "ShardLabel", "Store",
           "Views",
           "atlas_lock", "atomic_write", "decode", "encode", "finite", "png_bytes", "read_manifest", "slug",
           "thumbnail", "webp_bytes"]
