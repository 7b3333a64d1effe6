#!/usr/bin/env bash
# Lighthouse (accessibility, best practices, performance) on every page of the built site, desktop
# and mobile presets, the site served gzipped on localhost (benchmarks/serve_compressed.py).
# Writes one JSON report per page and preset to $OUT_DIR and the table to $TABLE.
#
#   npm install --prefix /tmp/lh lighthouse@12      # once
#   benchmarks/lighthouse.sh                        # LIGHTHOUSE=/tmp/lh/node_modules/.bin/lighthouse
#
# Targets: accessibility and best practices 100 on every page; performance >= 95 (desktop), >= 90 (mobile).
set -euo pipefail
export NO_MKDOCS_2_WARNING=1
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LIGHTHOUSE=${LIGHTHOUSE:-/tmp/lh/node_modules/.bin/lighthouse}
export CHROME_PATH=${CHROME_PATH:-/usr/bin/chromium}
SITE=${SITE:-/tmp/lighthouse-site}
OUT_DIR=${OUT_DIR:-/tmp/lighthouse}
TABLE=${TABLE:-/tmp/lighthouse.md}
PORT=${PORT:-8765}
PRESETS=${PRESETS:-"desktop mobile"}

.venv/bin/mkdocs build --strict -q -d "$SITE"
mkdir -p "$OUT_DIR"
"$PY" benchmarks/serve_compressed.py "$SITE" --port "$PORT" >/dev/null &
SERVER=$!
trap 'kill $SERVER' EXIT
sleep 1

PAGES=${PAGES:-$(cd "$SITE" && find . -name '*.html' ! -name 404.html | sed 's|^\./||' | sort)}
for page in $PAGES; do
  for preset in $PRESETS; do
    name="$(echo "$page" | tr / _)-$preset"
    flags=()
    [ "$preset" = desktop ] && flags=(--preset=desktop)
    "$LIGHTHOUSE" "http://127.0.0.1:$PORT/$page" "${flags[@]}" --quiet \
      --only-categories=accessibility,best-practices,performance \
      --chrome-flags="--headless --no-sandbox" \
      --output=json --output-path="$OUT_DIR/$name.json" || echo "lighthouse failed on $page ($preset)" >&2
    echo "$page $preset done" >&2
  done
done

"$PY" - "$OUT_DIR" "$TABLE" <<'PYEOF'
import json, sys
from pathlib import Path

out, table = Path(sys.argv[1]), Path(sys.argv[2])
cats = ("accessibility", "best-practices", "performance")
rows = ["| page | preset | accessibility | best practices | performance | LCP | TBT | CLS | below 100 (or 90/95 perf) |",
        "|---|---|---|---|---|---|---|---|---|"]
for report in sorted(out.glob("*.json")):
    r = json.loads(report.read_text())
    page = r["finalDisplayedUrl"].split("/", 3)[3] or "index.html"
    preset = report.stem.rsplit("-", 1)[1]
    scores = {c: round(100 * (r["categories"][c]["score"] or 0)) for c in cats}
    audits = r["audits"]
    failing = []
    for c in cats:
        if c == "performance":
            continue
        for ref in r["categories"][c]["auditRefs"]:
            a = audits[ref["id"]]
            if ref["weight"] and a["score"] is not None and a["score"] < 1:
                failing.append(ref["id"])
    lcp = audits["largest-contentful-paint"]["displayValue"]
    tbt = audits["total-blocking-time"]["displayValue"]
    cls = audits["cumulative-layout-shift"]["displayValue"]
    rows.append(f"| {page} | {preset} | {scores['accessibility']} | {scores['best-practices']} | "
                f"{scores['performance']} | {lcp} | {tbt} | {cls} | {', '.join(failing)} |")
table.write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PYEOF
