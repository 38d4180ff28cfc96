#!/usr/bin/env bash
# End-to-end latency of `tidemark serve` under load: for each transport (HTTP, MQTT through a
# local Mosquitto) and each rate, a fresh server takes `tidemark replay` at that rate and the
# replay reports send-to-progress-mark latency percentiles. Needs `mosquitto` for the MQTT rows.
# Usage: benches/live.sh [SECONDS] [RATES...]   (default 30 s after 5 s warmup; 10k 20k 50k 100k)
# LIVE_REPLAY_ARGS adds replay options, e.g. LIVE_REPLAY_ARGS="--batch 500 --connections 8".
# LIVE_TRANSPORTS="http" runs one transport only.
# LIVE_SHAPE=sparse replays a log of the sparse shape (the figures recorded before the real shape
# was the generator's default) instead of the default real shape.
# A rate past what the server sustains is an overload run: over HTTP the server answers 429
# once it is serve.max_lag behind (the pushed_back column), over MQTT it takes messages later.
# LIVE_BIN=PATH runs that tidemark binary (another build, for a paired comparison) instead of
# building this checkout.
# Logs, reports and server output go under ${TMPDIR:-/tmp}/tidemark-live.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(10000 20000 50000 100000)
dir=${TMPDIR:-/tmp}/tidemark-live
mkdir -p "$dir"
if [ -n "${LIVE_BIN:-}" ]; then
  bin=$LIVE_BIN
else
  cargo build --release -q
  bin=target/release/tidemark
fi
http_port=17878
mqtt_port=18883

# One log long enough for the highest rate (about 4 million events).
shape=${LIVE_SHAPE:-real}
case $shape in
  real) persons=200000 ;;
  sparse) persons=140000 ;;
  *) echo "LIVE_SHAPE must be real or sparse" >&2; exit 2 ;;
esac
log=$dir/4m-$shape.ndjson
[ -s "$log" ] || "$bin" generate --shape "$shape" --persons "$persons" --days 60 --seed 7 --output "$log"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
trap cleanup EXIT

wait_for() { # url
  for _ in $(seq 200); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nothing answers at $1" >&2
  exit 1
}

broker() {
  cat >"$dir/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 100000
message_size_limit 1048576
EOF
  local m
  m=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  "$m" -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "mosquitto does not listen on $mqtt_port; see $dir/mosquitto.log" >&2
  exit 1
}

exec > >(tee "$dir/live.txt")
printf '%-5s %-8s %-10s %-10s %-8s %-8s %-8s %-8s %-8s %s\n' transport rate achieved accepted p50_ms p90_ms p99_ms max_ms missing pushed_back
for transport in ${LIVE_TRANSPORTS:-http mqtt}; do
  if [ "$transport" = mqtt ] && ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "mqtt: mosquitto not installed, skipped" >&2
    continue
  fi
  for rate in "${rates[@]}"; do
    serve_args=(serve --listen "127.0.0.1:$http_port")
    target=http://127.0.0.1:$http_port
    extra=()
    if [ "$transport" = mqtt ]; then
      broker
      serve_args+=(--mqtt "mqtt://127.0.0.1:$mqtt_port")
      target=mqtt://127.0.0.1:$mqtt_port
      extra=(--http "http://127.0.0.1:$http_port")
    fi
    # A fresh data directory per run: serve keeps what it accepts.
    rm -rf "$dir/data"
    serve_args+=(--data "$dir/data")
    "$bin" "${serve_args[@]}" >"$dir/serve-$transport-$rate.log" 2>&1 &
    pids+=($!)
    wait_for "http://127.0.0.1:$http_port/healthz"
    report=$dir/report-$transport-$rate.json
    rm -f "$report"
    "$bin" replay --input "$log" --target "$target" "${extra[@]}" --rate "$rate" \
      ${LIVE_REPLAY_ARGS:-} --duration "${seconds}s" --warmup 5s --report "$report" >"$dir/replay-$transport-$rate.log" 2>&1 ||
      echo "$transport $rate: replay exited $?; see $dir/replay-$transport-$rate.log" >&2
    curl -s "http://127.0.0.1:$http_port/metrics" >"$dir/metrics-$transport-$rate.txt" || true
    cleanup
    [ -s "$report" ] || { echo "$transport $rate: no report" >&2; continue; }
    python3 - "$report" "$transport" "$rate" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); l = r.get("latency_ms") or {}
f = lambda k: "%.1f" % l[k] if k in l else "-"
print("%-5s %-8s %-10.0f %-10s %-8s %-8s %-8s %-8s %-8s %s" % (sys.argv[2], sys.argv[3], r["achieved_rate"],
      r["accepted"], f("p50"), f("p90"), f("p99"), f("max"), r["missing"], r.get("pushed_back", 0)))
EOF
  done
done
