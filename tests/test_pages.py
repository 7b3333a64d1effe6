"""The site: Markdown pages from the manifest, escaping and sanitizing, determinism, the measured
progression, and strict MkDocs builds of the committed atlas and of a full-size synthetic one."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import markdown
import numpy as np
import pytest
import yaml
from filter_atlas.errors import AtlasError
from filter_atlas.imaging import png_bytes
from filter_atlas.pages import markdown_text, render_pages, shell, write_pages
from filter_atlas.pages.derived import contrast, derived_files, derived_images, stretched
from filter_atlas.pages.ownership import read_record, sha256
from filter_atlas.pages.text import activation, number
from filter_atlas.pages.write import LIGHTBOX, SITE_CONFIG
from filter_atlas.progression import MAX_MEASURED, Panel, Series, chart_svg, image_stats, layer_stats
from filter_atlas.scaffold import site_config
from filter_atlas.site import build_site
from filter_atlas.store import read_manifest, slug
from filter_atlas.store.evidence import evidence_path, read_evidence
from PIL import Image

from .conftest import REPO, VGG16_LAYERS, grating, write_atlas

MKDOCS = REPO / "mkdocs.yml"
EVIL_LAYER = "<script>alert(1)</script>"
EVIL_MODEL = "<img src=x onerror=alert(2)>"
TRAVERSAL = "../../x"
MARKDOWNY = "a|b*c_[d](e)#f `g` {h} \\i"
PROJECT_URL = "https://user.github.io/filter-atlas/"  # a GitHub Pages project site: served under a path


class Html(HTMLParser):
    """The tags (with attributes), element ids and text of one built page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if "id" in a}


def build(docs: Path, site: Path) -> dict[str, Html]:
    """Pages + strict build; every page parsed, by path relative to the site."""
    write_pages(docs / "atlas", docs)
    build_site(MKDOCS, docs, site)
    return {p.relative_to(site).as_posix(): Html(p.read_text("utf-8")) for p in sorted(site.rglob("*.html"))}


def check_site(site: Path, pages: dict[str, Html], base: str = "/") -> None:
    """No asset from another host; every local link, anchor and high-density or WebP source
    resolves (``base``: the path the site is served under); every image has alt text; gallery
    images are lazy thumbnails that open the full-size image; the lightbox's script loads, deferred,
    only where there is something to zoom."""
    for name, page in pages.items():
        for tag, attrs in page.tags:
            url = attrs.get("src") if tag in ("script", "img", "iframe", "source") else \
                attrs.get("href") if tag == "link" and attrs.get("rel") != "canonical" else None
            assert not url or not re.match(r"(https?:)?//", url), f"{name}: external asset {url}"
            if tag == "img":
                assert attrs.get("alt", "").strip(), f"{name}: image without alt text: {attrs}"
            sources = [u.split()[0] for u in attrs.get("srcset", "").split(", ") if u]
            for url in filter(None, [attrs.get("href") or attrs.get("src"), *sources]):
                if tag not in ("a", "img", "link", "script", "source") or re.match(r"[a-z]+:|//", url):
                    continue
                path, _, anchor = url.partition("#")
                target = site / path.removeprefix(base) if path.startswith("/") else \
                    (site / name).parent / path if path else site / name
                assert target.resolve().is_file(), f"{name}: broken link {url}"
                if anchor and target.suffix == ".html":
                    key = target.resolve().relative_to(site.resolve()).as_posix()
                    assert anchor in pages[key].ids, f"{name}: missing anchor {url}"
        tiles = [a for tag, a in page.tags if tag == "figure" and "fa-tile" in a.get("class", "")]
        units = [a for tag, a in page.tags if tag == "section" and "fa-unit" in a.get("class", "")]
        crops = [a for tag, a in page.tags if tag == "img" and "atlas/naturals/" in a["src"]]
        images = [a for tag, a in page.tags if tag == "img" and "atlas/" in a["src"] and a not in crops]
        assert all(c.get("loading") == "lazy" for c in crops), name
        cards = [a for tag, a in page.tags if tag == "div" and a.get("class") == "fa-card"]
        if name.startswith("blocks/") and cards:
            # A layer page with evidence: every filter of the layer has one card and one stable
            # anchor, its heading's, whether or not it has rendered images.
            layer = Path(name).stem
            anchors = {i for i in page.ids if re.fullmatch(rf"{re.escape(layer)}-\d+", i)}
            assert anchors == {f"{layer}-{k}" for k in range(len(cards))}
            assert not {t.get("id") for t in tiles + units} & anchors  # other variants' tiles: their own
            assert all(i.get("loading") == "lazy" for i in images)
        elif name.startswith("blocks/"):
            # Every filter has one stable anchor: its tile's, or its unit panel's (one tile each).
            anchored = [t for t in tiles if "id" in t] + units
            assert len({a["id"] for a in anchored}) == len(anchored) == len(tiles) > 0
            assert all(i.get("loading") == "lazy" for i in images)
        zooms = [a["href"] for tag, a in page.tags if tag == "a" and a.get("class") == "glightbox"]
        patches = [c for c in crops if " natural patch " in c["alt"]]  # a unit panel's: zoomable
        assert len(zooms) == len(images) + len(patches) and not any("/thumbs/" in z for z in zooms)
        lightbox = [a for tag, a in page.tags if tag == "script" and "glightbox" in a.get("src", "")]
        assert len(lightbox) == (1 if zooms else 0) and all("defer" in a for a in lightbox), name


