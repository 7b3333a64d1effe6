"""Writing the pages: the Jinja environment, every page's Markdown, the site's settings and
navigation (``SITE_CONFIG``, which the user's mkdocs.yml inherits), the assets (the lightbox's
copied from the mkdocs-glightbox package), the derived images (``derived``), and the files in the
docs directory (only those that changed; stale ones removed), never replacing or removing a file of
the user's (``ownership``). Everything the site shows is a file in the docs: it builds the same
with MkDocs and with Zensical, and no plugin adds to it."""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..imaging import THUMB_SIDE
from ..progression import MAX_MEASURED
from ..semantics import category_classes, coarse_categories
from ..store import Manifest, atomic_write, read_manifest, slug
from .arrangement import BLOCKS, arrange
from .chart import depth_chart, progression_chart
from .commands import missing_untrained, recipe_commands, reproduce_commands
from .depth import chance_tail, depth_story
from .derived import dense, derived_images, stretched, webp
from .kernels import kernel_figure, kernel_summary
from .notes import block_note
from .ownership import Record, present, read_record, refuse_foreign, sha256, write_record
from .prose import frequency_summary, neuron_summary
from .search import tile_words
from .statistics import neuron_trend
from .text import activation, html_twice, markdown_text, number, plural, shell, weights_text

PAGES = {name: f"{name}.j2" for name in
         ("index.md", "filters.md", "activation-maximization.md", "progression.md", "reproduce.md",
          "publish.md", "api.md", "naturals.md")}
ASSETS = ("assets/filter-atlas.css", "assets/filter-atlas.js")  # copied from the templates
SITE_CONFIG = ".filter-atlas.yml"  # the site's settings and navigation; a dotfile: not in the site
LIGHTBOX = {"assets/glightbox/glightbox.min.js": "glightbox/glightbox.min.js",  # from mkdocs-glightbox
            "assets/glightbox/glightbox.min.css": "glightbox/glightbox.min.css",
            "assets/glightbox/LICENSE.txt": "glightbox/LICENSE.md"}
