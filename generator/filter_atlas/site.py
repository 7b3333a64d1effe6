"""``mkdocs build --strict`` from Python, with the docs and site directories and the site's URL
optionally set. The site is built in a folder beside the site directory that replaces it only once
the build succeeds, so a failed build leaves the previous site (or none) as it was; a strict
build's warnings are given in the error."""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from .errors import AtlasError
from .store.files import swap_folder

SHOWN_WARNINGS = 3  # a failed build's message quotes this many of its warnings


class _Warnings(logging.Handler):
    """The warnings MkDocs logs, each on one line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(" ".join(record.getMessage().split()))


def build_site(config_file: Path, docs_dir: Path | None = None, site_dir: Path | None = None,
               site_url: str | None = None) -> Path:
    """Build the site strictly (any warning fails).

    Args:
        config_file: The MkDocs configuration.
        docs_dir: The Markdown pages (default: the configuration's ``docs_dir``).
        site_dir: Where the site goes (default: the configuration's ``site_dir``).
        site_url: Where it will be served, e.g. ``https://user.github.io/filter-atlas/``: 404.html,
            which is served at any depth, then loads its assets from that path.

    Returns:
        The site directory.

    Raises:
        AtlasError: No configuration, or the build failed (with the warnings that failed it).
    """
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    if not config_file.is_file():
        raise AtlasError(f"no MkDocs configuration at {config_file}")
    overrides = {k: str(v.resolve()) for k, v in (("docs_dir", docs_dir), ("site_dir", site_dir)) if v}
    if site_url:
        overrides["site_url"] = site_url
    warnings = _Warnings()
    logger = logging.getLogger("mkdocs")
    logger.addHandler(warnings)
    building = None
    try:
        config = load_config(str(config_file), strict=True, **overrides)
        site = Path(config.site_dir)
        if site.exists() and not site.is_dir():
            raise AtlasError(f"the site directory {site} is a file")
        building = site.with_name(f".{site.name}.building-{uuid.uuid4().hex[:8]}")
        building.mkdir(parents=True)
        config.site_dir = str(building)
        build(config)
        swap_folder(building, site)
    except MkDocsException as exc:
        raise AtlasError(f"mkdocs build failed: {exc.format_message()}{_quoted(warnings.lines)}") from exc
    finally:
        logger.removeHandler(warnings)
        if building and building.exists():
            shutil.rmtree(building)
    return site


def _quoted(lines: list[str]) -> str:
    """The warnings for the error line: ``" (first; second; third; and 2 more)"``, "" for none."""
    if not lines:
        return ""
    more = [f"and {len(lines) - SHOWN_WARNINGS} more"] if len(lines) > SHOWN_WARNINGS else []
    return f" ({'; '.join(lines[:SHOWN_WARNINGS] + more)})"
