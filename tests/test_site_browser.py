"""The built site in a real browser: headless Chromium (Debian's) driven by Playwright, the site
served on localhost, built from the committed docs by each engine (MkDocs with Material for MkDocs,
and Zensical, which runs no MkDocs plugin: everything it shows is in the docs). Every gallery image
loads, a click zooms to the full-size image, search finds a layer and a word, names stay text,
nothing is requested from another host, every page passes axe-core with no violation (desktop,
phone, dark), nothing overflows a phone's width, and the 404 page works at any depth under a
project sub-path. Screenshots are kept in $FILTER_ATLAS_SCREENSHOTS (default build/screenshots)
for inspection; the Zensical site's carry a ``zensical-`` prefix."""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from filter_atlas.pages import write_pages
from filter_atlas.pages.derived import STRETCHED, stretched, webp
from filter_atlas.site import ENGINES, build_site
from filter_atlas.store import slug

from .conftest import REPO, write_atlas
from .test_pages import Html, check_site

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("FILTER_ATLAS_SCREENSHOTS", REPO / "build/screenshots"))
EVIL = "<img src=x onerror=alert(1)>"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def browser() -> Iterator:
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


def serve(site: Path) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


def committed_project(tmp: Path, engine: str) -> Path:
    """The repository's site configuration, to build its committed docs with ``engine``: MkDocs
    builds them where they are; Zensical, which builds inside its configuration's folder and keeps
    its cache there, a copy of them beside a copy of the configuration."""
    if engine == "mkdocs":
        return REPO / "mkdocs.yml"
    pytest.importorskip("zensical", reason="pip install zensical (the test extra)")
    shutil.copytree(REPO / "docs", tmp / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp / "mkdocs.yml")
    return tmp / "mkdocs.yml"


@pytest.fixture(scope="module", params=ENGINES)
def committed(request, tmp_path_factory) -> Iterator[tuple[str, dict, Path]]:
    """The repository's docs (committed pages and atlas) built by an engine and served: what a
    clone shows."""
    manifest = REPO / "docs/atlas/manifest.json"
    if not (REPO / "docs/index.md").is_file() or not manifest.is_file():
        pytest.skip("no committed atlas pages (run filter-atlas pages)")
    tmp = tmp_path_factory.mktemp(request.param)
    site = build_site(committed_project(tmp, request.param), site_dir=tmp / "site", engine=request.param)
    server, url = serve(site)
    yield url, json.loads(manifest.read_text()), site
    server.shutdown()


def engine_of(site: Path) -> str:
    """Which engine built the site, from its pages' generator tag."""
    return "zensical" if 'content="zensical' in (site / "index.html").read_text("utf-8") else "mkdocs"


def natural(name: str) -> list[int | str]:
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", name)]


def test_the_committed_site_holds_what_it_shows(committed):
    """Each engine builds the committed docs into a whole site, no MkDocs plugin needed: every local
    link and image resolves (``test_pages.check_site``), each rendered filter's channel image is
    there as WebP, the navigation lists the gallery pages in natural order, and the search index
    holds each gallery page and, on it, each rendered filter's tile."""
    _, manifest, site = committed
    if engine_of(site) == "zensical":  # MkDocs' site: checked so in test_pages
        check_site(site, {p.relative_to(site).as_posix(): Html(p.read_text("utf-8"))
                          for p in sorted(site.rglob("*.html"))})
    pages = {name: Html((site / name).read_text("utf-8"))
             for name in ["index.html", *{f"blocks/{e['layer']}.html" for e in manifest["filters"]}]}
    for e in (e for e in manifest["filters"] if not e["dead"]):
        channel = e["views"]["channel"]
        sources = [a.get("src") for tag, a in pages[f"blocks/{e['layer']}.html"].tags if tag == "img"]
        assert channel["thumbnail"].endswith(".webp") and f"../atlas/{channel['thumbnail']}" in sources, e
        assert (site / "atlas" / channel["thumbnail"]).stat().st_size > 0
    gallery = sorted((p.stem for p in (REPO / "docs/blocks").glob("*.md")), key=natural)
    nav = [a["href"] for tag, a in pages["index.html"].tags
           if tag == "a" and "md-nav__link" in a.get("class", "")]
    assert [h.removeprefix("./") for h in nav if "blocks/" in h] == [f"blocks/{g}.html" for g in gallery]
    index = json.loads((site / "search.json").read_text())["items"] if engine_of(site) == "zensical" else \
        json.loads((site / "search/search_index.json").read_text())["docs"]
    for layer in gallery:
        assert any(d["location"] == f"blocks/{layer}.html" and d["title"] == layer for d in index), layer
    for e in manifest["filters"]:
        on_page = [d for d in index if d["location"].startswith(f"blocks/{e['layer']}.html")]
        assert any(f"#{e['index']}" in re.sub(r"<[^>]+>", " ", d["text"]).split() for d in on_page), e