COMPACT = 64  # grids with more tiles than this get the compact layout


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("filter_atlas", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(md=markdown_text, html2=html_twice, num=number, act=activation, slug=slug,
                       plural=plural, weights=weights_text, webp=webp, stretched=stretched,
                       words=tile_words, shell=shell)
    env.globals.update(compact=COMPACT, max_measured=MAX_MEASURED, thumb_side=THUMB_SIDE,
                       block_note=block_note, progression_chart=progression_chart, neuron_trend=neuron_trend,
                       frequency_summary=frequency_summary, neuron_summary=neuron_summary,
                       reproduce_commands=reproduce_commands, recipe_commands=recipe_commands,
                       missing_untrained=missing_untrained, depth_chart=depth_chart,
                       depth_story=depth_story, chance_tail=chance_tail,
                       kernel_figure=kernel_figure, kernel_summary=kernel_summary,
                       coarse_count=len(set(coarse_categories().values())), category_classes=category_classes)
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
        pages[block.page] = _titled(gallery.render(atlas=atlas, block=block, root="../"), block.title)
    pages = {rel: _with_lightbox(rel, text) for rel, text in pages.items()}
    templates = resources.files("filter_atlas").joinpath("templates")
    for asset in ASSETS:
        pages[asset] = templates.joinpath(asset.rsplit("/", 1)[1]).read_text("utf-8")
    lightbox = resources.files("mkdocs_glightbox")
    for asset, source in LIGHTBOX.items():
        pages[asset] = lightbox.joinpath(source).read_text("utf-8")
    pages[SITE_CONFIG] = site_config([block.page for block in atlas.blocks])
    return pages


def _titled(text: str, title: str) -> str:
    """A gallery page with its title in its front matter, HTML-escaped: both themes put a page's
    title into its <title> as HTML, and one taken from its heading unescaped (a layer named
    ``</title><script>...`` would run)."""
    line = f"title: {json.dumps(html.escape(title), ensure_ascii=False)}\n"
    if text.startswith("---\n"):
        return "---\n" + line + text[4:]
    return f"---\n{line}---\n\n{text}"


def _with_lightbox(rel: str, text: str) -> str:
    """A page with zoomable images (``class="glightbox"``) ends by loading the lightbox's script,
    deferred (before the page's DOMContentLoaded, when both themes start their components: with
    Zensical's, which starts GLightbox itself, and Material's, where filter-atlas.js does)."""
    if 'class="glightbox"' not in text:
        return text
    script = "../" * rel.count("/") + next(iter(LIGHTBOX))
    return f'{text.rstrip()}\n\n<script src="{script}" defer></script>\n'


def natural_key(name: str) -> list[int | str]:
    """Sorts names with their numbers as numbers: block2 before block10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def site_config(gallery: list[str]) -> str:
    """The site's settings, with the gallery pages (paths relative to the docs) in its navigation,
    in natural order; no gallery section without any."""
    env = Environment(loader=PackageLoader("filter_atlas", "site_template"), trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined)
    return env.get_template("site.yml.j2").render(gallery=sorted(gallery, key=natural_key))


def write_pages(atlas_dir: Path, docs_dir: Path) -> tuple[int, int]:
    """Write the pages and derived images (only those that changed) and remove stale ones (gallery
    pages no longer made, files the last run wrote that this one does not), then record what was
    written.

    Returns:
        (files written or kept, files changed), derived images included.

    Raises:
        AtlasError: A file to replace or remove is the user's (nothing is written then).
    """
    pages = {rel: text.encode("utf-8") for rel, text in render_pages(atlas_dir, docs_dir).items()}
    record = read_record(docs_dir)
    manifest = read_manifest(atlas_dir)
    derived, images = _derived(manifest, atlas_dir, docs_dir, record)
    made = {*pages, *derived}
    stale = [rel for rel in _gallery_pages(docs_dir) if rel not in made]
    prefix = _prefix(atlas_dir, docs_dir)  # an earlier run's derived WebP may be an atlas image now:
    own = {prefix + rel for e in manifest.filters for rel, _ in e.files()}
    stale += [rel for rel in record.hashes() if rel not in made and rel not in stale and rel not in own
              and present(docs_dir / rel)]
    writes = {**pages, **images}
    refuse_foreign(docs_dir, writes, stale)
    changed = 0
    for rel, data in writes.items():
        path = docs_dir / rel
        if not path.is_file() or path.read_bytes() != data:
            atomic_write(path, data)
            path.chmod(0o644)  # published pages: readable by all, like any file in the repository
            changed += 1
    for rel in stale:
        (docs_dir / rel).unlink()
        changed += 1
    write_record(docs_dir, pages, derived)
    return len(made), changed


def _derived(manifest: Manifest, atlas_dir: Path, docs_dir: Path,
             record: Record) -> tuple[dict[str, tuple[str, str]], dict[str, bytes]]:
    """Every derived image of the atlas, by path relative to ``docs_dir``: (sha256, key) of each,
    and the bytes of those to write; an image whose file and key are as recorded is kept."""
    prefix = _prefix(atlas_dir, docs_dir)
    derived: dict[str, tuple[str, str]] = {}
    images: dict[str, bytes] = {}
    for d in derived_images(manifest, atlas_dir):
        rel, key = prefix + d.rel, d.key()
        old, path = record.derived.get(rel), docs_dir / prefix / d.rel
        if old and old[1] == key and path.is_file() and sha256(path.read_bytes()) == old[0]:
            derived[rel] = old
            continue
        images[rel] = d.make()
        derived[rel] = (sha256(images[rel]), key)
    return derived, images


def _prefix(atlas_dir: Path, docs_dir: Path) -> str:
    """The atlas folder relative to ``docs_dir``, with a trailing slash ("" for the same folder)."""
    prefix = atlas_dir.resolve().relative_to(docs_dir.resolve()).as_posix()
    return "" if prefix == "." else prefix + "/"


def check_docs(docs_dir: Path) -> None:
    """Refuse, as ``write_pages`` would, if the pages of a new atlas would replace or remove a
    file of the user's in ``docs_dir`` (any gallery page, whichever blocks the atlas will have)."""
    fixed = dict.fromkeys([*PAGES, *ASSETS, *LIGHTBOX, SITE_CONFIG])
    refuse_foreign(docs_dir, fixed, _gallery_pages(docs_dir))


def _gallery_pages(docs_dir: Path) -> list[str]:
    """The Markdown files in the gallery folder, relative to ``docs_dir``."""
    return [f"{BLOCKS}/{p.name}" for p in sorted((docs_dir / BLOCKS).glob("*.md"))]
