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

from .engine.precision import check as check_precision
from .errors import AtlasError
from .views import NAMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

WEIGHTS_ENV = "FILTER_ATLAS_WEIGHTS"  # the default model's weights file (VGG16's, offline)
DEFAULT_MODEL = "vgg16"
MODEL_FILES = (".keras", ".h5")  # the suffixes of a saved Keras model
MAX_SIDE = 4096  # the largest image side accepted: memory grows with the area, so check first


def parse_size(value: int | str | list[int] | tuple[int, ...], flag: str = "--size") -> tuple[int, int]:
    """``224``, ``"224"``, ``"96x160"``, ``"96,160"`` or ``[96, 160]`` -> (height, width).

    Args:
        value: One side for a square, or height and width.
        flag: How the error names the setting.

    Returns:
        (height, width); anything else, a side below 1 or above ``MAX_SIDE`` is an AtlasError.
    """
    parts: list = [value] if isinstance(value, int) else list(value) if isinstance(value, (list, tuple)) \
        else [p.strip() for p in str(value).lower().replace("x", ",").split(",")]
    try:
        sides = [int(p) for p in parts]
    except (TypeError, ValueError):
        sides = []
    if len(sides) not in (1, 2) or any(isinstance(p, bool) for p in parts):
        raise AtlasError(f"{flag} must be a side such as 224 or height x width such as 96x160, got {value!r}")
    h, w = sides * 2 if len(sides) == 1 else sides
    if min(h, w) <= 0:
        raise AtlasError(f"{flag} must be positive, got {value}")
    if max(h, w) > MAX_SIDE:
        raise AtlasError(f"{flag} {value} is above the maximum side of {MAX_SIDE} px")
    return h, w


def shown_path(path: Path, base: Path) -> str:
    """``path`` as a configuration or command run in ``base`` names it: relative to ``base`` when
    inside it, else absolute."""
    path, base = path.resolve(), base.resolve()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def parse_views(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``--views negative,examples`` or a config list -> the views, in the registry's order (``views.NAMES``).

    Args:
        text: Comma-separated names or a list; ``all`` for every view.

    Returns:
        The views, always with ``channel`` (the filter's own entry, which the others join);
        an unknown name is an AtlasError.
    """
    names = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    if names == ["all"]:
        return NAMES
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise AtlasError(f"unknown view {unknown[0]!r} (choose from {', '.join(NAMES)}, or all)"
                         if unknown else "--views names no view")
    return tuple(v for v in NAMES if v in names or v == "channel")


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

    def notes(self, layer: str, n_filters: int) -> list[str]:
        """What ``pick`` does that the user may not expect, one line each (repeats dropped, a
        sample as large as the layer)."""
        out = []
        if self.indices is not None and len(set(self.indices)) < len(self.indices):
            twice = sorted({i for i in self.indices if self.indices.count(i) > 1})
            out.append(f"--filters names {', '.join(map(str, twice))} more than once; each is rendered once")
        if self.sample is not None and self.sample >= n_filters:
            out.append(f"--sample {self.sample} is not below {layer}'s {n_filters} filters; "
                       "rendering all of them")
        return out

    def describe(self) -> str:
        if self.indices is not None:
            return "filters " + ",".join(map(str, self.indices))
        return "all" if self.sample is None else f"sample {self.sample}"


@dataclass(frozen=True)
class AtlasSpec:
    """Everything that decides which images are rendered and how."""

    model: str = DEFAULT_MODEL
    weights: str = "imagenet"
    layers: tuple[str, ...] = ()
    selection: Selection = field(default_factory=Selection)
    recipe: str = "lucid"
    precision: str = "float32"  # of the model in the optimization step (engine.precision)
    size: tuple[int, int] | None = None  # (height, width); None: the model's own, else 224
    steps: int | None = None
    seed: int = 0
    out: Path = Path("docs/atlas")
    preprocess: str | None = None
    batch: int = 16
    views: tuple[str, ...] = NAMES
    views_size: tuple[int, int] | None = None  # of the extra views (negative, neuron, diversity); None: size
    examples: Path | None = None  # folder of natural images; None: the bundled photos

    def validate(self) -> AtlasSpec:
        if self.steps is not None and self.steps <= 0:
            raise AtlasError(f"--steps must be positive, got {self.steps}")
        if self.seed < 0:
            raise AtlasError(f"--seed must be 0 or more, got {self.seed}")
        if self.batch <= 0:
            raise AtlasError(f"--batch must be positive, got {self.batch}")
        if self.selection.sample is not None and self.selection.sample <= 0:
            raise AtlasError(f"--sample must be positive, got {self.selection.sample}")
        check_precision(self.precision)
        return self


# Config keys and the Python types they accept.
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "weights": (str,),
    "layers": (list,),
    "sample": (int,),
    "filters": (str, list),
    "recipe": (str,),
    "precision": (str,),
    "size": (int, str, list),
    "steps": (int,),
    "seed": (int,),
    "out": (str,),
    "preprocess": (str,),
    "batch": (int,),
    "views": (list, str),
    "views_size": (int, str, list),
    "examples": (str,),
}


def read_config(pyproject: Path, required: bool = False) -> dict[str, Any]:
    """The ``[tool.filter-atlas]`` table of ``pyproject``.

    Args:
        pyproject: The file.
        required: Whether a missing file is an error (a ``--config`` the user named) rather
            than no configuration (the default ``./pyproject.toml``).

    Returns:
        The table; {} when the table is absent (or the file, unless required).
    """
    if not pyproject.is_file():
        if required:
            raise AtlasError(f"--config {pyproject}: no such file")
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
        if key == "layers" and not value:
            raise AtlasError(f"{pyproject}: [tool.filter-atlas] layers names no layer "
                             "(leave it out to render every conv layer)")
        if key in ("size", "views_size"):
            try:
                parse_size(value, key)
            except AtlasError as exc:
                raise AtlasError(f"{pyproject}: [tool.filter-atlas] {exc}") from exc
    return table


def build_spec(config: dict[str, Any], overrides: dict[str, Any]) -> AtlasSpec:
    """Merge config and CLI overrides (``None`` means 'not given') into a validated spec.

    Weights precedence: ``--weights`` flag, then ``$FILTER_ATLAS_WEIGHTS`` (for the default
    model, VGG16, only: it names that model's weights file), then the config.
    """
    merged = {**config, **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("weights") is None and os.environ.get(WEIGHTS_ENV) \
            and str(merged.get("model", DEFAULT_MODEL)).lower() == DEFAULT_MODEL:
        merged["weights"] = os.environ[WEIGHTS_ENV]
    selection = _selection(overrides) or _selection(config) or Selection()
    layers = merged.get("layers", ())
    if isinstance(layers, str):
        layers = [part.strip() for part in layers.split(",") if part.strip()]
        if not layers:
            raise AtlasError("--layers names no layer (leave it out to render every conv layer)")
    known = {f.name for f in fields(AtlasSpec)}
    kwargs = {k: v for k, v in merged.items() if k in known and k not in {"layers", "selection"}}
    for name in ("out", "examples"):
        if kwargs.get(name) is not None:
            kwargs[name] = Path(kwargs[name])
    if "views" in kwargs:
        kwargs["views"] = parse_views(kwargs["views"])
    for name, flag in (("size", "--size"), ("views_size", "--views-size")):
        if kwargs.get(name) is not None:
            kwargs[name] = parse_size(kwargs[name], flag)
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