class Visit:
    """A page with its console errors, failed requests, requests to other hosts and dialogs."""

    def __init__(self, browser, scheme: str = "light", viewport: dict | None = None):
        self.page = browser.new_page(viewport=viewport or DESKTOP, color_scheme=scheme)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # A load the next navigation cancels (a lazy image still in flight) is not a failure.
        self.page.on("requestfailed", lambda r: r.failure != "net::ERR_ABORTED"
                     and self.errors.append(f"failed: {r.url} ({r.failure})"))
        self.page.on("request", lambda r: urlparse(r.url).hostname not in ("127.0.0.1", None)
                     and not r.url.startswith("data:") and self.foreign.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def go(self, url: str, idle: bool = True) -> None:
        """Open ``url`` and wait for its load event (scripts run, DOM built) and, with ``idle``,
        for half a second without requests (lazy images, the search index)."""
        self.page.goto(url)
        if idle:
            self.page.wait_for_load_state("networkidle")

    def check(self) -> None:
        assert not self.errors, self.errors
        assert not self.foreign, f"requests to other hosts: {self.foreign}"
        assert not self.dialogs, f"a name ran as script: {self.dialogs}"
        self.page.close()

    def shot(self, name: str, full_page: bool = False) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SHOTS / name, full_page=full_page)


# Bring each image of the gallery (its tiles and unit panels; the cards' patches are checked in
# test_pages) that is not loaded yet into view, two frames each (lazy images start loading as they
# near the screen, its neighbours with it): one round trip per page.
GALLERY_IMAGES = ".fa-tile img, .fa-shot img"
SCROLL_THROUGH = """async (selector) => {
  const frames = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  for (const img of document.querySelectorAll(selector)) {
    if (!img.complete) { img.scrollIntoView(); await frames(); }
  }
}"""


def load_all_images(page, selector: str = GALLERY_IMAGES) -> list[dict]:
    """Scroll every gallery image into view (they are lazy), wait for each, and report its size."""
    page.evaluate(SCROLL_THROUGH, selector)
    page.wait_for_function("s => Array.from(document.querySelectorAll(s)).every(i => i.complete)",
                           arg=selector, timeout=20_000)
    return page.eval_on_selector_all(
        selector, "els => els.map(i => ({src: i.currentSrc, w: i.naturalWidth, lazy: i.loading}))")


def prefix(site: Path) -> str:
    """The screenshots' name prefix for the engine that built ``site``."""
    return "" if engine_of(site) == "mkdocs" else "zensical-"


def search(page, engine: str, query: str) -> str:
    """Type ``query`` into the site's search; returns the selector of its result links (their
    titles: ``h1`` or ``h2``). Zensical's search is a dialog (in a shadow root, which locators
    pierce) that a button opens; Material's is a field in the header."""
    if engine == "zensical":
        if not page.locator("dialog[open] input[role='combobox']").count():
            page.locator(".md-search__button").click()
        box, links = page.locator("dialog input[role='combobox']"), "dialog a[role='option']"
    else:
        box, links = page.locator("input.md-search__input"), ".md-search-result__link"
        box.click()
    # The whole query at once (then a key press, for engines that search on keyup): typed key by
    # key, a loaded machine shows a prefix's results ("col": colobus) before the query's.
    box.fill(query)
    box.press("End")
    return links


