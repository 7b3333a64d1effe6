"""The built site in a real browser: headless Chromium (Debian's) driven by Playwright, the site
served on localhost. Every gallery image loads, a click zooms to the full-size image, search finds
a layer, names stay text, and nothing is requested from another host. Screenshots are kept in
$FILTER_ATLAS_SCREENSHOTS (default build/screenshots) for inspection."""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from filter_atlas.pages import write_pages
from filter_atlas.site import build_site

from .conftest import REPO, write_atlas

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("FILTER_ATLAS_SCREENSHOTS", REPO / "build/screenshots"))
EVIL = "<img src=x onerror=alert(1)>"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


def serve(site: Path) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Iterator[tuple[str, dict]]:
    """The repository's docs (committed pages and atlas) built and served: what a clone shows."""
    manifest = REPO / "docs/atlas/manifest.json"
    if not (REPO / "docs/index.md").is_file() or not manifest.is_file():
        pytest.skip("no committed atlas pages (run filter-atlas pages)")
    site = build_site(REPO / "mkdocs.yml", site_dir=tmp_path_factory.mktemp("site"))
    server, url = serve(site)
    yield url, json.loads(manifest.read_text())
    server.shutdown()


class Visit:
    """A page with its console errors, failed requests, requests to other hosts and dialogs."""

    def __init__(self, browser, scheme: str = "light"):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.on("request", lambda r: urlparse(r.url).hostname not in ("127.0.0.1", None)
                     and not r.url.startswith("data:") and self.foreign.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def go(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_load_state("networkidle")

    def check(self) -> None:
        assert not self.errors, self.errors
        assert not self.foreign, f"requests to other hosts: {self.foreign}"
        assert not self.dialogs, f"a name ran as script: {self.dialogs}"
        self.page.close()

    def shot(self, name: str, full_page: bool = False) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SHOTS / name, full_page=full_page)


def load_all_images(page) -> list[dict]:
    """Scroll every image into view (they are lazy), wait for each, and report its size."""
    for img in page.locator("img").all():
        img.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20_000)
    return page.eval_on_selector_all(
        "img", "els => els.map(i => ({src: i.currentSrc, w: i.naturalWidth, lazy: i.loading}))")


def test_every_gallery_image_loads_and_zooms_to_full_size(browser, committed):
    url, manifest = committed
    visit = Visit(browser)
    visit.go(url)
    visit.shot("home.png")
    galleries = visit.page.eval_on_selector_all(
        ".md-nav__link[href*='blocks/']", "els => [...new Set(els.map(e => e.href))]")
    live = {e["thumbnail"] for e in manifest["filters"] if not e["dead"]}
    for views in (e.get("views", {}) for e in manifest["filters"]):  # the unit panels' images
        live |= {v["thumbnail"] for k, v in views.items() if k in ("negative", "neuron")}
        live |= set(views.get("diversity", {}).get("thumbnails", ()))
        live |= {p["image"] for side in ("top", "bottom") for p in views.get("examples", {}).get(side, ())}
    assert galleries and live
    seen = set()
    for gallery in galleries:
        visit.go(gallery)
        images = load_all_images(visit.page)
        assert images and all(i["w"] > 0 and i["lazy"] == "lazy" for i in images), images
        seen |= {i["src"].split("/atlas/", 1)[1] for i in images}
    assert seen == live  # every rendered filter appears in a gallery, and loads

    visit.go(galleries[len(galleries) // 2])
    visit.shot("gallery.png")
    tile = visit.page.locator(".fa-tile a.glightbox").first
    full = tile.evaluate("a => a.href")
    tile.click()
    zoomed = visit.page.locator(".gslide-image img").first
    zoomed.wait_for(state="visible")
    visit.page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=zoomed.element_handle())
    assert zoomed.get_attribute("src") == full and "/thumbs/" not in full
    entry = next(e for e in manifest["filters"] if e["image"] and full.endswith(e["image"]))
    assert zoomed.evaluate("i => i.naturalWidth") == entry["size"]
    visit.page.wait_for_function("i => i.getBoundingClientRect().width >= Math.min(i.naturalWidth, 400) - 1",
                                 arg=zoomed.element_handle())  # the zoom-in animation has ended
    visit.shot("zoom.png")
    visit.check()


def test_a_unit_panel_zooms_each_view_to_its_full_size(browser, committed):
    url, manifest = committed
    with_views = [e for e in manifest["filters"] if "diversity" in e.get("views", {})]
    if not with_views:
        pytest.skip("the committed atlas has no diversity views yet")
    entry = with_views[-1]
    anchor = f"{entry['layer']}-{entry['index']}"
    visit = Visit(browser)
    visit.go(f"{url}blocks/{entry['layer'].split('_')[0]}.html#{anchor}")
    panel = visit.page.locator(f"section.fa-unit#{anchor}")
    assert panel.is_visible()
    diverse = panel.locator(".fa-diverse a.glightbox")
    assert diverse.count() == 4
    diverse.nth(1).click()
    zoomed = visit.page.locator(".gslide.current .gslide-image img")
    zoomed.wait_for(state="visible")
    visit.page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=zoomed.element_handle())
    assert zoomed.get_attribute("src").endswith(entry["views"]["diversity"]["images"][1])
    assert zoomed.evaluate("i => i.naturalWidth") == entry["views"]["diversity"]["size"]
    visit.shot("unit.png")
    visit.check()