@pytest.fixture
def docs(tmp_path) -> Path:
    return tmp_path / "docs"


def test_committed_pages_are_fresh_and_build_strictly(tmp_path):
    atlas = REPO / "docs/atlas"
    if not (atlas / "manifest.json").is_file():
        pytest.skip("no committed atlas")
    pages = render_pages(atlas, REPO / "docs")
    # The lightbox's files are the installed mkdocs-glightbox's, whichever version that is: present.
    stale = [rel for rel, text in pages.items() if not (REPO / "docs" / rel).is_file()
             or (rel not in LIGHTBOX and (REPO / "docs" / rel).read_text("utf-8") != text)]
    assert not stale, f"run 'filter-atlas pages': {stale} differ from the committed manifest"
    # The derived images are committed, each made from the images it shows as they are now.
    record = read_record(REPO / "docs")
    derived = {f"atlas/{d.rel}": d.key() for d in derived_images(read_manifest(atlas), atlas)}
    assert derived and {rel: key for rel, (_, key) in record.derived.items()} == derived, \
        "run 'filter-atlas pages'"
    assert all(sha256((REPO / "docs" / rel).read_bytes()) == record.derived[rel][0] for rel in derived)
    committed = {p.relative_to(REPO / "docs").as_posix() for p in (REPO / "docs/blocks").glob("*.md")}
    assert committed == {rel for rel in pages if rel.startswith("blocks/")}
    # The repository's docs, as a clone has them, built for a GitHub Pages project site.
    site = build_site(MKDOCS, site_dir=tmp_path / "site", site_url=PROJECT_URL)
    built = {p.relative_to(site).as_posix(): Html(p.read_text("utf-8")) for p in site.rglob("*.html")}
    check_site(site, built, "/filter-atlas/")
    styles = [a["href"] for tag, a in built["404.html"].tags if a.get("rel") == "stylesheet"]
    assert styles and all(href.startswith("/filter-atlas/assets/") for href in styles)
    manifest = read_manifest(atlas)
    live = [e for e in manifest.filters if not e.dead]
    images = {a["src"].rsplit("/atlas/", 1)[-1] for name, page in built.items() if name.startswith("blocks/")
              for tag, a in page.tags if tag == "img"}
    shown = {e.thumbnail for e in live} | {stretched(e.thumbnail) for e in live if e.recipe == "keras-vis"}
    for v in (e.views for e in manifest.filters if e.views):  # the unit panels
        # A shot that ended no better than its start is labelled failed and shows no image.
        shown |= {v.negative.thumbnail} if v.negative and (
            v.negative.activation < v.negative.start_activation) else set()
        shown |= {v.neuron.thumbnail} if v.neuron and (
            v.neuron.activation > v.neuron.start_activation) else set()
        shown |= {t for t, a in zip(v.diversity.thumbnails, v.diversity.activations, strict=True)
                  if a >= v.channel.activation / 3} if v.diversity else set()  # under a third: failed
        shown |= {p.copy for p in (*v.examples.top, *v.examples.bottom)} if v.examples else set()
    evidence = read_evidence(evidence_path(atlas, "vgg16"))
    if evidence:  # the cards: each filter's top 4 patches, drawn from the set's copies
        shown |= {evidence.images[i].copy for layer in evidence.layers for top in layer.top.image
                  for i in top[:4]}
    assert images == shown

    # Gallery tiles: the WebP thumbnail at 1x and the WebP image at 2x, which the lightbox opens.
    srcsets = {a.get("srcset") for name, page in built.items() if name.startswith("blocks/")
               for tag, a in page.tags if tag == "img"}
    assert all(e.image.endswith(".webp") and f"../atlas/{e.thumbnail}, ../atlas/{e.image} 2x" in srcsets
               for e in live)

    # The lightbox only where a page zooms, and never in the way of the first paint: its script
    # deferred, its styles added by filter-atlas.js (deferred too) once the page is there.
    gallery = (site / "blocks/block1_conv1.html").read_text("utf-8")
    assert "glightbox" not in (site / "filters.html").read_text("utf-8")
    assert re.search(r'<script src="\.\./assets/glightbox/glightbox\.min\.js" defer></script>', gallery)
    assert not re.search(r"<link[^>]*glightbox", gallery) and "init-glightbox" not in gallery
    assert re.search(r'<script src="\.\./assets/filter-atlas\.js" defer></script>', gallery)
    assert (site / "assets/glightbox/LICENSE.txt").is_file() and not (site / SITE_CONFIG).exists()


