#!/usr/bin/env bash
# Side-by-side benchmark: `next start` and the tower-next axum example (release build,
# native answers on), serving the same build of the fixture app, loaded in turn by wrk on
# 127.0.0.1. Prints req/s, p50 and p99 of each, the ratios, and the memory of both.
#
#   bash benches/run.sh            # about 4.5 minutes
#
# Knobs (environment): DURATION (s per measured run, 4), ROUNDS (measured runs per
# server and route, alternating between the servers; the median is shown, 3), WARMUP
# (s, 2), CONNECTIONS (32), THREADS (2), WORKERS (tower-next's Node workers; default: the
# pool's, one per core). Every load run is bounded by DURATION; nothing
# listens beyond 127.0.0.1. The numbers are ratios measured in one run on a shared
# machine: compare the columns, not runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
APP=$ROOT/tests/fixtures/app15
DURATION=${DURATION:-4}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-$(nproc)}
export NEXT_TELEMETRY_DISABLED=1 NEXT_IGNORE_INCORRECT_LOCKFILE=1

step() { printf '\n--- %s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
  step "installing wrk (Debian)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is needed: sudo apt-get install wrk" >&2
    exit 1
  fi
fi

if [ ! -f "$APP/node_modules/next/package.json" ]; then
  step "npm ci in $APP (~15 s)"
  (cd "$APP" && npm ci --no-audit --no-fund)
fi
if [ ! -f "$APP/.next/BUILD_ID" ] || [ -n "$(cd "$APP" && find app pages public components middleware.js next.config.js package.json -newer .next/BUILD_ID 2>/dev/null | head -1)" ]; then
  step "next build in $APP (~30 s)"
  (cd "$APP" && node node_modules/next/dist/bin/next build >/dev/null)
fi

step "cargo build --release --example axum_layer"
cargo build --release --quiet --example axum_layer
TOWER_NEXT=$ROOT/target/release/examples/axum_layer

free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}
NS_PORT=$(free_port 3401)
TN_PORT=$(free_port $((NS_PORT + 1)))

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

step "starting next start on 127.0.0.1:$NS_PORT and tower-next on 127.0.0.1:$TN_PORT"
(cd "$APP" && exec node node_modules/next/dist/bin/next start -H 127.0.0.1 -p "$NS_PORT") >/dev/null 2>&1 &
NS_PID=$!
PIDS+=("$NS_PID")
WORKERS=$WORKERS NODE_ENV=production PORT=$TN_PORT NEXT_DIR=$APP RUST_LOG=warn "$TOWER_NEXT" >/dev/null 2>&1 &
TN_PID=$!
PIDS+=("$TN_PID")

for port in "$NS_PORT" "$TN_PORT"; do
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/about")" = 200 ] && break
    sleep 0.1
  done
done

# The fixture's /_next/static chunks: the webpack runtime (small) and the framework (large).
small_chunk=$(cd "$APP/.next/static/chunks" && ls webpack-*.js | head -1)
large_chunk=$(cd "$APP/.next/static/chunks" && ls framework-*.js | head -1)
size_kb() { awk -v b="$(stat -c %s "$APP/.next/static/chunks/$1")" 'BEGIN { printf "%.1f KB", b / 1024 }'; }

# label|path|extra request header
ROUTES=(
  "prerendered app page /about|/about|"
  "static pages-router page /legacy|/legacy|"
  "/_next/static chunk ($(size_kb "$small_chunk"))|/_next/static/chunks/$small_chunk|"
  "/_next/static chunk ($(size_kb "$large_chunk"))|/_next/static/chunks/$large_chunk|"
  "public file /robots.txt|/robots.txt|"
  "dynamic SSR page /dynamic|/dynamic|"
  "route handler /api/hello|/api/hello|"
  "prerendered app page, gzip|/about|Accept-Encoding: gzip"
  "chunk ($(size_kb "$large_chunk")), gzip|/_next/static/chunks/$large_chunk|Accept-Encoding: gzip"
)

# Milliseconds from wrk's "417.00us" / "1.20ms" / "1.05s".
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else { printf "nan" } }'
}

