"""The ``filter-atlas`` command line: ``layers``, ``render``, ``merge``, ``pages`` and ``build``.

Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AtlasError
from .spec import AtlasSpec, build_spec, read_config

if TYPE_CHECKING:
    from . import atlas as atlas_types


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", type=Path, default=Path("pyproject.toml"),
                        help="pyproject.toml holding [tool.filter-atlas] (default: ./pyproject.toml)")
    common = argparse.ArgumentParser(add_help=False, parents=[config])
    common.add_argument("--backend", choices=("tensorflow", "jax"),
                        help="Keras backend (default: $KERAS_BACKEND or tensorflow)")
    common.add_argument("--model", help="keras.applications name (vgg16, vgg19, ...) or a .keras/.h5 file")
    common.add_argument("--weights", help="imagenet, random, or a weights file "
                        "(default: $FILTER_ATLAS_WEIGHTS, then the config)")
    common.add_argument("--preprocess", choices=("caffe", "tf", "torch", "raw"),
                        help="input preprocessing (default: the application's own; raw for files)")
    common.add_argument("--size", type=int, help="image side in pixels (default 224)")
    common.add_argument("--seed", type=int, help="seed for sampling, starts and transforms (default 0)")

    parser = _Parser(prog="filter-atlas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("layers", parents=[common], help="list the conv layers with filter counts and shapes")
    render = sub.add_parser("render", parents=[common], help="render Activation Maximization images")
    render.add_argument("--layers", help="comma-separated conv layer names (default: the config's)")
    pick = render.add_mutually_exclusive_group()
    pick.add_argument("--sample", type=int, help="K filters per layer, seeded, without replacement")
    pick.add_argument("--filters", help="filter indices such as 3,17,21, or 'all'")
    render.add_argument("--recipe", help="lucid or keras-vis")
    render.add_argument("--steps", type=int, help="optimization steps (default: the recipe's)")
    render.add_argument("--batch", type=int, help="filters optimized together (default 16)")
    render.add_argument("--out", type=Path, help="output directory (default docs/atlas)")
    render.add_argument("--views", help="comma-separated views: channel,negative,neuron,diversity,examples "
                        "or all (default: the config's, else all)")
    render.add_argument("--views-size", type=int, help="image side of the negative, neuron and diversity "
                        "views (default: --size)")
    render.add_argument("--examples", type=Path, help="folder of natural images (JPEG/PNG/WebP, recursive) "
                        "for the examples and the 'best natural photo' numbers (default: the bundled photos)")
    render.add_argument("--force", action="store_true", help="re-render even fresh filters")
    render.add_argument("--quiet", action="store_true", help="log lines instead of progress bars")
    render.add_argument("--shard", help="render only shard i of n (e.g. 2/4), balanced by cost; see merge")
    merge = sub.add_parser("merge", help="combine the output trees of all shards of one render")
    merge.add_argument("shard_dirs", nargs="+", type=Path, metavar="SHARD_DIR")
    merge.add_argument("--out", type=Path, default=Path("docs/atlas"),
                       help="merged atlas (default docs/atlas)")
    merge.set_defaults(backend=None)

    site = argparse.ArgumentParser(add_help=False)
    site.add_argument("--out", type=Path, help="the atlas folder, with manifest.json (default docs/atlas)")
    site.add_argument("--docs", type=Path, default=Path("docs"),
                      help="where the pages go; must contain the atlas (default: docs)")
    pages = sub.add_parser("pages", parents=[config, site], help="write the Markdown pages from the manifest")
    pages.set_defaults(backend=None)
    build = sub.add_parser("build", parents=[common, site],
                           help="render what is missing, write the pages, then mkdocs build --strict")
    build.add_argument("--mkdocs", type=Path, default=Path("mkdocs.yml"),
                       help="MkDocs configuration (default: ./mkdocs.yml)")
    build.add_argument("--site", type=Path, help="output folder (default: the configuration's site_dir)")
    build.add_argument("--no-render", action="store_true", help="skip rendering: pages and site only")
    build.add_argument("--quiet", action="store_true", help="log lines instead of progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
                 ("model", "weights", "preprocess", "size", "seed", "layers", "sample",
                  "filters", "recipe", "steps", "batch", "out", "views", "views_size", "examples")}
    if args.command == "merge":
        from .shards import merge

        count = merge(args.shard_dirs, args.out)
        print(f"merged {count} filters from {len(args.shard_dirs)} shards -> {args.out}")
        return 0
    spec = build_spec(read_config(args.config), overrides)
    if args.command in ("pages", "build"):
        return _site(args, spec)
    from . import atlas  # imports Keras: only after the backend is chosen

    if args.command == "layers":
        loaded = atlas.open_model(spec)
        loaded.check_size(spec.size)
        print(f"{'layer':<24} {'filters':>7}  output shape at {spec.size} px")
        for layer in loaded.conv_layers(spec.size):
            print(f"{layer.name:<24} {layer.filters:>7}  {layer.output_shape}")
        return 0
    from .shards import Shard

    shard = Shard.parse(args.shard) if args.shard else None
    _report(atlas.render(spec, quiet=args.quiet, force=args.force, shard=shard), spec)
    return 0


def _report(summary: atlas_types.Summary, spec: AtlasSpec) -> None:
    print(f"rendered {summary.rendered}, skipped {summary.skipped} fresh, {summary.dead} dead "
          f"({spec.selection.describe()} per layer) -> {summary.manifest}")


def _site(args: argparse.Namespace, spec: AtlasSpec) -> int:
    """``pages``: the Markdown pages; ``build``: render what is missing, the pages, then the site."""
    from .pages import write_pages

    if args.command == "build" and not args.no_render:
        from . import atlas  # imports Keras: only after the backend is chosen

        _report(atlas.render(spec, quiet=args.quiet), spec)
    files, changed = write_pages(spec.out, args.docs)
    print(f"pages: {changed} of {files} files changed -> {args.docs}")
    if args.command == "build":
        from .site import build_site

        print(f"site: {build_site(args.mkdocs, args.docs, args.site)}")
    return 0