def test_search_finds_a_layer_by_name(browser, committed):
    url, manifest = committed
    layer = manifest["filters"][-1]["layer"]
    visit = Visit(browser)
    visit.go(url)
    search = visit.page.locator("input.md-search__input")
    search.click()
    search.press_sequentially(layer, delay=20)
    result = visit.page.locator(f".md-search-result__link[href*='#{layer}']").first
    result.wait_for(state="visible", timeout=15_000)
    assert "blocks/" in result.get_attribute("href") and result.locator("h2").inner_text() == layer
    visit.shot("search.png")
    result.click()
    visit.page.wait_for_load_state("networkidle")
    assert "blocks/" in visit.page.url and visit.page.locator(f"h2:has-text('{layer}')").count() == 1
    visit.check()


def test_dark_mode_toggle_and_offline_assets(browser, committed):
    url, _ = committed
    visit = Visit(browser)
    visit.go(url + "progression.html")
    scheme = "document.body.getAttribute('data-md-color-scheme')"
    assert visit.page.evaluate(scheme) == "default"
    visit.page.locator("label[title='Switch to dark mode']").first.click()
    assert visit.page.evaluate(scheme) == "slate"
    assert visit.page.locator("svg.fa-chart polyline").count() >= 1
    visit.shot("progression-dark.png", full_page=True)
    visit.check()


def test_names_from_user_models_render_as_text(browser, tmp_path):
    docs = tmp_path / "docs"
    write_atlas(docs / "atlas", {EVIL: [0, 1], "../../x": [2]}, variants=((EVIL, "lucid"),))
    write_pages(docs / "atlas", docs)
    site = build_site(REPO / "mkdocs.yml", docs, tmp_path / "site")
    server, url = serve(site)
    try:
        visit = Visit(browser)
        visit.go(url + "blocks/img_src_x_onerror_alert_1.html")
        assert visit.page.locator("h2").first.inner_text().startswith(EVIL)
        load_all_images(visit.page)
        visit.page.locator(".fa-tile a.glightbox").first.click()
        title = visit.page.locator(".gslide-title").first
        title.wait_for(state="visible")
        assert EVIL in title.inner_text() and title.locator("img").count() == 0
        visit.go(url + "blocks/x.html")
        assert visit.page.locator("h2").first.inner_text().startswith("../../x")
        search = visit.page.locator("input.md-search__input")
        search.click()
        search.press_sequentially("onerror", delay=20)  # search results are inserted as HTML too
        visit.page.locator(".md-search-result__item").first.wait_for(state="visible", timeout=15_000)
        assert EVIL in visit.page.locator(".md-search-result").inner_text()
        visit.check()
    finally:
        server.shutdown()