def open_lightbox(page, link) -> None:
    """Click a zoomable image once the lightbox has started (its script is deferred: before then,
    a click opens the image itself)."""
    page.wait_for_function("() => typeof GLightbox === 'function' && !!document.querySelector("
                           "\"link[href*='glightbox.min.css']\")")
    link.click()


def test_every_gallery_image_loads_and_zooms_to_full_size(browser, committed):
    url, manifest, site = committed
    visit = Visit(browser)
    visit.go(url)
    visit.shot(f"{prefix(site)}home.png")
    galleries = visit.page.eval_on_selector_all(
        ".md-nav__link[href*='blocks/']", "els => [...new Set(els.map(e => e.href))]")
    # The navigation lists every gallery page, in natural order (block2 before block10).
    pages = sorted((p.stem for p in (REPO / "docs/blocks").glob("*.md")),
                   key=lambda n: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", n)])
    assert [urlparse(g).path.rsplit("/", 1)[-1] for g in galleries] == [f"{p}.html" for p in pages]
    tiles = [e for e in manifest["filters"] if not e["dead"]]
    # A tile is a <picture>: at 1x the browser takes the WebP of its PNG thumbnail (not the PNG, not
    # the full-size source), and a keras-vis tile shows its contrast-stretched copy beside it.
    thumbs = [(e["views"]["channel"]["thumbnail"], e["recipe"]) for e in tiles]
    live = {webp(t) for t, _ in thumbs} | {stretched(t) for t, recipe in thumbs if recipe == STRETCHED}
    assert all(p.endswith(".webp") for p in live)
    for views in (e.get("views", {}) for e in manifest["filters"]):  # the unit panels' images, as they are
        live |= {v["thumbnail"] for k, v in views.items() if k in ("negative", "neuron")}
        diverse = views.get("diversity", {})  # a diverse image under a third of the channel image: failed
        live |= {t for t, a in zip(diverse.get("thumbnails", ()), diverse.get("activations", ()), strict=True)
                 if a >= views["channel"]["activation"] / 3}
        live |= {p["copy"] for side in ("top", "bottom") for p in views.get("examples", {}).get(side, ())}
    assert galleries and live
    seen = set()
    # Each gallery page that shows a rendered filter; Zensical's site, whose files the previous
    # test checks, one of them.
    rendered = {e["layer"] for e in manifest["filters"]}
    visited = [g for g in galleries if urlparse(g).path.rsplit("/", 1)[-1][:-5] in rendered]
    if engine_of(site) == "zensical":
        visited = [g for g in visited if g.endswith(f"/{tiles[len(tiles) // 2]['layer']}.html")]
    for gallery in visited:
        visit.go(gallery)
        images = load_all_images(visit.page)  # none on a layer with no image rendered yet
        assert all(i["w"] > 0 and i["lazy"] == "lazy" for i in images), images
        seen |= {i["src"].split("/atlas/", 1)[1] for i in images}
    # Every rendered filter appears in a gallery, and loads.
    assert seen == live if engine_of(site) == "mkdocs" else seen and seen <= live

    visit.go(f"{url}blocks/{tiles[len(tiles) // 2]['layer']}.html")
    visit.shot(f"{prefix(site)}gallery.png")
    tile = visit.page.locator(".fa-tile a.glightbox").first
    full = tile.evaluate("a => a.href")
    open_lightbox(visit.page, tile)
    zoomed = visit.page.locator(".gslide-image img").first
    zoomed.wait_for(state="visible")
    visit.page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=zoomed.element_handle())
    assert zoomed.get_attribute("src") == full and "/thumbs/" not in full
    assert visit.page.locator(".glightbox-container").count() == 1  # started once, by one of us
    own = next(c for e in manifest["filters"] if (c := e["views"]["channel"])["image"]
               and full.endswith(c["image"]))
    assert zoomed.evaluate("i => i.naturalWidth") == own["size"]
    visit.page.wait_for_function("i => i.getBoundingClientRect().width >= Math.min(i.naturalWidth, 400) - 1",
                                 arg=zoomed.element_handle())  # the zoom-in animation has ended
    visit.shot(f"{prefix(site)}zoom.png")
    # A page without zoomable images loads no lightbox.
    visit.go(url + "filters.html")
    assert not visit.page.evaluate("performance.getEntriesByType('resource').map(e => e.name)"
                                   ".filter(n => n.includes('glightbox'))")
    visit.check()


