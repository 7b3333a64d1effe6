"""The site's Markdown pages, rendered from the manifest with the package's Jinja2 templates.

Home, convolutional filters, Activation Maximization, one gallery per block, shallow to deep and
reproduce. Pure and deterministic: the same manifest and images give byte-identical pages. Names
from the manifest are escaped for Markdown and HTML, and sanitized (``store.slug``) in file
names and anchors, so every page lands inside the docs directory.

``arrangement`` arranges the manifest for the pages (``panels``: a filter's Distill views),
``statistics`` measures what they show and ``prose`` states it in sentences, ``commands`` spells
the render commands, ``chart`` draws the progression chart, ``text`` escapes names and formats
numbers, ``write`` renders the templates and ``ownership`` keeps the files it writes apart from
the user's.
"""

from .text import markdown_text, shell
from .write import render_pages, write_pages

__all__ = ["markdown_text", "render_pages", "shell", "write_pages"]