def test_committed_pages_say_what_the_manifest_measures():
    atlas = REPO / "docs/atlas"
    if not (atlas / "manifest.json").is_file():
        pytest.skip("no committed atlas")
    pages = render_pages(atlas, REPO / "docs")
    manifest = read_manifest(atlas)
    # Counted nouns are spelled out.
    assert not [rel for rel, text in pages.items() if rel.endswith(".md") and "(s)" in text]
    assert "ImageNet \\(local copy: vgg16\\_imagenet\\_notop\\.h5\\)" in pages["index.md"]
    assert "file:" not in pages["index.md"] + pages["reproduce.md"]
    model = manifest.models["vgg16"]
    assert model.weights_file_sha256 and model.weights_file_sha256 != model.weights_sha256
    for digest in (model.weights_sha256, model.weights_file_sha256):
        assert f"<code>{digest}</code>" in pages["reproduce.md"]
    assert "byte-identical image files" in pages["reproduce.md"] and "same machine" in pages["reproduce.md"]
    # Every address given as an example exists: the home page's and the README's.
    anchors = {f"blocks/{e.layer}.html#{e.layer}-{e.index}" for e in manifest.filters}
    text = pages["index.md"] + (REPO / "README.md").read_text()
    examples = re.findall(r"blocks/block\d_conv\d\.html#[\w-]+", text)
    assert examples and set(examples) <= anchors, set(examples) - anchors
    # A block's intro gives the receptive field of the layer shown, not the block's range.
    block3 = pages["blocks/block3_conv2.md"]
    field = manifest.models["vgg16"].layers[[r.name for r in manifest.models["vgg16"].layers].index(
        "block3_conv2")].receptive_field
    assert f"a receptive field of {field} pixels" in block3 and "24 to 40" not in block3
    # keras-vis images: the standardization said, with the measured spread, and a stretched copy.
    assert "standard deviation of 0.1 around grey" in pages["blocks/block2_conv1.md"]
    assert re.search(r"standard deviation\s+0\.\d+ on a 0\W1 scale", pages["blocks/block2_conv1.md"])
    assert "0016-keras-vis-stretched.webp" in pages["blocks/block2_conv1.md"]
    # Render commands are on the reproduce page, not in the story.
    assert "```bash" not in pages["progression.md"] + pages["activation-maximization.md"]


def test_search_indexes_what_the_pages_say(docs, tmp_path):
    write_atlas(docs / "atlas", {"block5_conv1": [0, 7], "block1_conv1": [3]})
    pages = build(docs, tmp_path / "site")
    index = json.loads((tmp_path / "site/search/search_index.json").read_text())
    assert "stemmer" not in index["config"]["pipeline"]  # queries are wildcards: never stemmed
    # Every entry is a page or a heading of one: nothing is added to the index after the build.
    for d in index["docs"]:
        page, _, anchor = d["location"].partition("#")
        assert page in pages and (not anchor or anchor in pages[page].ids), d["location"]
    layer = [d for d in index["docs"] if d["location"].startswith("blocks/block5_conv1.html")]
    assert any(d["title"] == "block5_conv1" and "blobs like eyes and faces" in d["text"] for d in layer)
    assert any("#7" in d["text"].split() for d in layer)  # its tiles, each word apart


def test_derived_images_are_webp_and_stretched_keras_vis(tmp_path):
    ramp = np.linspace(-1, 1, 224)[None, :, None] * np.ones((224, 1, 3))
    faint = np.round(127.5 + 44 * ramp).astype("uint8")  # grey, standard deviation 0.1 of the range
    (tmp_path / "kv.png").write_bytes(png_bytes(faint))
    (tmp_path / "kv-t.png").write_bytes(png_bytes(faint[::2, ::2]))
    (tmp_path / "small.png").write_bytes(png_bytes(faint[:64, :64]))
    c = contrast(tmp_path / "kv.png")
    assert c.std == pytest.approx(0.1, abs=0.005) and c.gains[0] > 2.5

    def entry(image: str, thumbnail: str, size: int, recipe: str) -> object:
        return type("Entry", (), {"image": image, "thumbnail": thumbnail, "size": size, "recipe": recipe})

    manifest = type("Manifest", (), {"filters": [entry("kv.png", "kv-t.png", 224, "keras-vis"),
                                                 entry("small.png", "kv-t.png", 64, "lucid")]})
    files = dict(derived_files(manifest, tmp_path))
    # The 64 px image is no high-density source of its 112 px thumbnail: no WebP of it.
    assert sorted(files) == ["kv-stretched.webp", "kv-t-stretched.webp", "kv-t.webp", "kv.webp"]
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert Image.open(tmp_path / name).format == "WEBP"
    for name in ("kv-stretched.webp", "kv-t-stretched.webp"):
        out = np.asarray(Image.open(tmp_path / name), dtype=float)
        assert np.percentile(out, 1) < 20 and np.percentile(out, 99) > 235  # the full range, not 0.1 of it


