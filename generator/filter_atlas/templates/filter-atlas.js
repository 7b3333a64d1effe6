// Filter Atlas (written by `filter-atlas pages`), deferred: it runs once the page is parsed, with
// Material for MkDocs and with Zensical alike.
(() => {
  const assets = new URL(".", document.currentScript.src);  // this script is assets/filter-atlas.js
  const generator = document.querySelector("meta[name='generator']")?.content ?? "";

  // The search dialog needs an accessible name (axe-core's and Lighthouse's aria-dialog-name):
  // Zensical's template gives it one, Material for MkDocs' does not.
  const dialog = document.querySelector(".md-search[role='dialog']");
  if (dialog && !dialog.hasAttribute("aria-label") && !dialog.hasAttribute("aria-labelledby")) {
    dialog.setAttribute("aria-label", document.querySelector(".md-search__input")?.placeholder || "Search");
  }

  // The lightbox: GLightbox, copied into assets/glightbox/ from the mkdocs-glightbox package. A
  // page with zoomable images (class="glightbox") loads its script, deferred (pages.write); its
  // styles are added here, after the page, so that they never hold up its first paint. Zensical's
  // theme starts GLightbox itself (with this copy, as it is loaded); with Material's, this does.
  // Until it runs, a click opens the full-size image itself.
  let styled = false;
  let lightbox = null;
  const style = () => {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = new URL("glightbox/glightbox.min.css", assets);
    // Before this site's stylesheet, which adjusts it (filter-atlas.css), after the theme's.
    const own = document.querySelector("link[rel='stylesheet'][href*='filter-atlas.css']");
    own ? own.before(link) : document.head.append(link);
    styled = true;
  };

  // Closing the lightbox gives the focus back to the image link that opened it (GLightbox leaves
  // it on <body>), however the lightbox was started: its box leaves <body> when it closes.
  let opener = null;
  document.addEventListener("click", (event) => {
    opener = event.target.closest?.("a.glightbox") ?? opener;
  }, true);
  new MutationObserver((records) => {
    const closed = records.some((r) => [...r.removedNodes].some((n) => n.classList?.contains("glightbox-container")));
    if (closed && opener?.isConnected) {
      opener.focus();
      opener = null;
    }
  }).observe(document.body, { childList: true });

  document$.subscribe(() => {
    // The theme wraps wide tables in a scrolling box: make each box focusable, so that it can be
    // scrolled with the keyboard (WCAG 2.1.1).
    for (const box of document.querySelectorAll(".md-typeset__scrollwrap")) {
      box.tabIndex = 0;
    }
    if (!document.querySelector("a.glightbox") || typeof GLightbox !== "function") {
      return;
    }
    if (!styled) {
      style();
    }
    if (generator.startsWith("zensical")) {
      return;
    }
    if (lightbox) {
      lightbox.reload();  // instant navigation: the new page's images
    } else {
      lightbox = GLightbox({ selector: ".glightbox", touchNavigation: true, loop: false, zoomable: true,
                             draggable: true, openEffect: "zoom", closeEffect: "zoom", slideEffect: "slide" });
    }
  });
})();
