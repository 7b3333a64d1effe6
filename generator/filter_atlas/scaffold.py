"""A new atlas folder for your own model: its ``mkdocs.yml`` (the packaged site configuration)
and its ``[tool.filter-atlas]`` table in ``pyproject.toml``; nothing is overwritten, and a folder
whose ``docs`` holds pages of the user's where the atlas's would go is refused."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import AtlasError
from .pages.write import check_docs
from .store import atomic_write

DOCS = "docs"  # where the atlas's pages go: the template's docs_dir, holding the atlas (docs/atlas)
MKDOCS = "mkdocs.yml"
PYPROJECT = "pyproject.toml"
TEMPLATE = "site_template/mkdocs.yml"


def site_config(name: str) -> str:
    """The packaged MkDocs configuration with ``name`` as the site's name.

    Args:
        name: The site's title, e.g. ``"mynet filter atlas"``.

    Returns:
        The YAML text.
    """
    text = resources.files("filter_atlas").joinpath(TEMPLATE).read_text("utf-8")
    return text.replace("site_name: Filter Atlas\n", f"site_name: {json.dumps(name)}\n", 1)


def toml_table(settings: dict[str, Any]) -> str:
    """``settings`` (strings, integers and lists of strings) as a ``[tool.filter-atlas]`` table."""
    lines = ["[tool.filter-atlas]"]
    for key, value in settings.items():
        if isinstance(value, list):
            lines.append(f"{key} = [{', '.join(json.dumps(str(v)) for v in value)}]")
        else:  # a JSON string or integer is a valid TOML basic string or integer
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def init_folder(folder: Path, name: str, settings: dict[str, Any]) -> list[Path]:
    """Write ``folder/mkdocs.yml`` and the ``[tool.filter-atlas]`` table of ``folder/pyproject.toml``
    (added to a ``pyproject.toml`` that has none); refuse before writing anything if either exists,
    or if ``folder/docs`` holds a file of the user's where the pages would go.

    Args:
        folder: The atlas's folder; made if missing.
        name: The site's title.
        settings: The table's keys and values (paths already relative to ``folder`` or absolute).

    Returns:
        The files written.

    Raises:
        AtlasError: ``folder`` is a file, or already holds ``mkdocs.yml``, a ``[tool.filter-atlas]``
            or pages of the user's (``pages.write.check_docs``).
    """
    if folder.exists() and not folder.is_dir():
        raise AtlasError(f"{folder} is a file, not a folder")
    mkdocs, pyproject = folder / MKDOCS, folder / PYPROJECT
    if mkdocs.exists():
        raise AtlasError(f"{mkdocs} exists: not overwriting it (choose another folder, or run "
                         "`filter-atlas build` there)")
    existing = pyproject.read_text("utf-8") if pyproject.is_file() else ""
    try:
        held = tomllib.loads(existing).get("tool", {}).get("filter-atlas")
    except tomllib.TOMLDecodeError as exc:
        raise AtlasError(f"{pyproject}: not valid TOML ({exc})") from exc
    if held is not None:
        raise AtlasError(f"{pyproject} already has [tool.filter-atlas]: not overwriting it")
    check_docs(folder / DOCS)
    table = toml_table(settings)
    joined = f"{existing.rstrip()}\n\n{table}" if existing.strip() else table
    atomic_write(pyproject, joined.encode("utf-8"))
    atomic_write(mkdocs, site_config(name).encode("utf-8"))
    return [mkdocs, pyproject]
