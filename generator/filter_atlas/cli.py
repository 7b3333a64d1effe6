"""The filter-atlas command line: layers, render, naturals, merge, pages, build, serve and init.

Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AtlasError, WeightsUnavailable
from .sizes import size_text
from .spec import AtlasSpec, build_spec, read_config, shown_path

if TYPE_CHECKING:
    from . import atlas as atlas_types
    from .shards import Shard


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", type=Path,
                        help="pyproject.toml holding [tool.filter-atlas] (default: ./pyproject.toml if any)")
    config.add_argument("--verbose", action="store_true",
                        help="also show the libraries' own log lines (TensorFlow, absl, XLA)")
    common = argparse.ArgumentParser(add_help=False, parents=[config])
    common.add_argument("--backend", choices=("tensorflow", "jax"),
                        help="Keras backend (default: $KERAS_BACKEND or tensorflow)")
    common.add_argument("--model", help="keras.applications name (vgg16, vgg19, ...) or a .keras/.h5 file")
    common.add_argument("--weights", help="imagenet, random, or a weights file "
                        "(default: $FILTER_ATLAS_WEIGHTS, then the config)")
    common.add_argument("--preprocess", choices=("caffe", "tf", "torch", "raw"),
                        help="input preprocessing (default: the application's own; raw for files)")
    common.add_argument("--size", help="image side in pixels, or HxW such as 96x160 (default: the model's "
                        "input size, else 224)")
    common.add_argument("--seed", type=int, help="seed for sampling, starts and transforms (default 0)")

    parser = _Parser(prog="filter-atlas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("layers", parents=[common], help="list the conv layers with filter counts and shapes")
    choose = argparse.ArgumentParser(add_help=False)  # what to render
    choose.add_argument("--layers", help="comma-separated conv layer names (default: the config's, else all)")
    pick = choose.add_mutually_exclusive_group()
    pick.add_argument("--sample", type=int, help="K filters per layer, seeded, without replacement")
    pick.add_argument("--filters", help="filter indices such as 3,17,21, or 'all'")
    choose.add_argument("--recipe", help="lucid or keras-vis")
    choose.add_argument("--steps", type=int, help="optimization steps (default: the recipe's)")
    choose.add_argument("--precision", help="the model's compute precision while optimizing: float32 "
                        "(default) or bfloat16 (faster where bfloat16 is, other pixels; in the cache key)")
    choose.add_argument("--batch", type=int, help="filters optimized together (default 16)")
    choose.add_argument("--views", help="comma-separated views: channel,negative,neuron,diversity,examples "
                        "or all (default: the config's, else all)")
    choose.add_argument("--views-size", help="image side (or HxW) of the negative, neuron and diversity "
                        "views (default: --size)")
    choose.add_argument("--examples", type=Path, help="folder of natural images (JPEG/PNG/WebP, recursive) "
                        "for the examples and the 'best natural photo' numbers (default: the bundled photos)")
    render = sub.add_parser("render", parents=[common, choose], help="render Activation Maximization images")
    render.add_argument("--out", type=Path, help="output directory (default docs/atlas)")
    render.add_argument("--force", action="store_true", help="re-render even fresh filters")
    render.add_argument("--quiet", action="store_true", help="log lines instead of progress bars")
    render.add_argument("--shard", help="render only shard i of n (e.g. 2/4), balanced by cost; see merge")
    naturals = sub.add_parser("naturals", parents=[common],
                              help="measure every filter of every conv layer over a natural set: "
                              "top and bottom patches with classes, best mean, active share")
    naturals.add_argument("--examples", type=Path, help="imagenet-samples, or a folder of natural images "
                          "(default: the config's, else the bundled photos)")
    naturals.add_argument("--out", type=Path, help="the atlas folder (default docs/atlas)")
    naturals.add_argument("--force", action="store_true", help="measure again although the evidence is fresh")
    naturals.add_argument("--quiet", action="store_true", help="no progress bars")
    merge = sub.add_parser("merge", help="combine the output trees of all shards of one render")
    merge.add_argument("shard_dirs", nargs="+", type=Path, metavar="SHARD_DIR")
    merge.add_argument("--out", type=Path, default=Path("docs/atlas"),
                       help="merged atlas (default docs/atlas)")
    merge.add_argument("--replace", action="store_true",
                       help="replace filters that --out holds rendered with other settings")
    merge.set_defaults(backend=None, verbose=False)

    site = argparse.ArgumentParser(add_help=False)
    site.add_argument("--out", type=Path, help="the atlas folder, with manifest.json (default docs/atlas)")
    site.add_argument("--docs", type=Path, default=Path("docs"),
                      help="where the pages go; must contain the atlas (default: docs)")
    pages = sub.add_parser("pages", parents=[config, site], help="write the Markdown pages from the manifest")
    pages.set_defaults(backend=None)
    build = sub.add_parser("build", parents=[common, site],
                           help="render what is missing, write the pages, then build the site strictly "
                           "(mkdocs build --strict, or zensical build --strict)")
    build.add_argument("--mkdocs", type=Path, default=Path("mkdocs.yml"),
                       help="the site's configuration, read by MkDocs and Zensical (default: ./mkdocs.yml)")
    build.add_argument("--engine", choices=("mkdocs", "zensical"), default="mkdocs",
                       help="the site generator: MkDocs with Material for MkDocs (default), or Zensical")
    build.add_argument("--site", type=Path, help="output folder (default: the configuration's site_dir)")
    build.add_argument("--no-render", action="store_true", help="skip rendering: pages and site only")
    build.add_argument("--quiet", action="store_true", help="log lines instead of progress bars")
    serve = sub.add_parser("serve", help="serve the site at http://127.0.0.1:8000, rebuilt as files change")
    serve.add_argument("--mkdocs", type=Path, default=Path("mkdocs.yml"),
                       help="the site's configuration (default: ./mkdocs.yml)")
    serve.add_argument("--engine", choices=("mkdocs", "zensical"), default="mkdocs")
    serve.add_argument("--dev-addr", default="127.0.0.1:8000", metavar="IP:PORT")
    serve.set_defaults(backend=None)
    init = sub.add_parser("init", parents=[common, choose],
                          help="a new atlas folder for a model: mkdocs.yml, [tool.filter-atlas], build")
    init.add_argument("folder", type=Path, metavar="DIR", help="the atlas's folder (made if missing)")
    init.add_argument("--no-build", action="store_true", help="only write the two files")
    init.add_argument("--quiet", action="store_true", help="log lines instead of progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    try:
        return _run(args)
    except AtlasError as exc:
        print(f"filter-atlas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("filter-atlas: interrupted; finished filters are saved, run again to resume",
              file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    overrides = {k: getattr(args, k, None) for k in
                 ("model", "weights", "preprocess", "size", "seed", "layers", "sample", "filters",
                  "recipe", "precision", "steps", "batch", "out", "views", "views_size", "examples")}
    if args.command == "init":
        return _init(args, overrides)
    if args.command == "serve":
        from .site import serve_site

        serve_site(args.mkdocs, args.dev_addr, args.engine)
        return 0
    if args.command == "merge":
        from .shards import merge

        count, replaced = merge(args.shard_dirs, args.out, replace=args.replace)
        note = f" (replaced {replaced} rendered with other settings)" if replaced else ""
        print(f"merged {count} filters from {len(args.shard_dirs)} shards -> {args.out}{note}")
        return 0
    config = read_config(args.config, required=True) if args.config else read_config(Path("pyproject.toml"))
    spec = build_spec(config, overrides)
    if args.command in ("pages", "build"):
        return _site(args, spec)
    from .shards import Shard

    shard = Shard.parse(args.shard) if getattr(args, "shard", None) else None  # before the model loads
    _load_libraries(args.verbose)
    from . import atlas  # imports Keras: only after the backend is chosen

    if args.command == "layers":
        loaded = atlas.open_model(spec)
        size = spec.size or loaded.default_size()
        loaded.check_size(size)
        print(f"{'layer':<24} {'filters':>7}  {'output at ' + size_text(size) + ' px':<22} one filter is")
        for layer in loaded.conv_layers(size):
            print(f"{layer.name:<24} {layer.filters:>7}  {layer.output_shape!s:<22} {layer.kind}")
        return 0
    if args.command == "naturals":
        _naturals(spec, args.quiet, args.force)
        return 0
    _render(spec, args.quiet, args.force, shard)
    return 0


def _naturals(spec: AtlasSpec, quiet: bool, force: bool = False) -> None:
    """Measure the natural evidence of every filter and report it."""
    from . import atlas
    from .evidence_pass import natural_evidence

    s = natural_evidence(spec, atlas.open_model(spec), quiet=quiet, force=force)
    state = "fresh, nothing to do" if s.fresh else f"measured {s.used} images ({s.cached} from the cache)"
    print(f"naturals: {s.filters} filters of {s.layers} layers, {state} -> {s.path}")


def _render(spec: AtlasSpec, quiet: bool, force: bool = False, shard: Shard | None = None) -> None:
    """Render the spec's atlas and report it."""
    from . import atlas  # imports Keras: only after the backend is chosen

    _report(atlas.render(spec, quiet=quiet, force=force, shard=shard), spec)


