"""The site's Markdown pages, rendered from the manifest with the package's Jinja2 templates.

Home, convolutional filters, Activation Maximization, one gallery per block, shallow to deep and
reproduce. Pure and deterministic: the same manifest and images give byte-identical pages. Names
from the manifest are escaped for Markdown and HTML, and sanitized (``store.slug``) in file
names and anchors, so every page lands inside the docs directory.

``view`` arranges the manifest for the pages, ``commands`` spells the render commands they show,
``chart`` draws the progression chart, ``text`` escapes names and formats numbers, and ``write``
renders the templates and writes the files.
"""

from .text import markdown_text, shell
from .write import render_pages, write_pages

__all__ = ["markdown_text", "render_pages", "shell", "write_pages"]
