"""The ``filter-atlas`` MkDocs plugin (``plugins: [filter-atlas]`` in mkdocs.yml, after
``glightbox``): the atlas's part of the site build.

- A nav entry whose value is a folder (``Gallery: blocks/``) becomes a section holding that
  folder's pages in natural order (block2 before block10), or goes where there are none: the
  gallery pages depend on what the atlas holds, so mkdocs.yml cannot name them.
- Pages without a lightbox image load no lightbox script or styles; where it loads, its script
  is deferred instead of blocking the first paint.
- The theme gets the package's template overrides (``theme/``: the search dialog's accessible
  name), under any ``custom_dir`` of the site's own.
- After the build, every atlas in the docs (a folder with a ``manifest.json``) gets its derived
  images in the site (``pages.derived``: WebP copies, stretched keras-vis images), and the
  search index gets one entry per tile (``pages.search``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mkdocs.plugins import BasePlugin, event_priority

from .pages.arrangement import arrange
from .pages.derived import write_derived
from .pages.search import tile_entries
from .store import MANIFEST, read_manifest

THEME = Path(__file__).parent / "theme"
_LIGHTBOX_SCRIPT = re.compile(r'<script src="([^"]*glightbox\.min\.js)"></script>')
_LIGHTBOX_INIT = '<script id="init-glightbox">'
_LIGHTBOX_STYLE = re.compile(r'<link href="([^"]*glightbox\.min\.css)" rel="stylesheet">')
_ID = re.compile(r'\sid="([^"]+)"')


def natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def expand(nav: list[Any], docs_dir: Path) -> list[Any]:
    """``nav`` with every ``{title: "folder/"}`` item replaced by a section of the folder's pages
    (left out where it has none)."""
    out: list[Any] = []
    for item in nav:
        if isinstance(item, dict) and len(item) == 1:
            (title, value), = item.items()
            if isinstance(value, str) and value.endswith("/"):
                pages = sorted((docs_dir / value).glob("*.md"), key=lambda p: natural_key(p.name))
                if not pages:  # an atlas with nothing rendered yet: no empty section
                    continue
                value = [f"{value}{p.name}" for p in pages]
            elif isinstance(value, list):
                value = expand(value, docs_dir)
            out.append({title: value})
        else:
            out.append(item)
    return out


def defer_lightbox(html: str) -> str:
    """The lightbox script deferred, and its start-up code run after it (a module script runs
    after the deferred scripts before it, in document order); its styles, needed only once an
    image is opened, loaded without holding up the first paint."""
    html = _LIGHTBOX_STYLE.sub(
        r"""<link href="\1" rel="stylesheet" media="print" onload="this.media='all'">"""
        r'<noscript><link href="\1" rel="stylesheet"></noscript>', html)
    html = _LIGHTBOX_SCRIPT.sub(r'<script src="\1" defer></script>', html)
    return html.replace(_LIGHTBOX_INIT, '<script id="init-glightbox" type="module">')


def atlases(docs_dir: Path) -> list[Path]:
    """The atlas folders inside the docs."""
    return sorted(p.parent for p in docs_dir.rglob(MANIFEST))


def anchored(site: Path, entries: list[dict[str, str]]) -> list[dict[str, str]]:
    """The entries whose anchor is on their built page (the pages may be another atlas's)."""
    ids: dict[str, set[str]] = {}
    for e in entries:
        page = e["location"].partition("#")[0]
        if page not in ids:
            path = site / page
            ids[page] = set(_ID.findall(path.read_text("utf-8"))) if path.is_file() else set()
    return [e for e in entries if e["location"].partition("#")[2] in ids[e["location"].partition("#")[0]]]


class AtlasPlugin(BasePlugin):
    """The gallery navigation, the theme overrides, the lightbox only where it is used, and the
    derived images and tile search entries after the build."""

    def on_config(self, config: Any) -> Any:
        if config.nav:
            config.nav = expand(config.nav, Path(config.docs_dir))
        config.theme.dirs.insert(1 if config.theme.custom_dir else 0, str(THEME))
        return config

    def on_page_content(self, html: str, page: Any, **_: Any) -> str:
        if 'class="glightbox"' not in html:
            page.meta["glightbox"] = False  # mkdocs-glightbox then adds nothing to the page
        return html

    @event_priority(-100)  # after mkdocs-glightbox has added its tags
    def on_post_page(self, output: str, **_: Any) -> str:
        return defer_lightbox(output)

    @event_priority(-100)  # after the search plugin has written its index
    def on_post_build(self, config: Any) -> None:
        docs, site = Path(config.docs_dir), Path(config.site_dir)
        entries = []
        for atlas_dir in atlases(docs):
            manifest = read_manifest(atlas_dir)
            write_derived(manifest, atlas_dir, site / atlas_dir.relative_to(docs))
            entries += anchored(site, tile_entries(arrange(manifest, atlas_dir, docs)))
        index = site / "search/search_index.json"
        if entries and index.is_file():
            data = json.loads(index.read_text("utf-8"))
            data["docs"] += entries
            index.write_text(json.dumps(data, separators=(",", ":")), "utf-8")
