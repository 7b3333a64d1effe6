"""Writing the pages: the Jinja environment, every page's Markdown, and the files in the docs
directory (only those that changed; stale gallery pages removed), never replacing or removing a
file of the user's (``ownership``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..imaging import THUMB_SIDE
from ..progression import MAX_MEASURED
from ..store import atomic_write, read_manifest, slug
from .arrangement import BLOCKS, arrange
from .chart import progression_chart
from .commands import missing_untrained, recipe_commands, reproduce_commands
from .derived import dense, stretched, webp
from .notes import block_note
from .ownership import refuse_foreign, write_record
from .prose import frequency_summary, neuron_summary
from .statistics import neuron_trend
from .text import activation, html_twice, markdown_text, number, plural, weights_text

PAGES = {name: f"{name}.j2" for name in
         ("index.md", "filters.md", "activation-maximization.md", "progression.md", "reproduce.md",
          "publish.md", "api.md", "naturals.md")}
ASSETS = ("assets/filter-atlas.css", "assets/filter-atlas.js")  # copied from the templates
COMPACT = 64  # grids with more tiles than this get the compact layout


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("filter_atlas", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(md=markdown_text, html2=html_twice, num=number, act=activation, slug=slug,
                       plural=plural, weights=weights_text, webp=webp, stretched=stretched)
    env.globals.update(compact=COMPACT, max_measured=MAX_MEASURED, thumb_side=THUMB_SIDE,
                       block_note=block_note, progression_chart=progression_chart, neuron_trend=neuron_trend,
                       frequency_summary=frequency_summary, neuron_summary=neuron_summary,
                       reproduce_commands=reproduce_commands, recipe_commands=recipe_commands,
                       missing_untrained=missing_untrained)
    env.tests["dense"] = dense
    return env


def render_pages(atlas_dir: Path, docs_dir: Path) -> dict[str, str]:
    """Every page's Markdown, by path relative to ``docs_dir``."""
    atlas = arrange(read_manifest(atlas_dir), atlas_dir, docs_dir)
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
    """Write the pages (only those that changed) and remove stale gallery pages, then record what
    was written.

    Returns:
        (files written or kept, files changed).

    Raises:
        AtlasError: A file to replace or remove is the user's (nothing is written then).
    """
    pages = {rel: text.encode("utf-8") for rel, text in render_pages(atlas_dir, docs_dir).items()}
    stale = [rel for rel in _gallery_pages(docs_dir) if rel not in pages]
    refuse_foreign(docs_dir, pages, stale)
    changed = 0
    for rel, data in pages.items():
        path = docs_dir / rel
        if not path.is_file() or path.read_bytes() != data:
            atomic_write(path, data)
            path.chmod(0o644)  # published pages: readable by all, like any file in the repository
            changed += 1
    for rel in stale:
        (docs_dir / rel).unlink()
        changed += 1
    write_record(docs_dir, pages)
    return len(pages), changed


def check_docs(docs_dir: Path) -> None:
    """Refuse, as ``write_pages`` would, if the pages of a new atlas would replace or remove a
    file of the user's in ``docs_dir`` (any gallery page, whichever blocks the atlas will have)."""
    refuse_foreign(docs_dir, dict.fromkeys([*PAGES, *ASSETS]), _gallery_pages(docs_dir))


def _gallery_pages(docs_dir: Path) -> list[str]:
    """The Markdown files in the gallery folder, relative to ``docs_dir``."""
    return [f"{BLOCKS}/{p.name}" for p in sorted((docs_dir / BLOCKS).glob("*.md"))]