def _report(summary: atlas_types.Summary, spec: AtlasSpec) -> None:
    failed = f", {summary.failed} failed" if summary.failed else ""
    print(f"rendered {summary.rendered}, skipped {summary.skipped} fresh, {summary.dead} dead{failed} "
          f"({spec.selection.describe()} per layer) -> {summary.manifest}")


def _site(args: argparse.Namespace, spec: AtlasSpec) -> int:
    """``pages``: the Markdown pages; ``build``: render what is missing, the pages, then the site."""
    if args.command == "pages":
        _pages(spec, args.docs)
    else:
        _build(spec, args, args.docs, args.mkdocs, args.site, render=not args.no_render)
    return 0


def _pages(spec: AtlasSpec, docs: Path) -> None:
    from .pages import write_pages

    _repair_thumbnails(spec.out)
    files, changed = write_pages(spec.out, docs)
    print(f"pages: {changed} of {files} files changed -> {docs}")


def _build(spec: AtlasSpec, args: argparse.Namespace, docs: Path, mkdocs: Path, site: Path | None,
           render: bool) -> None:
    """Render what is missing (``render``: the images, then the natural evidence), write the
    pages, build the site."""
    if render:
        _load_libraries(args.verbose)
        try:
            _render(spec, args.quiet)
            _naturals(spec, args.quiet)
        except WeightsUnavailable as exc:  # the committed atlas is built as it is
            print(f"filter-atlas: could not check the atlas for missing images: {exc}; "
                  "building the pages and site from what is there", file=sys.stderr)
    _pages(spec, docs)
    from .site import build_site

    print(f"site: {build_site(mkdocs, docs, site, engine=getattr(args, 'engine', 'mkdocs'))}")


