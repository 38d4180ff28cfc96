#!/usr/bin/env bash
# What durability buys and costs, on one 4-million-event log (140,000 persons over 60 days):
#  1. `tidemark compute` on the log: the time a restart must beat;
#  2. serve fills a fresh data directory over HTTP (50,000 events per request);
#  3. SIGTERM: time to stop (with the last checkpoint), then restart: time until it answers
#     with every event, and the rows compared with compute's;
#  4. SIGKILL with no checkpoint (checkpoint_every above the log): restart from the log alone;
#  5. with and without the log (serve.wal), `tidemark replay` at 20k and 50k events/s: the
#     achieved rate and latency percentiles.
# Usage: benches/durable.sh [SECONDS]   (replay length per run, default 20 s after 5 s warmup)
# Everything goes under ${TMPDIR:-/tmp}/tidemark-durable; figures to durable.txt there.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
dir=${TMPDIR:-/tmp}/tidemark-durable
mkdir -p "$dir"
cargo build --release -q
bin=$PWD/target/release/tidemark
port=17979
url=http://127.0.0.1:$port
log=$dir/4m.ndjson
[ -s "$log" ] || "$bin" generate --shape sparse --persons 140000 --days 60 --seed 7 --start 2026-09-01 --output "$log"
events=$(wc -l <"$log")
if [ ! -s "$dir/chunks/done" ]; then
  rm -rf "$dir/chunks" && mkdir -p "$dir/chunks"
  split -l 50000 -d -a 4 "$log" "$dir/chunks/c."
  touch "$dir/chunks/done" && echo 1 >"$dir/chunks/done"
fi

pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
wait_for() {
  for _ in $(seq 3000); do
    curl -sf "$url/healthz" >/dev/null 2>&1 && return 0
    sleep 0.02
  done
  echo "nothing answers at $url" >&2
  exit 1
}
accepted() { curl -sf "$url/v1/snapshot" | python3 -c "import json,sys; print(json.load(sys.stdin)['events']['accepted'])"; }
serve() { # data config logfile
  "$bin" serve --listen "127.0.0.1:$port" --data "$1" --config "$2" >"$3" 2>&1 &
  pid=$!
}
rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status"; }

exec > >(tee "$dir/durable.txt")
echo "log: $events events, $(du -h "$log" | cut -f1)"

t=$(now)
"$bin" compute --quiet --input "$log" >"$dir/compute.json"
compute_s=$(since "$t")
echo "compute: ${compute_s} s"

printf '' >"$dir/default.toml"
printf '[serve]\ncheckpoint_every = 1000000000\n' >"$dir/no-checkpoint.toml"
printf '[serve]\nwal = false\n' >"$dir/no-wal.toml"

for mode in ${DURABLE_MODES-checkpoint log-only}; do
  data=$dir/data-$mode
  rm -rf "$data"
  cfg=$dir/default.toml
  [ "$mode" = log-only ] && cfg=$dir/no-checkpoint.toml
  serve "$data" "$cfg" "$dir/serve-$mode-1.log"
  wait_for
  t=$(now)
  for f in "$dir"/chunks/c.*; do
    curl -sf -H 'Content-Type: application/x-ndjson' --data-binary @"$f" "$url/v1/events" >/dev/null
  done
  fill_s=$(since "$t")
  n=$(accepted)
  echo "$mode: filled over HTTP in ${fill_s} s ($(python3 -c "print(round($n / $fill_s))") events/s), $n accepted, peak RSS $(rss_mib) MiB; data directory $(du -sh "$data" | cut -f1)"
  if [ "$mode" = checkpoint ]; then
    t=$(now)
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$mode: SIGTERM to exit (with the last checkpoint): $(since "$t") s; checkpoint $(du -h "$data/checkpoint" | cut -f1), log $(du -sh "$data/wal" | cut -f1)"
  else
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    echo "$mode: SIGKILL; log $(du -sh "$data/wal" | cut -f1), no checkpoint"
  fi
  t=$(now)
  serve "$data" "$cfg" "$dir/serve-$mode-2.log"
  wait_for
  up_s=$(since "$t")
  m=$(accepted)
  all_s=$(since "$t")
  echo "$mode: restart answers in ${up_s} s, with all $m events in ${all_s} s (compute: ${compute_s} s); peak RSS $(rss_mib) MiB"
  curl -sf "$url/v1/snapshot" >"$dir/served-$mode.json"
  if python3 ../shared/tools/compare_snapshots.py "$dir/compute.json" "$dir/served-$mode.json" >"$dir/compare-$mode.txt" 2>&1; then
    echo "$mode: rows after the restart equal compute's"
  else
    echo "$mode: rows differ from compute's; see $dir/compare-$mode.txt"
  fi
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
done

printf '%-8s %-6s %-10s %-10s %-8s %-8s %-8s %-8s\n' rate wal achieved accepted p50_ms p90_ms p99_ms max_ms
for rate in 20000 50000; do
  for wal in on off; do
    cfg=$dir/default.toml
    [ "$wal" = off ] && cfg=$dir/no-wal.toml
    rm -rf "$dir/data-replay"
    serve "$dir/data-replay" "$cfg" "$dir/serve-replay-$rate-$wal.log"
    wait_for
    report=$dir/replay-$rate-$wal.json
    rm -f "$report"
    "$bin" replay --input "$log" --target "$url" --rate "$rate" --duration "${seconds}s" --warmup 5s \
      --report "$report" >"$dir/replay-$rate-$wal.log" 2>&1 || echo "replay exited $?; see $dir/replay-$rate-$wal.log" >&2
    curl -sf "$url/metrics" >"$dir/metrics-$rate-$wal.txt" || true
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    python3 - "$report" "$rate" "$wal" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); l = r.get("latency_ms") or {}
f = lambda k: "%.1f" % l[k] if k in l else "-"
print("%-8s %-6s %-10.0f %-10s %-8s %-8s %-8s %-8s" % (sys.argv[2], sys.argv[3], r["achieved_rate"],
      r["accepted"], f("p50"), f("p90"), f("p99"), f("max")))
EOF
  done
done
grep -h 'tidemark_wal_fsync_seconds_\(sum\|count\)' "$dir"/metrics-*-on.txt 2>/dev/null || true