def test_a_unit_panel_zooms_each_view_to_its_full_size(browser, committed):
    url, manifest, site = committed
    # A filter whose four diverse images are all shown (none under a third of its channel image).
    with_views = [e for e in manifest["filters"] if "diversity" in e.get("views", {})
                  and min(e["views"]["diversity"]["activations"]) >= e["views"]["channel"]["activation"] / 3]
    if not with_views:
        pytest.skip("the committed atlas has no diversity views yet")
    entry = with_views[-1]
    anchor = f"{entry['layer']}-{entry['index']}"
    visit = Visit(browser)
    visit.go(f"{url}blocks/{entry['layer']}.html#{anchor}")
    # The panel holds the anchor, or follows its card's heading, which does.
    panel = visit.page.locator(f"section.fa-unit[id='{anchor}'], "
                               f".fa-cell:has([id='{anchor}']) section.fa-unit")
    assert panel.count() == 1 and panel.is_visible()
    diverse = panel.locator(".fa-diverse a.glightbox")
    assert diverse.count() == 4
    open_lightbox(visit.page, diverse.nth(1))
    zoomed = visit.page.locator(".gslide.current .gslide-image img")
    zoomed.wait_for(state="visible")
    visit.page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=zoomed.element_handle())
    assert zoomed.get_attribute("src").endswith(entry["views"]["diversity"]["images"][1])
    assert zoomed.evaluate("i => i.naturalWidth") == entry["views"]["diversity"]["size"]
    visit.shot(f"{prefix(site)}unit.png")
    # Escape closes it, and the focus goes back to the link that opened it, for the keyboard.
    visit.page.keyboard.press("Escape")
    visit.page.wait_for_function("() => !document.querySelector('.glightbox-container')")
    assert visit.page.evaluate("document.activeElement.href") == diverse.nth(1).evaluate("a => a.href")
    # A natural patch is a square window onto its photo's copy that shows the patch's box.
    examples = entry["views"]["examples"]
    window = panel.locator(".fa-example .fa-window").first
    window.scroll_into_view_if_needed()
    geo = window.evaluate("""w => { const i = w.querySelector('img'); i.scrollIntoView();
        const a = w.getBoundingClientRect(), b = i.getBoundingClientRect();
        return {left: a.left, top: a.top, width: a.width, height: a.height, x: b.left, y: b.top,
                scale: b.width, done: i.complete && i.naturalWidth > 0}; }""")
    x0, y0, x1, y1 = (v * geo["scale"] / examples["size"] for v in examples["top"][0]["box"])
    assert geo["done"] and geo["width"] > 20 and abs(geo["width"] - geo["height"]) <= 1, geo
    assert geo["left"] - 1 <= geo["x"] + x0 and geo["x"] + x1 <= geo["left"] + geo["width"] + 1, geo
    assert geo["top"] - 1 <= geo["y"] + y0 and geo["y"] + y1 <= geo["top"] + geo["height"] + 1, geo
    visit.check()


def test_search_finds_a_layer_by_name(browser, committed):
    url, manifest, site = committed
    layer = manifest["filters"][-1]["layer"]
    visit = Visit(browser)
    visit.go(url)
    # A top hit is the layer's gallery page, titled with its name (both engines put the query in
    # the link: waiting for it waits for the results of the whole name).
    links = search(visit.page, engine_of(site), layer)
    result = visit.page.locator(f"{links}[href*='blocks/{layer}.html?h={layer}']").first
    result.wait_for(state="visible", timeout=15_000)
    top = visit.page.eval_on_selector_all(links, "els => els.slice(0, 3).map(e => e.getAttribute('href'))")
    assert any(f"blocks/{layer}.html?h={layer}" in h and "#" not in h for h in top), top
    result = visit.page.locator(f"{links}[href*='blocks/{layer}.html?h={layer}']:not([href*='#'])").first
    assert result.locator("h1, h2").first.inner_text() == layer
    visit.shot(f"{prefix(site)}search.png")
    result.click()
    visit.page.wait_for_load_state("networkidle")
    assert f"blocks/{layer}.html" in visit.page.url
    assert visit.page.locator("article h1").first.inner_text().startswith(layer)
    visit.check()


