"""How names and numbers from the manifest are written into the pages: as Markdown text, as HTML
that a script inserts again, as shell words, as short numbers, counted nouns and weights labels."""

from __future__ import annotations

import re
import shlex

from markupsafe import Markup, escape

from ..numbers import activation, number

__all__ = ["activation", "html_twice", "markdown_text", "number", "plural", "shell", "weights_text"]

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


def plural(count: int, noun: str) -> str:
    """``1 image``, ``6 images``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def weights_text(label: str) -> str:
    """The manifest's weights label (``imagenet``, ``random``, ``file:NAME``) in words: a file
    whose name says ImageNet is that model's ImageNet weights, read from a local copy."""
    if label == "imagenet":
        return "ImageNet"
    if label == "random":
        return "random (seeded, untrained)"
    if label.startswith("file:"):
        name = label[5:]
        return f"ImageNet (local copy: {name})" if "imagenet" in name.lower() else f"from the file {name}"
    return label
