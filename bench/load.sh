#!/usr/bin/env bash
# Load test of sign-in and registration (README, Benchmarks, "Sign-in under load").
#
# Starts the release binary with `serve --demo` in a fresh data directory (and, with
# --store postgres://..., a fresh database it drops afterwards), throttling at its defaults
# and 127.0.0.1 as the trusted proxy, so X-Forwarded-For names the client. Signs in a set of
# households first (their sessions are what the reads and writes use), then runs wrk with
# bench/signin.lua: API and page sign-ins with right and wrong pairs, registration reads and
# phone changes, each from one of --clients addresses. Prints requests/s, latency
# percentiles, the answers by status (429 is a throttled attempt, 404 a wrong pair) and the
# server's resident memory at its peak (VmHWM).
#
#   bench/load.sh [--store sqlite|postgres://user@host:port[/db]] [--duration 30s]
#                 [--connections 32] [--threads 2] [--clients 10000] [--sessions 2000]
#                 [--right 0.8] [--bin path/to/varsel] [--perf perf.data]
#
# --perf records the server's profile during the load (`perf report -i perf.data`).
# The request mix is set with LOAD_API_SIGNIN, LOAD_PAGE_SIGNIN and LOAD_READS (shares,
# default 0.60, 0.10, 0.25; the rest phone saves, each a real change with LOAD_CHANGES=1).
set -euo pipefail
cd "$(dirname "$0")/.."

store=sqlite
duration=30s
connections=32
threads=2
clients=10000
sessions=2000
right=0.8
bin=""
perf_out=""
while (($#)); do
  case "$1" in
    --store) store="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --sessions) sessions="$2"; shift 2 ;;
    --right) right="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --perf) perf_out="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$clients" =~ ^[0-9]+$ ]] || ((clients < 1 || clients > 16000000)); then
  echo "--clients must be 1..16000000" >&2; exit 2
fi
if ! [[ "$sessions" =~ ^[0-9]+$ ]] || ((sessions < 1 || sessions > 5000)); then
  echo "--sessions must be 1..5000 (the demo town has 5,000 facilities)" >&2; exit 2
fi

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing: wrk (the load generator, from Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
if [ -n "$perf_out" ] && ! command -v perf >/dev/null 2>&1; then
  echo "--perf needs perf (Debian: linux-perf)" >&2; exit 1
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is needed" >&2; exit 1; }
done

if [ -z "$bin" ]; then
  bin="${CARGO_TARGET_DIR:-target}/release/varsel"
  echo "building the release binary"
  cargo build --release --locked -q
fi
[ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }

tmp="$(mktemp -d)"
pid=""
db=""
base=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$db" ]; then psql "$base/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

case "$store" in
  sqlite) unset VARSEL_DATABASE_URL ;;
  postgres://*)
    command -v psql >/dev/null 2>&1 || { echo "psql is needed for --store postgres" >&2; exit 1; }
    # The server's address; a database named in the URL is ignored (a fresh one is made).
    rest="${store#postgres://}"
    base="postgres://${rest%%/*}"
    db="varsel_load_$$"
    psql "$base/postgres" -qc "CREATE DATABASE $db"
    export VARSEL_DATABASE_URL="$base/$db"
    ;;
  *) echo "--store is sqlite or postgres://user@host:port" >&2; exit 2 ;;
esac

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
printf '[registration]\ntrusted_proxies = ["127.0.0.1/32"]\n' >"$tmp/varsel.toml"
VARSEL_CONFIG="$tmp/varsel.toml" VARSEL_DATA_DIR="$tmp/data" VARSEL_LISTEN="127.0.0.1:$port" \
  VARSEL_PUBLIC_URL="$url" "$bin" serve --demo >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 240); do
  curl -fs "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; echo "the server stopped" >&2; exit 1; }
  sleep 0.5
done
curl -fs "$url/healthz" >/dev/null || { tail -20 "$tmp/serve.log" >&2; echo "the server did not start" >&2; exit 1; }