def test_full_vgg16_atlas_builds_strictly_within_a_minute(docs, tmp_path):
    write_atlas(docs / "atlas", {name: list(range(n)) for name, n, _, _ in VGG16_LAYERS}, size=64)
    began = time.perf_counter()
    pages = build(docs, tmp_path / "site")
    seconds = time.perf_counter() - began
    assert seconds < 60, f"pages + mkdocs build took {seconds:.0f} s"
    block5 = pages["blocks/block5_conv3.html"]
    tiles = [a["id"] for tag, a in block5.tags if tag == "figure" and "fa-tile" in a.get("class", "")]
    assert len(tiles) == 512 and tiles[0] == "block5_conv3-0" and tiles[-1] == "block5_conv3-511"
    grids = [a["class"] for tag, a in block5.tags if tag == "div" and "fa-grid" in a.get("class", "")]
    assert grids == ["fa-grid fa-compact"]
    assert sorted(pages) == sorted(["404.html", "index.html", "filters.html", "activation-maximization.html",
                                    "progression.html", "publish.html", "reproduce.html", "api.html",
                                    "naturals.html"]
                                   + [f"blocks/{name}.html" for name, _, _, _ in VGG16_LAYERS])
    check_site(tmp_path / "site", pages)
    index = json.loads((tmp_path / "site/search/search_index.json").read_text())
    assert any(d["location"].startswith("blocks/block5_conv3.html") for d in index["docs"])


def test_user_names_are_escaped_and_files_stay_inside_docs(docs, tmp_path):
    layers = {EVIL_LAYER: [0, 1], TRAVERSAL: [2], MARKDOWNY: [3]}
    write_atlas(docs / "atlas", layers, variants=((EVIL_MODEL, "lucid"), ("vgg16", "lucid")))
    before = {p for p in tmp_path.rglob("*")}
    pages = build(docs, tmp_path / "site")
    written = {p for p in tmp_path.rglob("*")} - before
    assert written and all(p.resolve().is_relative_to(tmp_path.resolve()) for p in written)
    assert {p.relative_to(docs).as_posix() for p in written if p.is_relative_to(docs)
            and p.suffix == ".md" and "blocks" in p.parts} == {f"blocks/{slug(n)}.md" for n in layers}
    assert all(p.is_relative_to(docs) or p.is_relative_to(tmp_path / "site") for p in written)

    check_site(tmp_path / "site", pages)
    for name, page in pages.items():
        raw = (tmp_path / "site" / name).read_text("utf-8")
        assert EVIL_LAYER not in raw and EVIL_MODEL not in raw, name
        assert not any("onerror" in attrs for _, attrs in page.tags), name
        for _, attrs in page.tags:  # GLightbox inserts titles as HTML: they must stay text after that
            if "data-title" in attrs:
                assert "<" not in attrs["data-title"], attrs["data-title"]
    gallery = pages[f"blocks/{slug(EVIL_LAYER)}.html"]
    headings = "".join(gallery.text)
    assert EVIL_LAYER in headings and EVIL_MODEL in headings
    for name in (TRAVERSAL, MARKDOWNY):
        text = "".join(pages[f"blocks/{slug(name)}.html"].text)
        assert name in text
    reproduce = "".join(pages["reproduce.html"].text)
    assert shell(EVIL_LAYER) in reproduce and shell(MARKDOWNY) in reproduce


def test_markdown_text_renders_names_literally():
    md = markdown.Markdown(extensions=["tables", "attr_list", "md_in_html", "toc"])
    for name in (EVIL_LAYER, EVIL_MODEL, TRAVERSAL, MARKDOWNY, "**bold** _x_ &amp; <b>", "1. item", "# h"):
        text = markdown_text(name)
        html = md.reset().convert(f"## {text} {{ #anchor }}\n\n| a |\n|---|\n| {text} |")
        parsed = Html(html)
        assert [t for t, _ in parsed.tags] == ["h2", "table", "thead", "tr", "th", "tbody", "tr", "td"], html
        assert "".join(parsed.text).split("\n").count(name) == 2, html
    assert markdown_text("a\nb\x00c") == "a b c"


def test_shell_words_round_trip():
    for arg in ("block1_conv1", EVIL_LAYER, TRAVERSAL, MARKDOWNY, "it's", ""):
        assert shlex.split(shell(arg)) == [arg]
    odd = "a\nb'c\\d\te"
    assert "\n" not in shell(odd)
    echoed = subprocess.run(["bash", "-c", f"printf %s {shell(odd)}"], capture_output=True, text=True)
    assert echoed.stdout == odd