def test_search_finds_block5_by_its_words(browser, committed):
    """The theme turns every query term into a prefix ("eyes*"): plural and singular words of Block
    5's description (on each of its layers' pages) find it."""
    url, _, site = committed
    visit = Visit(browser)
    visit.go(url)
    for word in ("eyes", "faces", "snakes", "eye"):
        links = search(visit.page, engine_of(site), word)
        visit.page.locator(f"{links}[href*='blocks/block5_']").first.wait_for(state="visible", timeout=15_000)
        # The layers' pages rank first, above any page that merely cites a paper with the word.
        first = visit.page.locator(links).first.get_attribute("href")
        assert "blocks/block5_" in first, (word, first)
        visit.shot(f"{prefix(site)}search-{word}.png")
    visit.check()


def test_search_finds_filters_by_the_classes_they_respond_to(browser, committed):
    """A class name finds the filters with that class among their top 9 images (read from the
    committed evidence here), and the results read as words, not numbers run together."""
    url, _, site = committed
    evidence = json.loads((REPO / "docs/atlas/vgg16/evidence.json").read_text())
    labels = [image["label"] or "" for image in evidence["images"]]
    with_class = {f"{layer['name']}-{f}" for layer in evidence["layers"]
                  for f, top in enumerate(layer["top"]["image"])
                  if any("collie" in labels[i].lower().split() for i in top)}
    assert with_class
    visit = Visit(browser)
    visit.go(url)
    links = search(visit.page, engine_of(site), "collie")
    visit.page.locator(f"{links}[href*='#block']").first.wait_for(state="visible", timeout=15_000)
    found = visit.page.eval_on_selector_all(f"{links}[href*='#block']",
                                            "els => els.filter(e => e.checkVisibility()).slice(0, 8)"
                                            ".map(e => [e.href, e.innerText])")
    assert found and all(urlparse(href).fragment in with_class for href, _ in found), found
    # A result shows its card's patches by class, in order, as separate words.
    layers = {layer["name"]: layer for layer in evidence["layers"]}
    for href, text in found:
        layer, index = urlparse(href).fragment.rsplit("-", 1)
        shown = " ".join(labels[i] for i in layers[layer]["top"]["image"][int(index)][:4])
        assert shown in " ".join(text.split()), (shown, text)
    visit.shot(f"{prefix(site)}search-collie.png")
    visit.check()


def test_dark_mode_toggle_and_offline_assets(browser, committed):
    url, _, site = committed
    visit = Visit(browser)
    visit.go(url + "progression.html")
    scheme = "document.body.getAttribute('data-md-color-scheme')"
    assert visit.page.evaluate(scheme) == "default"
    visit.page.locator("label[title='Switch to dark mode']").first.click()
    assert visit.page.evaluate(scheme) == "slate"
    assert visit.page.locator(".fa-chart svg polyline").count() >= 1
    visit.shot(f"{prefix(site)}progression-dark.png", full_page=True)
    visit.check()


def test_names_from_user_models_render_as_text(browser, tmp_path):
    docs = tmp_path / "docs"
    write_atlas(docs / "atlas", {EVIL: [0, 1], "../../x": [2]}, variants=((EVIL, "lucid"),))
    write_pages(docs / "atlas", docs)
    site = build_site(REPO / "mkdocs.yml", docs, tmp_path / "site")
    server, url = serve(site)
    try:
        visit = Visit(browser)
        visit.go(f"{url}blocks/{slug(EVIL)}.html")  # the name with a hash: not a safe path component
        assert visit.page.locator("article h1").first.inner_text().startswith(EVIL)
        load_all_images(visit.page)
        visit.page.locator(".fa-tile a.glightbox").first.click()
        title = visit.page.locator(".gslide-title").first
        title.wait_for(state="visible")
        assert EVIL in title.inner_text() and title.locator("img").count() == 0
        visit.go(f"{url}blocks/{slug('../../x')}.html")
        assert visit.page.locator("article h1").first.inner_text().startswith("../../x")
        search = visit.page.locator("input.md-search__input")
        search.click()
        search.press_sequentially("onerror", delay=20)  # search results are inserted as HTML too
        visit.page.locator(".md-search-result__item").first.wait_for(state="visible", timeout=15_000)
        assert EVIL in visit.page.locator(".md-search-result").inner_text()
        visit.check()
    finally:
        server.shutdown()


