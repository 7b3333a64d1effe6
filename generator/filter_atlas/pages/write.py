"""Writing the pages: the Jinja environment, every page's Markdown, and the files in the docs
directory (only those that changed; stale gallery pages removed)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..progression import MAX_MEASURED
from ..store import THUMB_SIDE, atomic_write, read_manifest, slug
from .derived import dense, stretched, webp
from .notes import block_note
from .text import html_twice, markdown_text, number, plural, weights_text
from .view import BLOCKS, build_atlas

PAGES = {name: f"{name}.j2" for name in
         ("index.md", "filters.md", "activation-maximization.md", "progression.md", "reproduce.md",
          "publish.md", "api.md", "naturals.md")}
ASSETS = ("assets/filter-atlas.css", "assets/filter-atlas.js")  # copied from the templates
COMPACT = 64  # grids with more tiles than this get the compact layout


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("filter_atlas", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(md=markdown_text, html2=html_twice, num=number, slug=slug, plural=plural,
                       weights=weights_text, webp=webp, stretched=stretched)
    env.globals.update(compact=COMPACT, max_measured=MAX_MEASURED, thumb_side=THUMB_SIDE,
                       block_note=block_note)
    env.tests["dense"] = dense
    return env


def render_pages(atlas_dir: Path, docs_dir: Path) -> dict[str, str]:
    """Every page's Markdown, by path relative to ``docs_dir``."""
    atlas = build_atlas(read_manifest(atlas_dir), atlas_dir, docs_dir)
    env = _environment()
    pages = {path: env.get_template(template).render(atlas=atlas, root="")
             for path, template in PAGES.items()}
    gallery = env.get_template("block.md.j2")
    for block in atlas.blocks:
        pages[block.page] = gallery.render(atlas=atlas, block=block, root="../")
    templates = resources.files("filter_atlas").joinpath("templates")
    for asset in ASSETS:
        pages[asset] = templates.joinpath(asset.rsplit("/", 1)[1]).read_text("utf-8")
    return pages


def write_pages(atlas_dir: Path, docs_dir: Path) -> tuple[int, int]:
    """Write the pages (only those that changed) and remove stale gallery pages.

    Returns (files written or kept, files changed).
    """
    pages = render_pages(atlas_dir, docs_dir)
    changed = 0
    for rel, text in pages.items():
        path = docs_dir / rel
        data = text.encode("utf-8")
        if not path.is_file() or path.read_bytes() != data:
            atomic_write(path, data)
            path.chmod(0o644)  # published pages: readable by all, like any file in the repository
            changed += 1
    for stale in sorted((docs_dir / BLOCKS).glob("*.md")):
        if f"{BLOCKS}/{stale.name}" not in pages:
            stale.unlink()
            changed += 1
    return len(pages), changed
