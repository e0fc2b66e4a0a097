#!/usr/bin/env bash
# Peak memory of one facilities load over the API (README, Benchmarks, "Loads").
#
# Writes N facilities shaped like the demo town's (default 165,000: a JSON array of about
# 60 MiB, and the same rows as NDJSON and CSV), then per format starts the binary on a fresh
# SQLite data directory, PUTs the file to /api/v1/facilities with curl and prints the answer,
# the time it took and the server's resident memory before the load and at its peak (VmHWM);
# last, the CSV through `varsel import facilities` and its peak.
#
#   bench/import-rss.sh [--bin path/to/varsel] [--rows 165000]
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${CARGO_TARGET_DIR:-target}/release/varsel"
rows=165000
while (($#)); do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    *) echo "unknown argument $1 (bench/import-rss.sh [--bin path] [--rows N])" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release --locked)" >&2; exit 1; }

tmp="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

python3 - "$rows" "$tmp" <<'EOF'
import csv, json, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
streets = ["Storgatan", "Kyrkogatan", "Skolgatan", "Järnvägsgatan", "Parkvägen",
           "Björkvägen", "Tallvägen", "Ringvägen", "Strandvägen", "Norra Långgatan"]
random.seed(1)
with open(f"{out}/facilities.json", "w") as array, open(f"{out}/facilities.ndjson", "w") as lines, \
        open(f"{out}/facilities.csv", "w", newline="") as table:
    array.write("[")
    rows = None
    for i in range(n):
        s, no = i % len(streets), i // len(streets) % 400 + 1
        postcode = f"863 {30 + s % 5 * 2:02d}"
        row = {"facility_number": f"7359991{i + 1:011d}", "service": "electricity",
               "customer_number": str(100001 + i), "street": streets[s], "house_number": str(no),
               "postcode": postcode, "town": "Älvstad",
               "latitude": f"{62.39 + s * 0.002 + random.random() * 0.002:.6f}",
               "longitude": f"{17.28 + no * 0.0007 + random.random() * 0.002:.6f}",
               "grid_node": f"ALV-N{s % 20 + 1:02d}", "holder_name": f"Hushåll {i + 1}",
               "postal_street": f"{streets[s]} {no}", "postal_postcode": postcode,
               "postal_town": "Älvstad", "language": "en" if random.random() < 0.05 else "sv"}
        text = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
        array.write(("," if i else "") + "\n" + text)
        lines.write(text + "\n")
        if rows is None:
            rows = csv.DictWriter(table, fieldnames=list(row), delimiter=";", lineterminator="\n")
            rows.writeheader()
        rows.writerow(row)
    array.write("\n]\n")
EOF

kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
for format in json ndjson; do
  file="$tmp/facilities.$format"
  type=application/json
  [ "$format" = ndjson ] && type=application/x-ndjson
  export VARSEL_DATA_DIR="$tmp/data-$format"
  token="$("$bin" tenant create --slug alvstad --name "Älvstad Energi" --sender-id Alvstad \
    --privacy-contact dpo@alvstad.example --service electricity 2>/dev/null | grep -o 'vst_[0-9a-f]*' | head -1)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  url="http://127.0.0.1:$port"
  VARSEL_LISTEN="127.0.0.1:$port" VARSEL_PUBLIC_URL="$url" "$bin" serve >"$tmp/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do curl -fs "$url/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
  idle=$(kib "$pid" VmRSS)
  answer="$(curl -s -o "$tmp/report.json" -w '%{http_code} %{time_total}' -X PUT -T "$file" \
    -H "Authorization: Bearer $token" -H "Content-Type: $type" "$url/api/v1/facilities")"
  peak=$(kib "$pid" VmHWM)
  inserted="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("inserted"))' "$tmp/report.json")"
  printf '%-6s %d rows, %d MiB: HTTP %s in %.1f s, %s inserted; RSS idle %d MiB, peak (VmHWM) %d MiB\n' \
    "$format" "$rows" $(($(stat -c %s "$file") / 1048576)) "${answer% *}" "${answer#* }" "$inserted" \
    $((idle / 1024)) $((peak / 1024))
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done

# The same rows as CSV through `varsel import facilities`, for its peak (GNU time's %M).
export VARSEL_DATA_DIR="$tmp/data-csv"
"$bin" tenant create --slug alvstad --name "Älvstad Energi" --sender-id Alvstad \
  --privacy-contact dpo@alvstad.example --service electricity >/dev/null 2>&1
if [ -x /usr/bin/time ]; then
  /usr/bin/time -o "$tmp/time" -f '%M %e' "$bin" import facilities "$tmp/facilities.csv" --tenant alvstad >/dev/null 2>&1
  read -r peak secs <"$tmp/time"
  printf '%-6s %d rows, %d MiB: varsel import facilities in %.1f s; peak RSS %d MiB\n' \
    csv "$rows" $(($(stat -c %s "$tmp/facilities.csv") / 1048576)) "$secs" $((peak / 1024))
fi