# Accessibility: axe-core (bundled by axe-playwright-python) on every page of the committed site,
# with its default rules (WCAG 2.x A and AA and best practices), at desktop and phone widths; the
# dark scheme on a few pages of each kind. On the phone, nothing may be wider than the screen.
DARK_PAGES = ("index.html", "blocks/block5_conv2.html", "progression.html", "reproduce.html", "404.html")


def site_pages(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))


def axe_pages(site: Path, viewport: dict, only: tuple[str, ...] | None) -> list[str]:
    """The pages to check. Zensical's pages hold the same content as MkDocs' in its own theme: on
    the desktop every page but the gallery pages, elsewhere the few of each kind, with the smallest
    gallery page for them all (their content is checked on MkDocs' site)."""
    pages = [p for p in site_pages(site) if only is None or p in only]
    if engine_of(site) == "zensical":
        gallery = min((p for p in site_pages(site) if p.startswith("blocks/")),
                      key=lambda p: (site / p).stat().st_size)
        pages = [p for p in pages if (p in DARK_PAGES or viewport is DESKTOP) and not p.startswith("blocks/")]
        pages.append(gallery)
    return pages


def axe_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page).response
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
            for v in results["violations"]]


@pytest.mark.parametrize(("viewport", "scheme", "only"), [
    (DESKTOP, "light", None), (PHONE, "light", None),
    (DESKTOP, "dark", DARK_PAGES), (PHONE, "dark", DARK_PAGES),
], ids=["desktop", "phone", "desktop-dark", "phone-dark"])
def test_every_page_passes_axe(browser, committed, viewport, scheme, only):
    pytest.importorskip("axe_playwright_python", reason="pip install axe-playwright-python (the test extra)")
    url, _, site = committed
    pages = axe_pages(site, viewport, only)
    assert "index.html" in pages and any(p.startswith("blocks/") for p in pages)
    assert len(pages) >= (len(DARK_PAGES) if only or engine_of(site) == "zensical" else 10)
    visit = Visit(browser, scheme, viewport)
    found, wide, loose, tables = {}, {}, {}, {}
    for name in pages:
        visit.go(url + name, idle=False)  # axe reads the DOM, which the load event has built
        expected = "slate" if scheme == "dark" else "default"
        assert visit.page.evaluate("document.body.getAttribute('data-md-color-scheme')") == expected
        if violations := axe_violations(visit.page):
            found[name] = violations
        width = visit.page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        if width[0] > width[1]:
            wide[name] = width
        # On the desktop, every table fits the text column (none scrolls, no column hidden).
        if viewport is DESKTOP and (clipped := visit.page.evaluate(
                "Array.from(document.querySelectorAll('article table')).filter(t => t.scrollWidth > "
                "t.clientWidth + 1 || t.getBoundingClientRect().right > "
                "t.closest('article').getBoundingClientRect().right + 1).length")):
            tables[name] = clipped
        # Every filter's cell in its layer's grid: HTML that closes one early spills the rest out.
        if outside := visit.page.evaluate("document.querySelectorAll('.fa-cell:not(.fa-cards > *)').length"):
            loose[name] = outside
    assert not found, json.dumps(found, indent=1)
    assert not loose, f"filter cells outside the grid: {loose}"
    assert not tables, f"tables wider than the text column: {tables}"
    assert not wide, f"wider than the screen (scrollWidth, innerWidth): {wide}"
    if viewport is PHONE:
        visit.go(url + "blocks/block5_conv2.html")
        visit.shot(f"{prefix(site)}phone-{scheme}.png")
    visit.check()


