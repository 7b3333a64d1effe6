"""``mkdocs build --strict`` from Python, with the docs and site directories and the site's URL
optionally set."""

from __future__ import annotations

from pathlib import Path

from .errors import AtlasError


def build_site(config_file: Path, docs_dir: Path | None = None, site_dir: Path | None = None,
               site_url: str | None = None) -> Path:
    """Build the site strictly (any warning fails); returns the site directory. ``site_url``
    (e.g. ``https://user.github.io/filter-atlas/``) is where it will be served: 404.html, which
    is served at any depth, then loads its assets from that path."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    if not config_file.is_file():
        raise AtlasError(f"no MkDocs configuration at {config_file}")
    overrides = {k: str(v.resolve()) for k, v in (("docs_dir", docs_dir), ("site_dir", site_dir)) if v}
    if site_url:
        overrides["site_url"] = site_url
    try:
        config = load_config(str(config_file), strict=True, **overrides)
        build(config)
    except MkDocsException as exc:
        raise AtlasError(f"mkdocs build failed: {exc.format_message()}") from exc
    return Path(config.site_dir)
