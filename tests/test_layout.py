"""The contributors' page names every module of the package, and every module it names exists."""

from __future__ import annotations

import re

from .conftest import REPO

PACKAGE = REPO / "generator/filter_atlas"
PAGE = REPO / "docs/contributing.md"


def modules() -> set[str]:
    """Every Python module and package of filter_atlas, as the page names them (``store/``,
    ``store/records.py`` or ``records.py`` inside its package's row)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.name in ("__init__.py", "__main__.py") or rel.parts[0] == "keras_vis":
            continue
        found.add(str(rel))
    return found


def test_the_page_names_every_module_and_nothing_else():
    text = PAGE.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    named = set()
    for row in rows:
        modules_cell, holds_cell = row.split("|")[2:4]
        packages = re.findall(r"`(\w+)/`", modules_cell)
        named.update(re.findall(r"`([\w/]+\.py)`", modules_cell))  # top-level modules
        for name in re.findall(r"`([\w/]+\.py)`", holds_cell):  # files of the row's packages
            owner = next((p for p in packages if (PACKAGE / p / name).is_file()), None)
            named.add(f"{owner}/{name}" if owner else name)
    on_disk = {m for m in modules() if m.split("/")[0] not in ("engine", "theme", "templates")}
    assert on_disk - named == set(), "modules the page does not name"
    assert named - modules() == set(), "names on the page that are not modules"


def test_no_module_is_much_over_300_lines():
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {m: n for m, n in lengths.items() if n > 320} == {}