def test_progression_chart_on_a_phone(browser, committed):
    """On a 390 px screen the panels stack one per row and every label renders at 11 px or more."""
    url, _, site = committed
    visit = Visit(browser, viewport=PHONE)
    visit.go(url + "progression.html")
    panels = visit.page.eval_on_selector_all(
        ".fa-chart > svg", "els => els.map(e => { const r = e.getBoundingClientRect(); "
        "return {x: r.x, y: r.y, w: r.width, h: r.height}; })")
    assert len(panels) >= 2
    assert len({round(p["x"]) for p in panels}) == 1  # one column
    assert all(b["y"] >= a["y"] + a["h"] for a, b in itertools.pairwise(panels))  # no overlap
    assert all(p["x"] >= 0 and p["x"] + p["w"] <= PHONE["width"] for p in panels)
    # The rendered size of each label: its font size times the SVG's scale on the screen (the
    # transform's length, so that a rotated layer name counts as much as a horizontal tick).
    sizes = visit.page.eval_on_selector_all(
        ".fa-chart > svg text", "els => els.map(e => { const m = e.getScreenCTM(); return [e.textContent, "
        "parseFloat(getComputedStyle(e).fontSize) * Math.hypot(m.a, m.b)]; })")
    assert len(sizes) >= 10 and any(t.startswith("block") for t, _ in sizes)
    small = [(t, round(px, 2)) for t, px in sizes if px < 11]
    assert not small, small
    assert visit.page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    visit.shot(f"{prefix(site)}progression-phone.png", full_page=True)
    visit.check()


class _GitHubPages(_Quiet):
    """Like GitHub Pages: a missing path gets the site's 404.html, with status 404."""

    site: Path

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        page = self.site / "404.html"
        if code != 404 or not page.is_file():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return None


@pytest.mark.parametrize("engine", ENGINES)
def test_404_page_under_a_project_path(browser, tmp_path, engine):
    """Published at https://user.github.io/filter-atlas/, a missing page deep under it gets the
    site's 404.html, whose styles and scripts still load (from the site's URL, not relative)."""
    if not (REPO / "docs/index.md").is_file():
        pytest.skip("no committed atlas pages (run filter-atlas pages)")
    handler = type("Pages", (_GitHubPages,), {"site": tmp_path / "filter-atlas"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/filter-atlas/"
        build_site(committed_project(tmp_path / "project", engine), site_dir=tmp_path / "filter-atlas",
                   site_url=url, engine=engine)
        visit = Visit(browser)
        loaded: list[tuple[str, int]] = []
        visit.page.on("response", lambda r: r.request.resource_type in ("stylesheet", "script")
                      and loaded.append((r.url, r.status)))
        response = visit.page.goto(url + "blocks/nope/deeper.html")
        visit.page.wait_for_load_state("networkidle")
        assert response.status == 404 and "404" in visit.page.locator(".md-content h1").inner_text()
        assert loaded and all(status == 200 and u.startswith(url) for u, status in loaded), loaded
        assert {"stylesheet", "script"} <= {t for t in visit.page.evaluate(
            "performance.getEntriesByType('resource').map(e => e.initiatorType === 'link' ? 'stylesheet' "
            ": e.initiatorType)")}
        # The theme's stylesheet applies: the header takes the indigo primary colour, not transparent.
        header = visit.page.evaluate("getComputedStyle(document.querySelector('.md-header')).backgroundColor")
        assert header == "rgb(64, 81, 181)", header
        logo = visit.page.locator(".md-header__button.md-logo").first
        assert logo.evaluate("a => a.href") in (url, url + "index.html")
        visit.shot(f"{prefix(tmp_path / 'filter-atlas')}404-deep.png")
        own = "Failed to load resource: the server responded with a status of 404 (Not Found)"
        if own in visit.errors:  # the page's own status, logged once; any other 404 stays an error
            visit.errors.remove(own)
        visit.check()
    finally:
        server.shutdown()
