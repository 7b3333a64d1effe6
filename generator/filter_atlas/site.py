"""The site built strictly from Python, with MkDocs (``mkdocs build --strict``) or Zensical
(``zensical build --strict``), the docs and site directories and the site's URL optionally set. The
site is built in a folder that replaces the site directory only once the build succeeds, so a
failed build leaves the previous site (or none) as it was; a strict build's warnings are given in
the error.

The configuration (``mkdocs.yml``) is the user's; it inherits the settings and navigation that
``filter-atlas pages`` writes into the docs (``pages.write.SITE_CONFIG``). Built for other docs than
its own, it inherits theirs instead. Zensical takes no settings from its command line: it gets a
configuration beside the user's (the same settings, and the others' directories), and builds
inside that folder, as Zensical requires.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from .errors import AtlasError
from .pages.write import SITE_CONFIG
from .store.files import swap_folder

ENGINES = ("mkdocs", "zensical")
SHOWN_WARNINGS = 3  # a failed build's message quotes this many of its warnings
_INHERIT = re.compile(r"""^INHERIT:[ \t]*(["']?)([^"'#\n]+?)\1[ \t]*(?:#.*)?$""", re.M)
_PLUGIN = re.compile(r"^\s*-\s*(filter-atlas|glightbox)\b", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Warnings(logging.Handler):
    """The warnings MkDocs logs, each on one line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(" ".join(record.getMessage().split()))


def build_site(config_file: Path, docs_dir: Path | None = None, site_dir: Path | None = None,
               site_url: str | None = None, engine: str = "mkdocs") -> Path:
    """Build the site strictly (any warning fails).

    Args:
        config_file: The site's configuration (``mkdocs.yml``).
        docs_dir: The Markdown pages (default: the configuration's ``docs_dir``).
        site_dir: Where the site goes (default: the configuration's ``site_dir``).
        site_url: Where it will be served, e.g. ``https://user.github.io/filter-atlas/``: 404.html,
            which is served at any depth, then loads its assets from that path.
        engine: ``mkdocs`` (with Material for MkDocs) or ``zensical``.

    Returns:
        The site directory.

    Raises:
        AtlasError: No configuration, an unknown or missing engine, or the build failed (with the
            warnings that failed it).
    """
    text = _configuration(config_file, engine)
    if docs_dir:
        text = _inherit_from(text, docs_dir)
    if engine == "zensical":
        return _zensical(config_file, text, docs_dir, site_dir, site_url)
    return _mkdocs(config_file, text, docs_dir, site_dir, site_url)


def serve_site(config_file: Path, address: str = "127.0.0.1:8000", engine: str = "mkdocs") -> None:
    """Serve the site, rebuilt as its files change, until interrupted; one line instead of the
    engines' own start-up notices (Material for MkDocs prints its end-of-life banner only when the
    program is ``mkdocs``).

    Args:
        config_file: The site's configuration (``mkdocs.yml``).
        address: ``IP:PORT`` to serve at.
        engine: ``mkdocs`` (with Material for MkDocs) or ``zensical``.

    Raises:
        AtlasError: No configuration, an unknown or missing engine, or the server failed.
    """
    _configuration(config_file, engine)
    print(f"serving {config_file.resolve().parent} at http://{address}/ with {engine} (Ctrl+C stops)",
          flush=True)
    if engine == "zensical":
        _zensical_installed()
        try:
            done = subprocess.run([sys.executable, "-m", "zensical", "serve", "--config-file",
                                   str(config_file), "--dev-addr", address], cwd=config_file.resolve().parent,
                                  env={**os.environ, "NO_COLOR": "1"}, check=False)
        except KeyboardInterrupt:  # Ctrl+C reached the server too: it stops
            return
        if done.returncode not in (0, -2, 130):  # -2, 130: interrupted
            raise AtlasError(f"zensical serve stopped with exit status {done.returncode}")
        return
    from mkdocs.commands.serve import serve
    from mkdocs.exceptions import MkDocsException

    try:
        serve(config_file=str(config_file), dev_addr=address)
    except (MkDocsException, OSError) as exc:
        raise AtlasError(f"mkdocs serve failed: {exc}") from exc


def _configuration(config_file: Path, engine: str) -> str:
    """The text of the site's configuration, refused in one line if it cannot serve."""
    if engine not in ENGINES:
        raise AtlasError(f"unknown engine {engine!r}: choose {' or '.join(ENGINES)}")
    if not config_file.is_file():
        raise AtlasError(f"no MkDocs configuration at {config_file}")
    text = config_file.read_text("utf-8")
    if plugin := _PLUGIN.search(text):
        raise AtlasError(f"{config_file} lists the {plugin.group(1)} plugin, which filter-atlas no longer "
                         f"uses: replace the file by 'INHERIT: docs/{SITE_CONFIG}' and your site_name "
                         "(what `filter-atlas init` writes), then build again")
    return text


def _zensical_installed() -> None:
    try:
        import zensical  # noqa: F401
    except ImportError:
        raise AtlasError("the zensical engine is not installed: pip install zensical") from None


def _inherit_from(text: str, docs_dir: Path) -> str:
    """``text`` inheriting ``docs_dir``'s generated settings where it inherits generated ones."""
    inherit = _INHERIT.search(text)
    if not inherit or Path(inherit.group(2)).name != SITE_CONFIG:
        return text
    line = f"INHERIT: {json.dumps(str(docs_dir.resolve() / SITE_CONFIG))}"
    return text[:inherit.start()] + line + text[inherit.end():]


def _stream(config_file: Path, text: str) -> io.StringIO:
    """The configuration's text, read as if from ``config_file`` (relative paths resolve there)."""
    stream = io.StringIO(text)
    stream.name = str(config_file.resolve())
    return stream


def _mkdocs(config_file: Path, text: str, docs_dir: Path | None, site_dir: Path | None,
            site_url: str | None) -> Path:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    overrides = {k: str(v.resolve()) for k, v in (("docs_dir", docs_dir), ("site_dir", site_dir)) if v}
    if site_url:
        overrides["site_url"] = site_url
    warnings = _Warnings()
    logger = logging.getLogger("mkdocs")
    logger.addHandler(warnings)
    building = None
    try:
        config = load_config(_stream(config_file, text), strict=True, **overrides)
        site = _checked(Path(config.site_dir))
        building = site.with_name(f".{site.name}.building-{uuid.uuid4().hex[:8]}")
        building.mkdir(parents=True)
        config.site_dir = str(building)
        build(config)
        swap_folder(building, site)
    except MkDocsException as exc:
        raise AtlasError(f"mkdocs build failed: {exc.format_message()}{_quoted(warnings.lines)}") from exc
    finally:
        logger.removeHandler(warnings)
        if building and building.exists():
            shutil.rmtree(building)
    return site


def _zensical(config_file: Path, text: str, docs_dir: Path | None, site_dir: Path | None,
              site_url: str | None) -> Path:
    """Zensical's build in the configuration's folder (its project root, which must hold the docs;
    Zensical keeps its cache there, in ``.cache``), then moved to the site directory."""
    _zensical_installed()
    root = config_file.resolve().parent
    settings = _settings(config_file, text)
    docs = docs_dir.resolve() if docs_dir else (root / str(settings.get("docs_dir") or "docs")).resolve()
    if not docs.is_relative_to(root):
        raise AtlasError(f"zensical builds only docs inside the configuration's folder {root}, not {docs}")
    site = site_dir.resolve() if site_dir else (root / str(settings.get("site_dir") or "site")).resolve()
    _checked(site)
    token = uuid.uuid4().hex[:8]
    inside = root / f".site.zensical-{token}"  # Zensical's output must be inside its project
    config = root / f".site.config-{token}.yml"
    building = site.with_name(f".{site.name}.building-{token}")
    lines = [f"docs_dir: {json.dumps(docs.relative_to(root).as_posix())}",
             f"site_dir: {json.dumps(inside.name)}"]
    if site_url:
        lines.append(f"site_url: {json.dumps(site_url)}")
    try:
        config.write_text(text.rstrip("\n") + "\n\n# filter-atlas build: these directories\n" +
                          "\n".join(lines) + "\n", "utf-8")
        done = subprocess.run([sys.executable, "-m", "zensical", "build", "--config-file", str(config),
                               "--strict"], cwd=root, capture_output=True, text=True,
                              env={**os.environ, "NO_COLOR": "1"}, check=False)
        if done.returncode != 0:
            raise AtlasError(f"zensical build failed: {_zensical_error(done.stdout + done.stderr)}")
        site.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(inside, building)  # a rename on the same disk, else a copy
        swap_folder(building, site)
    finally:
        config.unlink(missing_ok=True)
        for path in (inside, building):
            if path.exists():
                shutil.rmtree(path)
    return site


def _settings(config_file: Path, text: str) -> dict[str, Any]:
    """The configuration's settings, inherited ones included."""
    from mkdocs.exceptions import MkDocsException
    from mkdocs.utils.yaml import yaml_load

    try:
        return yaml_load(_stream(config_file, text))
    except MkDocsException as exc:
        raise AtlasError(f"{config_file}: {exc.format_message()}") from exc


def _checked(site: Path) -> Path:
    if site.exists() and not site.is_dir():
        raise AtlasError(f"the site directory {site} is a file")
    return site


def _zensical_error(output: str) -> str:
    """Zensical's reason and its warnings (each with its file and place), on one line."""
    lines = [line.strip() for line in _ANSI.sub("", output).splitlines() if line.strip()]
    warnings = []
    for i, line in enumerate(lines):
        if line.startswith("Warning:"):
            places = (re.search(r"\[ (\S+) \]", x) for x in lines[i + 1:i + 3])
            where = next((m.group(1) for m in places if m), "")
            warnings.append(f"{line.removeprefix('Warning:').strip()}" + (f" ({where})" if where else ""))
    reason = next((line.split(":", 1)[1].strip() for line in reversed(lines)
                   if line.startswith(("RuntimeError:", "Error:"))), lines[-1] if lines else "no output")
    return f"{reason}{_quoted(warnings)}"


def _quoted(lines: list[str]) -> str:
    """The warnings for the error line: ``" (first; second; third; and 2 more)"``, "" for none."""
    if not lines:
        return ""
    more = [f"and {len(lines) - SHOWN_WARNINGS} more"] if len(lines) > SHOWN_WARNINGS else []
    return f" ({'; '.join(lines[:SHOWN_WARNINGS] + more)})"