# The load script's invoice pairs must be the demo town's: one right pair signs in, the same
# facility with another customer number does not.
signin() {
  curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "X-Forwarded-For: $1" -d "{\"tenant\":\"alvstad\",\"service\":\"electricity\",\"customer_number\":\"$2\",\"facility_number\":\"$3\"}" \
    "$url/api/v1/registration/session"
}
right_answer="$(signin 192.0.2.1 100001 735999100000000001)"
wrong_answer="$(signin 192.0.2.2 999999 735999100000000001)"
if [ "$right_answer" != 201 ] || [ "$wrong_answer" != 404 ]; then
  echo "the demo's invoice pairs are not the ones bench/signin.lua uses (right $right_answer, wrong $wrong_answer)" >&2
  exit 1
fi

# Households signed in before the load, spread over the town, each from its own address
# outside the load's: their sessions serve the reads and phone changes.
: >"$tmp/curl.cfg"
for ((i = 0; i < sessions; i++)); do
  k=$((i * 5000 / sessions))
  if ((k < 3500)); then
    service=electricity; fac=$(printf '7359991%011d' $((k + 1))); cust=$((100001 + k))
  else
    service=district_heating; fac=$(printf 'FV-%06d' $((k - 3500 + 1))); cust=$((100001 + k - 3500))
  fi
  ((i == 0)) || echo next >>"$tmp/curl.cfg"
  printf 'url = "%s/api/v1/registration/session"\nheader = "Content-Type: application/json"\nheader = "X-Forwarded-For: 172.16.%d.%d"\ndata = "{\\"tenant\\":\\"alvstad\\",\\"service\\":\\"%s\\",\\"customer_number\\":\\"%s\\",\\"facility_number\\":\\"%s\\"}"\nwrite-out = " %d\\n"\n' \
    "$url" $((i / 256)) $((i % 256)) "$service" "$cust" "$fac" "$k" >>"$tmp/curl.cfg"
done
curl -s -K "$tmp/curl.cfg" |
  sed -n 's/^{"session":"\([^"]*\)".* \([0-9]*\)$/\1 \2/p' >"$tmp/sessions"
got=$(wc -l <"$tmp/sessions")
if [ "$got" -ne "$sessions" ]; then
  echo "only $got of $sessions households signed in before the load" >&2; exit 1
fi

status() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
idle_kb=$(status "$pid" VmRSS)
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "store $store; $(nproc) cores; load average before: $load_before"
echo "wrk -t$threads -c$connections -d$duration; $clients client addresses; $sessions sessions; right pairs $right"
# utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat, after the command).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
ticks_before=$(cpu_ticks "$pid")
perf_pid=""
if [ -n "$perf_out" ]; then
  perf record -q -g -p "$pid" -o "$perf_out" 2>/dev/null &
  perf_pid=$!
fi
# The load generator shares the cores: its CPU time is printed too.
TIMEFORMAT='%U %S'
{ time LOAD_TENANT=alvstad LOAD_CLIENTS="$clients" LOAD_RIGHT="$right" LOAD_SESSIONS="$tmp/sessions" \
  wrk -t"$threads" -c"$connections" -d"$duration" -s bench/signin.lua "$url" >"$tmp/wrk.out"; } 2>"$tmp/wrk.time"
if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
ticks=$(($(cpu_ticks "$pid") - ticks_before))
peak_kb=$(status "$pid" VmHWM)
rss_kb=$(status "$pid" VmRSS)
kill -0 "$pid" || { echo "the server died under load" >&2; exit 1; }
grep '^LOAD ' "$tmp/wrk.out" | sed 's/^LOAD //'
grep -q '^LOAD status' "$tmp/wrk.out" || { cat "$tmp/wrk.out" >&2; exit 1; }
errors=$(grep -c -E ' (ERROR|WARN) ' "$tmp/serve.log" || true)
requests=$(sed -n 's/^LOAD requests=\([0-9]*\) .*/\1/p' "$tmp/wrk.out")
awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
  'BEGIN { printf "server CPU: %.1f s, %.3f ms per request\n", t / hz, n ? 1000 * t / hz / n : 0 }'
awk 'END { printf "wrk CPU: %.1f s\n", $1 + $2 }' "$tmp/wrk.time"
echo "server: rss idle $((idle_kb / 1024)) MiB, after $((rss_kb / 1024)) MiB, peak (VmHWM) $((peak_kb / 1024)) MiB; $errors warnings or errors logged"
grep -E ' (ERROR|WARN) ' "$tmp/serve.log" | head -3 || true
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
