"""How names and numbers from the manifest are written into the pages: as Markdown text, as HTML
that a script inserts again, as shell words, and as short numbers."""

from __future__ import annotations

import re
import shlex

from markupsafe import Markup, escape

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def markdown_text(value: object) -> Markup:
    """``value`` as literal text in Markdown: HTML-escaped, Markdown specials backslash-escaped."""
    return escape(_MD_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", str(value))))


def html_twice(value: object) -> Markup:
    """Escaped twice, for attributes that a script inserts as HTML (GLightbox titles)."""
    return escape(str(escape(value)))


def shell(arg: str) -> str:
    """A shell word for ``arg``; control characters use bash's $'...' so a line never breaks."""
    if _CONTROL.search(arg):
        return "$'" + "".join(f"\\x{ord(c):02x}" if _CONTROL.match(c) else "\\" + c if c in "\\'" else c
                              for c in arg) + "'"
    return shlex.quote(arg)


def number(value: float | None, decimals: int | None = None) -> str:
    """``decimals`` places, else about three significant figures; a dash for None."""
    if value is None:
        return "\N{EN DASH}"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