def test_pages_are_deterministic_and_rewritten_only_when_changed(docs):
    layers = {"block1_conv1": [0, 1], "block2_conv1": [4], "block3_conv1": [7]}
    write_atlas(docs / "atlas", layers, legacy=True)
    first = render_pages(docs / "atlas", docs)
    assert render_pages(docs / "atlas", docs) == first
    # An atlas of PNGs (rendered before every view was WebP): the four filters' PNG thumbnails get a
    # WebP each (their 32 px images are no 2x source).
    assert write_pages(docs / "atlas", docs) == (len(first) + 4, len(first) + 4)
    webps = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.webp"))
    assert len(webps) == 4 and all("/thumbs/" in w for w in webps)
    assert write_pages(docs / "atlas", docs) == (len(first) + 4, 0)
    (docs / webps[0]).unlink()  # a derived image lost: made again, the others kept
    assert write_pages(docs / "atlas", docs) == (len(first) + 4, 1) and (docs / webps[0]).is_file()
    shutil.rmtree(docs / "atlas")
    write_atlas(docs / "atlas", {"block1_conv1": [0, 1]}, legacy=True)
    assert write_pages(docs / "atlas", docs)[1] > 0
    assert sorted(p.name for p in (docs / "blocks").iterdir()) == ["block1_conv1.md"]  # block2 and 3 removed
    assert len(list(docs.rglob("*.webp"))) == 2  # and their derived images
    # Rendered again as WebP, the images take the names of the WebPs derived before: they are the
    # atlas's own now, neither removed as stale nor refused as the user's, and nothing is derived.
    shutil.rmtree(docs / "atlas")
    write_atlas(docs / "atlas", {"block1_conv1": [0, 1]})
    own = {docs / "atlas" / rel for e in read_manifest(docs / "atlas").filters for rel, _ in e.files()}
    assert own == set(docs.rglob("*.webp")) and len(own) == 4
    write_pages(docs / "atlas", docs)
    assert own == set(docs.rglob("*.webp")) and not read_record(docs).derived


def test_untrained_row_recipe_comparison_and_dead_filters(docs):
    layers = {"block1_conv1": [1, 5], "block4_conv1": [300]}
    dead = frozenset({("vgg16", "block4_conv1", 300)})
    write_atlas(docs / "atlas", layers, dead=dead)
    pages = render_pages(docs / "atlas", docs)
    assert ("filter-atlas render --model vgg16 --weights random --recipe lucid \\\n"
            "    --layers block1_conv1 --filters 1,5 --size 32 --seed 0 --steps 8 --views channel") in \
        pages["reproduce.md"]
    assert ("--recipe keras-vis \\\n"
            "    --layers block4_conv1 --filters 300 --size 32 --seed 0 --views channel\n") in \
        pages["reproduce.md"]
    for story in ("progression.md", "activation-maximization.md"):
        assert "filter-atlas render" not in pages[story] and "reproduce.md#not-rendered-yet" in pages[story]
    tile = re.search(r'<figure class="fa-tile fa-dead" id="block4_conv1-300">.*?</figure>',
                     pages["blocks/block4_conv1.md"])
    assert tile and "<img" not in tile.group() and '<span class="fa-label">dead</span>' in tile.group()

    write_atlas(docs / "atlas", layers, dead=dead, variants=(
        ("vgg16", "lucid"), ("vgg16", "keras-vis"), ("vgg16-untrained", "lucid")))
    pages = render_pages(docs / "atlas", docs)
    progression, comparison = pages["progression.md"], pages["activation-maximization.md"]
    assert "## Not rendered yet" not in pages["reproduce.md"]
    assert "not-rendered-yet" not in progression + comparison
    # Block 1's best filter (activation / natural photo) and its twin; block 4's is dead: no row.
    assert re.findall(r'href="blocks/(block\d_conv\d\.html#[\w-]+)"', progression) == [
        "block1_conv1.html#block1_conv1-1", "block1_conv1.html#block1_conv1-1-vgg16-untrained-lucid"]
    assert "untrained</span>" in progression
    assert re.findall(r'href="blocks/(block\d_conv\d\.html#[\w-]+)"', comparison) == [
        "block1_conv1.html#block1_conv1-1", "block1_conv1.html#block1_conv1-1-vgg16-keras-vis",
        "block1_conv1.html#block1_conv1-5", "block1_conv1.html#block1_conv1-5-vgg16-keras-vis",
        "block4_conv1.html#block4_conv1-300", "block4_conv1.html#block4_conv1-300-vgg16-keras-vis"]
    gallery = pages["blocks/block1_conv1.md"]
    assert gallery.index('id="block1_conv1-1"') < gallery.index("## vgg16 · keras\\-vis") < \
        gallery.index("## vgg16\\-untrained · lucid (untrained)")
    assert "fa-label\">untrained" in gallery.split("## vgg16\\-untrained")[1]