def _init(args: argparse.Namespace, overrides: dict) -> int:
    """``init DIR``: write DIR's mkdocs.yml and [tool.filter-atlas] from the flags, then build there."""
    from .scaffold import init_folder

    folder = args.folder
    settings = {k: v for k, v in overrides.items() if v is not None and k != "out"}
    build_spec(settings, {})  # bad values are refused before anything is written
    for key in ("model", "weights", "examples"):  # files named by path: as seen from DIR
        if key in settings and Path(settings[key]).exists():
            settings[key] = shown_path(Path(settings[key]), folder)
    if isinstance(settings.get("layers"), str):
        settings["layers"] = [part.strip() for part in settings["layers"].split(",") if part.strip()]
    name = f"{Path(str(settings.get('model', 'vgg16'))).stem} filter atlas"
    for path in init_folder(folder, name, {**settings, "out": "docs/atlas"}):
        print(f"wrote {path}")
    if args.no_build:
        return 0
    here = Path.cwd()
    os.chdir(folder)  # the configuration's paths are relative to DIR
    try:
        spec = build_spec(read_config(Path("pyproject.toml")), {})
        _build(spec, args, Path("docs"), Path("mkdocs.yml"), None, render=True)
    finally:
        os.chdir(here)
    print(f"browse it: cd {folder} && filter-atlas serve   (or open {folder / 'site/index.html'})")
    return 0


def _repair_thumbnails(out: Path) -> None:
    """Rebuild any thumbnail lost or damaged since the render, before pages link to it."""
    from .store import MANIFEST, Store

    if (out / MANIFEST).is_file():
        repaired = Store(out).repair_thumbnails()
        if repaired:
            print(f"rebuilt {repaired} damaged thumbnail(s) from their images", file=sys.stderr)


def _load_libraries(verbose: bool) -> None:
    """Import Keras and start its backend; unless ``verbose``, without the libraries' own log
    lines (TensorFlow, absl, oneDNN, CUDA probes), which a user would read as failures."""
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        warnings.filterwarnings("ignore")
    with contextlib.nullcontext() if verbose else _stderr_silenced():
        from .engine import backend

        backend.device()  # the first device query: where CUDA probes log


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null: C++ libraries log there before any setting of theirs applies."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