# Runs wrk; prints "req/s p50_ms p99_ms".
load() {
  local url=$1 header=$2 seconds=$3 out
  if [ -n "$header" ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" --latency -H "$header" "$url" 2>&1)
  else
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" --latency "$url" 2>&1)
  fi
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  errors=$(awk '/Non-2xx or 3xx responses|Socket errors/ { print }' <<<"$out")
  [ -n "$errors" ] && echo "  wrk $url: $errors" >&2
  echo "${rps:-0} $(to_ms "${p50:-nan}") $(to_ms "${p99:-nan}")"
}

# Median of the rounds' numbers, column by column (a neighbour's load spike moves a mean).
median() {
  local rows column values n
  rows=$(cat)
  n=$(wc -l <<<"$rows")
  for column in 1 2 3; do
    values=$(cut -d' ' -f"$column" <<<"$rows" | sort -g)
    printf '%s ' "$(sed -n "$(((n + 1) / 2))p" <<<"$values")"
  done
}

step "load: wrk -t$THREADS -c$CONNECTIONS, ${WARMUP}s warm-up, then $ROUNDS x ${DURATION}s per server and route, alternating"
RESULTS=()
for route in "${ROUTES[@]}"; do
  IFS='|' read -r label path header <<<"$route"
  printf '  %s\n' "$label" >&2
  load "http://127.0.0.1:$NS_PORT$path" "$header" "$WARMUP" >/dev/null
  load "http://127.0.0.1:$TN_PORT$path" "$header" "$WARMUP" >/dev/null
  ns_runs=""
  tn_runs=""
  for _ in $(seq 1 "$ROUNDS"); do
    ns_runs+="$(load "http://127.0.0.1:$NS_PORT$path" "$header" "$DURATION")"$'\n'
    tn_runs+="$(load "http://127.0.0.1:$TN_PORT$path" "$header" "$DURATION")"$'\n'
  done
  RESULTS+=("$label|$(median <<<"${ns_runs%$'\n'}")|$(median <<<"${tn_runs%$'\n'}")")
done

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
tree_rss_kb() {
  local total
  total=$(rss_kb "$1")
  for child in $(pgrep -P "$1" || true); do total=$((total + $(tree_rss_kb "$child"))); done
  echo "$total"
}
NS_RSS=$(tree_rss_kb "$NS_PID")
TN_RSS=$(rss_kb "$TN_PID")
TN_HWM=$(hwm_kb "$TN_PID")
WORKER_RSS=0
for child in $(pgrep -P "$TN_PID" || true); do WORKER_RSS=$((WORKER_RSS + $(tree_rss_kb "$child"))); done

printf '\n## tower-next (%s workers) vs next start (Next.js %s, %s cores, wrk -t%s -c%s, median of %s x %ss per cell)\n\n' \
  "$WORKERS" "$(node -p "require('$APP/node_modules/next/package.json').version")" "$(nproc)" "$THREADS" "$CONNECTIONS" "$ROUNDS" "$DURATION"
printf '| route | next start req/s | p50 ms | p99 ms | tower-next req/s | p50 ms | p99 ms | req/s ratio | p99 ratio |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for result in "${RESULTS[@]}"; do
  IFS='|' read -r label ns tn <<<"$result"
  read -r ns_rps ns_p50 ns_p99 <<<"$ns"
  read -r tn_rps tn_p50 tn_p99 <<<"$tn"
  awk -v l="$label" -v a="$ns_rps" -v b="$ns_p50" -v c="$ns_p99" -v d="$tn_rps" -v e="$tn_p50" -v f="$tn_p99" 'BEGIN {
    printf "| %s | %d | %.2f | %.2f | %d | %.2f | %.2f | %.1fx | %.1fx lower |\n", l, a, b, c, d, e, f, (a > 0 ? d / a : 0), (f > 0 ? c / f : 0) }'
done
printf '\nRSS after the load: next start %d MB; tower-next: Rust process %d MB (peak %d MB) + Node workers %d MB.\n' \
  $((NS_RSS / 1024)) $((TN_RSS / 1024)) $((TN_HWM / 1024)) $((WORKER_RSS / 1024))
printf 'Ratios are tower-next / next start for req/s, next start / tower-next for p99.\n'
