"""What to render: the atlas spec, read from ``[tool.filter-atlas]`` and overridden by CLI flags.

This module has no Keras import, so the command line can pick the backend before Keras loads.
"""

from __future__ import annotations

import os
import sys
import zlib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AtlasError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

WEIGHTS_ENV = "FILTER_ATLAS_WEIGHTS"
VIEWS = ("channel", "negative", "neuron", "diversity", "examples")  # see views.py


def parse_views(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``--views negative,examples`` or a config list -> the views, in ``VIEWS`` order.

    Args:
        text: Comma-separated names or a list; ``all`` for every view.

    Returns:
        The views, always with ``channel`` (the filter's own entry, which the others join);
        an unknown name is an AtlasError.
    """
    names = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    if names == ["all"]:
        return VIEWS
    unknown = [n for n in names if n not in VIEWS]
    if unknown or not names:
        raise AtlasError(f"unknown view {unknown[0]!r} (choose from {', '.join(VIEWS)}, or all)"
                         if unknown else "--views names no view")
    return tuple(v for v in VIEWS if v in names or v == "channel")


@dataclass(frozen=True)
class Selection:
    """Which filters of a layer to render: a seeded sample, an explicit list, or all."""

    sample: int | None = 6
    indices: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> Selection:
        """Parse ``--filters``: ``all`` or a comma list such as ``3,17,21``."""
        if text.strip().lower() == "all":
            return cls(sample=None, indices=None)
        try:
            indices = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise AtlasError(f"--filters must be 'all' or integers like 3,17,21, got {text!r}") from None
        if not indices:
            raise AtlasError("--filters names no filter")
        return cls(sample=None, indices=indices)

    def pick(self, layer: str, n_filters: int, seed: int) -> list[int]:
        """The filter indices for ``layer`` (which has ``n_filters``), sorted and validated."""
        if self.indices is not None:
            bad = [i for i in self.indices if not 0 <= i < n_filters]
            if bad:
                raise AtlasError(
                    f"filter index {bad[0]} out of range for {layer} (0..{n_filters - 1})"
                )
            return sorted(set(self.indices))
        if self.sample is None or self.sample >= n_filters:
            return list(range(n_filters))
        rng = np.random.default_rng([seed, zlib.crc32(layer.encode())])
        return sorted(int(i) for i in rng.choice(n_filters, self.sample, replace=False))

    def describe(self) -> str:
        if self.indices is not None:
            return "filters " + ",".join(map(str, self.indices))
        return "all" if self.sample is None else f"sample {self.sample}"


@dataclass(frozen=True)
class AtlasSpec:
    """Everything that decides which images are rendered and how."""

    model: str = "vgg16"
    weights: str = "imagenet"
    layers: tuple[str, ...] = ()
    selection: Selection = field(default_factory=Selection)
    recipe: str = "lucid"
    size: int = 224
    steps: int | None = None
    seed: int = 0
    out: Path = Path("docs/atlas")
    preprocess: str | None = None
    batch: int = 16
    views: tuple[str, ...] = VIEWS
    views_size: int | None = None  # side of the extra views (negative, neuron, diversity); None: size
    examples: Path | None = None  # folder of natural images; None: the bundled photos

    def validate(self) -> AtlasSpec:
        if self.steps is not None and self.steps <= 0:
            raise AtlasError(f"--steps must be positive, got {self.steps}")
        if self.size <= 0:
            raise AtlasError(f"--size must be positive, got {self.size}")
        if self.batch <= 0:
            raise AtlasError(f"--batch must be positive, got {self.batch}")
        if self.views_size is not None and self.views_size <= 0:
            raise AtlasError(f"--views-size must be positive, got {self.views_size}")
        if self.selection.sample is not None and self.selection.sample <= 0:
            raise AtlasError(f"--sample must be positive, got {self.selection.sample}")
        return self


# Config keys and the Python types they accept.
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "weights": (str,),
    "layers": (list,),
    "sample": (int,),
    "filters": (str, list),
    "recipe": (str,),
    "size": (int,),
    "steps": (int,),
    "seed": (int,),
    "out": (str,),
    "preprocess": (str,),
    "batch": (int,),
    "views": (list, str),
    "views_size": (int,),
    "examples": (str,),
}


def read_config(pyproject: Path) -> dict[str, Any]:
    """The ``[tool.filter-atlas]`` table of ``pyproject`` ({} when the file or table is absent)."""
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AtlasError(f"{pyproject}: not valid TOML ({exc})") from exc
    table = data.get("tool", {}).get("filter-atlas", {})
    if not isinstance(table, dict):
        raise AtlasError(f"{pyproject}: [tool.filter-atlas] must be a table")
    for key, value in table.items():
        if key not in _CONFIG_TYPES:
            raise AtlasError(
                f"{pyproject}: unknown key {key!r} in [tool.filter-atlas] "
                f"(known: {', '.join(sorted(_CONFIG_TYPES))})"
            )
        types = _CONFIG_TYPES[key]
        if not isinstance(value, types) or isinstance(value, bool):
            names = " or ".join(t.__name__ for t in types)
            raise AtlasError(f"{pyproject}: [tool.filter-atlas] {key} must be {names}")
        if key == "layers" and not all(isinstance(v, str) for v in value):
            raise AtlasError(f"{pyproject}: [tool.filter-atlas] layers must be a list of names")
    return table


def build_spec(config: dict[str, Any], overrides: dict[str, Any]) -> AtlasSpec:
    """Merge config and CLI overrides (``None`` means 'not given') into a validated spec.

    Weights precedence: ``--weights`` flag, then ``$FILTER_ATLAS_WEIGHTS``, then the config.
    """
    merged = {**config, **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("weights") is None and os.environ.get(WEIGHTS_ENV):
        merged["weights"] = os.environ[WEIGHTS_ENV]
    selection = _selection(overrides) or _selection(config) or Selection()
    layers = merged.get("layers", ())
    if isinstance(layers, str):
        layers = [part.strip() for part in layers.split(",") if part.strip()]
    known = {f.name for f in fields(AtlasSpec)}
    kwargs = {k: v for k, v in merged.items() if k in known and k not in {"layers", "selection"}}
    for name in ("out", "examples"):
        if kwargs.get(name) is not None:
            kwargs[name] = Path(kwargs[name])
    if "views" in kwargs:
        kwargs["views"] = parse_views(kwargs["views"])
    return replace(AtlasSpec(**kwargs), layers=tuple(layers), selection=selection).validate()


def _selection(source: dict[str, Any]) -> Selection | None:
    """The filter choice one source makes: ``filters`` wins over ``sample``; None if neither."""
    filters = source.get("filters")
    if filters is not None:
        text = ",".join(str(f) for f in filters) if isinstance(filters, list) else filters
        return Selection.parse(text)
    if source.get("sample") is not None:
        return Selection(sample=source["sample"])
    return None
