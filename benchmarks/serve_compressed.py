"""Serve a built site on localhost the way a static host does for Lighthouse: text responses
(HTML, CSS, JavaScript, JSON, SVG) gzipped when the client accepts it, a cache lifetime on every
response, and the site's 404.html for a missing path (as GitHub Pages does).

    python benchmarks/serve_compressed.py SITE_DIR [--port 8000] [--prefix /filter-atlas/]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import io
import os
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

TEXT = (".html", ".css", ".js", ".json", ".svg", ".xml", ".txt", ".map")


class Handler(SimpleHTTPRequestHandler):
    """Static files, gzipped where that helps, with the site's 404 page for missing paths."""

    prefix = "/"
    protocol_version = "HTTP/1.1"  # keep-alive, as a real host
    extensions_map: ClassVar[dict[str, str]] = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".webp": "image/webp", ".js": "text/javascript", ".json": "application/json"}

    def log_message(self, *args: object) -> None:
        pass

    def translate_path(self, path: str) -> str:
        inside = path.startswith(self.prefix)
        return super().translate_path("/" + path[len(self.prefix):] if inside else "/\0missing")

    def send_head(self) -> io.BytesIO | None:
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        status = HTTPStatus.OK
        if not os.path.isfile(path):
            path, status = os.path.join(self.directory, "404.html"), HTTPStatus.NOT_FOUND
            if not os.path.isfile(path):
                self.send_error(HTTPStatus.NOT_FOUND)
                return None
        body = Path(path).read_bytes()
        gzipped = path.endswith(TEXT) and "gzip" in self.headers.get("Accept-Encoding", "")
        if gzipped:
            body = gzip.compress(body, 6)
        self.send_response(status)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=600")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Vary", "Accept-Encoding")
        self.end_headers()
        return io.BytesIO(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--prefix", default="/", help="the path the site lives under, e.g. /filter-atlas/")
    args = parser.parse_args()
    prefix = "/" + args.prefix.strip("/") + "/" if args.prefix.strip("/") else "/"
    handler = type("SiteHandler", (Handler,), {"prefix": prefix})
    server = ThreadingHTTPServer((args.host, args.port), functools.partial(handler, directory=str(args.site)))
    print(f"serving {args.site} at http://{args.host}:{server.server_port}{prefix}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
