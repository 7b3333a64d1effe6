"""MkDocs hook (``hooks:`` in mkdocs.yml): lists the generated gallery pages in the navigation.

A nav entry whose value is a folder (``Gallery: blocks/``) becomes a section holding that
folder's pages in natural order (block2 before block10). The gallery pages depend on what the
atlas holds, so mkdocs.yml cannot name them. Standard library only: MkDocs loads this file by
path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def expand(nav: list[Any], docs_dir: Path) -> list[Any]:
    """``nav`` with every ``{title: "folder/"}`` item replaced by a section of the folder's pages."""
    out: list[Any] = []
    for item in nav:
        if isinstance(item, dict) and len(item) == 1:
            (title, value), = item.items()
            if isinstance(value, str) and value.endswith("/"):
                pages = sorted((docs_dir / value).glob("*.md"), key=lambda p: natural_key(p.name))
                value = [f"{value}{p.name}" for p in pages]
            elif isinstance(value, list):
                value = expand(value, docs_dir)
            out.append({title: value})
        else:
            out.append(item)
    return out


def on_config(config: Any) -> Any:
    if config.nav:
        config.nav = expand(config.nav, Path(config.docs_dir))
    return config