def test_manifests_that_cannot_be_published_are_refused(docs, tmp_path):
    write_atlas(docs / "atlas", {"block1_conv1": [0]})
    with pytest.raises(AtlasError, match="inside the docs directory"):
        render_pages(docs / "atlas", tmp_path / "elsewhere")
    manifest = json.loads((docs / "atlas/manifest.json").read_text())
    for image, message in (("../../outside.png", "leaves the atlas directory"),
                           ("/etc/passwd", "leaves the atlas directory"),
                           ("vgg16/block1_conv1/9999-lucid.png", "missing")):
        manifest["filters"][0]["views"]["channel"]["image"] = image  # schema 2: the channel view's image
        (docs / "atlas/manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(AtlasError, match=message):
            render_pages(docs / "atlas", docs)
    (docs / "atlas/manifest.json").write_text('{"schema": 1, "filters": [{"model": "m"}]}')
    with pytest.raises(AtlasError, match="malformed manifest"):
        render_pages(docs / "atlas", docs)


def test_build_is_strict_and_a_failed_build_keeps_the_previous_site(docs, tmp_path):
    write_atlas(docs / "atlas", {"block1_conv1": [0]})
    write_pages(docs / "atlas", docs)
    site = build_site(MKDOCS, docs, tmp_path / "site")
    (site / "mine.txt").write_text("kept")  # a clean build would remove it
    before = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    (docs / "index.md").write_text((docs / "index.md").read_text() + "\n[gone](missing.md)\n")
    with pytest.raises(AtlasError, match="strict mode") as failed:
        build_site(MKDOCS, docs, site)
    assert "\n" not in str(failed.value) and "contains a link 'missing.md'" in str(failed.value)
    assert {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    shutil.rmtree(site)
    with pytest.raises(AtlasError, match="strict mode"):
        build_site(MKDOCS, docs, site)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]  # no site, and no half-built one


def test_empty_manifest_builds(docs, tmp_path):
    (docs / "atlas").mkdir(parents=True)
    (docs / "atlas/manifest.json").write_text('{"schema": 1, "runs": {}, "filters": []}')
    pages = build(docs, tmp_path / "site")
    check_site(tmp_path / "site", pages)
    assert "Nothing rendered yet" in "".join(pages["index.html"].text)


def test_numbers_that_are_not_finite_and_failed_filters(docs, tmp_path):
    assert [number(v) for v in (None, float("nan"), float("inf"), -float("inf"), 123.4, 12.34, 1.234)] == \
        ["\N{EN DASH}", "n/a", "n/a", "n/a", "123", "12.3", "1.23"]
    assert number(float("nan"), 3) == "n/a" and number(0.5, 3) == "0.500"
    assert [activation(v) for v in (None, float("nan"), float("inf"), 12.34)] == ["failed"] * 3 + ["12.3"]
    # Filter 1 failed (no image, activation NaN, which schema 1 wrote); filter 2's photos failed.
    (docs / "atlas/vgg16").mkdir(parents=True)
    (docs / "atlas/vgg16/2.png").write_bytes(png_bytes(grating(4, 1, 32)))

    def entry(index: int, image: str | None, activation: str, natural: str) -> str:
        image_json = json.dumps(image)
        return (f'{{"model": "vgg16", "layer": "block1_conv1", "index": {index}, "recipe": "lucid", '
                f'"image": {image_json}, "thumbnail": {image_json}, "steps": 8, "size": 32, "seed": 0, '
                f'"start_activation": 0.5, "activation": {activation}, "natural_activation": {natural}, '
                f'"dead": false, "trained": true, "seconds": 0.1, "key": "k{index}", "sha256": null, '
                f'"run": "run0"}}')

    (docs / "atlas/manifest.json").write_text(
        '{"schema": 1, "runs": {"run0": {"backend": "tensorflow", "device": "cpu", "versions": {}}}, '
        f'"filters": [{entry(1, None, "NaN", "4.0")}, {entry(2, "vgg16/2.png", "12.34", "NaN")}]}}')
    pages = build(docs, tmp_path / "site")
    check_site(tmp_path / "site", pages)
    markdown = render_pages(docs / "atlas", docs)
    assert not [rel for rel, text in markdown.items() if re.search(r"\bnan\b", text, re.I)]
    tiles = dict(re.findall(r'<figure class="fa-tile[^"]*" id="block1_conv1-(\d)">(.*?)</figure>',
                            markdown["blocks/block1_conv1.md"]))
    said = {k: re.sub(r"<[^>]+>", "", v) for k, v in tiles.items()}  # what the tiles say
    assert "<img" not in tiles["1"] and ">failed</div>" in tiles["1"]
    assert "mean failed / photo 4.00" in said["1"]
    assert "mean 12.3 / photo failed" in said["2"] and "fa-beats" not in tiles["2"]
    text = " ".join("".join(pages["blocks/block1_conv1.html"].text).split())
    assert "#1 mean failed / photo 4.00" in text and "#2 mean 12.3 / photo failed" in text


def test_manifest_without_models_section_still_publishes(docs, tmp_path):
    write_atlas(docs / "atlas", {"block1_conv1": [0, 3], "block2_conv1": [9]}, models=False)
    pages = build(docs, tmp_path / "site")
    check_site(tmp_path / "site", pages)
    assert "not recorded" in "".join(pages["reproduce.html"].text)


def test_image_statistics_measure_frequency_and_colour(tmp_path):
    for period in (3.0, 6.0, 12.0):
        path = tmp_path / f"{period}.png"
        path.write_bytes(png_bytes(grating(period, 7, 96)))
        frequency, colourfulness = image_stats(path)
        assert frequency == pytest.approx(np.hypot(1, 0.5) / period, rel=0.1)
        assert colourfulness < 1  # grating(hue=7) is grey
    red_green = np.zeros((32, 32, 3), "uint8")
    red_green[::2, :, 0] = 255
    red_green[1::2, :, 1] = 255
    (tmp_path / "rg.png").write_bytes(png_bytes(red_green))
    assert image_stats(tmp_path / "rg.png")[1] > 100
    files = [tmp_path / "3.0.png"] * 200
    stats = layer_stats(files, [2.0, 4.0, 9.0])
    assert MAX_MEASURED // 2 <= stats.measured <= MAX_MEASURED and stats.ratio == 4.0
    assert layer_stats([], []) == type(stats)(0, None, None, None)


def test_progression_chart_is_inline_svgs_of_the_measurements(docs):
    linear = Panel("P", [Series("trained", "fa-trained", [1.0, 3.0]),
                         Series("untrained", "fa-untrained", [None, 2.0])])
    log = Panel("L", [Series("t", "fa-trained", [3.0, 300.0])], log=True)
    chart = chart_svg([EVIL_LAYER, "b"], [linear, log])
    assert chart.startswith('<div class="fa-chart">') and chart.count('<svg viewBox="0 0 320 250"') == 2
    assert "&lt;script&gt;" in chart and "<script" not in chart and "http" not in chart
    assert chart.count("<polyline") == 2 and chart.count("<circle") == 5
    assert chart.index("fa-chart-legend") < chart.index('<svg viewBox')  # the legend is read first
    second = chart.split('<svg viewBox')[2]
    ticks = [float(t) for t in re.findall(r'class="fa-tick"[^>]*>([\d.]+)<', second)]
    assert ticks == [1, 10, 100, 1000] and "(log scale)" in second  # decades, evenly spaced
    ys = [float(y) for y in re.findall(r'cy="([\d.]+)"', second)]
    assert ys[0] - ys[1] == pytest.approx(2 / 3 * (250 - 30 - 84), abs=0.2)  # 3 to 300: two of three decades

    write_atlas(docs / "atlas", {"block1_conv1": [0, 1], "block3_conv1": [2, 3], "block5_conv1": [4]},
                variants=(("vgg16", "lucid"), ("vgg16-untrained", "lucid")))
    page = render_pages(docs / "atlas", docs)["progression.md"]
    rows = re.findall(r"^\| \[(block\d\\_conv1)\].*?\| (\d+) \| (\d+) \| ([\d.]+) \|", page, re.M)
    assert [r[:3] for r in rows] == [("block1\\_conv1", "3", "2"), ("block3\\_conv1", "24", "2"),
                                     ("block5\\_conv1", "132", "1")]
    frequencies = [float(r[3]) for r in rows]  # the gratings get coarser with depth
    assert frequencies == sorted(frequencies, reverse=True) and frequencies[0] > 2 * frequencies[-1]
    assert page.count('<polyline class="fa-untrained"') == 3  # one per measured panel
    assert page.count("(log scale)") == 4  # receptive field and activation ratio, title and label


def site_settings(docs: Path) -> dict:
    """The site settings that ``filter-atlas pages`` wrote, read as YAML (``!ENV``: its default)."""
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_constructor("!ENV", lambda _, node: None)
    return yaml.load((docs / SITE_CONFIG).read_text("utf-8"), Loader=loader)


def test_navigation_lists_the_gallery_pages_in_natural_order(docs, tmp_path):
    write_atlas(docs / "atlas", {"block10_conv1": [0], "block2_conv1": [1], "block1_conv1": [2]})
    write_pages(docs / "atlas", docs)
    nav = site_settings(docs)["nav"]
    gallery = ["blocks/block1_conv1.md", "blocks/block2_conv1.md", "blocks/block10_conv1.md"]
    assert {"Gallery": gallery} in nav and nav[0] == {"Home": "index.md"}
    assert nav.index({"Gallery": gallery}) == nav.index({"Shallow to deep": "progression.md"}) - 1
    # Each engine's navigation, built: the pages in that order, titled by their headings.
    html = build_site(MKDOCS, docs, tmp_path / "site").joinpath("index.html").read_text("utf-8")
    links = re.findall(r'href="(blocks/[\w.]+)" class="md-nav__link', html)
    assert links == [p.replace(".md", ".html") for p in gallery]
    write_atlas(docs / "atlas", {})  # nothing rendered: no gallery section
    write_pages(docs / "atlas", docs)
    assert all("Gallery" not in item for item in site_settings(docs)["nav"])


def test_cli_pages_and_build(cli, tmp_path):
    write_atlas(tmp_path / "docs/atlas", {"block1_conv1": [0, 2]})
    code, out, err = cli("pages")
    assert code == 0 and "-> docs" in out and (tmp_path / "docs/blocks/block1_conv1.md").is_file()
    code, out, err = cli("build", "--no-render", "--mkdocs", MKDOCS, "--site", tmp_path / "site")
    assert code == 0, err
    assert (tmp_path / "site/blocks/block1_conv1.html").is_file() and "0 of" in out
    write_atlas(tmp_path / "outside", {"block1_conv1": [0]})
    for args, message in ((("pages", "--out", "outside"), "must be inside the docs directory"),
                          (("pages", "--out", "docs/none"), "no manifest"),
                          (("build", "--no-render", "--mkdocs", "none.yml"), "no MkDocs configuration")):
        code, out, err = cli(*args)
        assert code == 2 and err.count("\n") == 1 and message in err, err


def test_offline_build_builds_what_is_there_in_one_line(cli, tmp_path, monkeypatch):
    """No weights and no network: ``build`` says in one line that it could not check for missing
    images (no Keras download line before it) and builds the committed atlas."""
    from keras.src.utils import file_utils

    def offline(fname, origin, **kwargs):  # what Keras does without a network
        print(f"Downloading data from {origin}")
        raise Exception(f"URL fetch failure on {origin}: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    write_atlas(tmp_path / "docs/atlas", {"block1_conv1": [0, 2]})
    code, out, err = cli("build", "--weights", "imagenet", "--mkdocs", MKDOCS, "--site", tmp_path / "site")
    assert code == 0, err
    assert err.count("\n") == 1 and "could not check the atlas for missing images" in err, err
    assert "name resolution" in err and "Downloading" not in out + err
    assert (tmp_path / "site/blocks/block1_conv1.html").is_file()


def test_cli_builds_with_zensical_and_a_failed_build_keeps_the_site(cli, tmp_path):
    """What `filter-atlas init` writes builds with Zensical too: nothing of the site needs a plugin."""
    pytest.importorskip("zensical", reason="pip install zensical (the test extra)")
    write_atlas(tmp_path / "docs/atlas", {"block2_conv1": [1], "block1_conv1": [0, 2]})
    (tmp_path / "mkdocs.yml").write_text(site_config("my atlas"))
    code, _, err = cli("build", "--no-render", "--engine", "zensical")
    assert code == 0, err
    site = tmp_path / "site"
    html = (site / "index.html").read_text("utf-8")
    assert 'content="zensical' in html and "my atlas" in html
    assert re.findall(r'href="\./(blocks/[\w.]+)" class="md-nav__link', html) == [
        "blocks/block1_conv1.html", "blocks/block2_conv1.html"]
    gallery = Html((site / "blocks/block1_conv1.html").read_text("utf-8"))
    sources = [a["src"] for tag, a in gallery.tags if tag == "img" and "/thumbs/" in a["src"]]
    assert len(sources) == 2 and all((site / "blocks" / src).resolve().is_file() for src in sources)
    index = json.loads((site / "search.json").read_text())
    assert any(d["location"] == "blocks/block1_conv1.html" and d["title"] == "block1_conv1"
               for d in index["items"])
    assert not list(tmp_path.glob(".site.*"))  # no configuration or output of the build left behind
    # Strict: a broken link fails the build, naming it, and the site stays as it was.
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    (tmp_path / "docs/mine.md").write_text("# Mine\n\n[gone](missing.md)\n")
    code, _, err = cli("build", "--no-render", "--engine", "zensical")
    assert code == 2 and err.count("\n") == 1 and "zensical build failed" in err and "mine.md" in err, err
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    # Zensical builds only docs inside its configuration's folder.
    code, _, err = cli("build", "--no-render", "--engine", "zensical", "--mkdocs", MKDOCS)
    assert code == 2 and "zensical builds only docs inside" in err, err


def test_serve_serves_the_site_in_one_line(tmp_path):
    """`filter-atlas serve` serves what `mkdocs serve` would, saying one line: no engine banner."""
    write_atlas(tmp_path / "docs/atlas", {"block1_conv1": [0]})
    write_pages(tmp_path / "docs/atlas", tmp_path / "docs")
    (tmp_path / "mkdocs.yml").write_text(site_config("served atlas"))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    address = f"127.0.0.1:{port}"
    # Ctrl+C as a terminal delivers it: a runner that started the tests in the background (`cmd &`
    # in a script) passes SIGINT on ignored, and Python then installs no KeyboardInterrupt handler.
    server = subprocess.Popen([sys.executable, "-m", "filter_atlas", "serve", "--dev-addr", address],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://{address}/blocks/block1_conv1.html", timeout=1) as r:
                    page = r.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("nothing served within 30 s")
        assert "served atlas" in page and "0000-lucid.webp" in page
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert output.splitlines() == [f"serving {tmp_path} at http://{address}/ with mkdocs (Ctrl+C stops)"]
