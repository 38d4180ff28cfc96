#!/usr/bin/env bash
# Memory over months of event time: `tidemark serve` (with its data directory) takes a
# generated steady stream covering 300 days (as many arrivals every day, nobody back after 60
# days: `generate --growth 0 --lifetime 60`) at a steady rate through `tidemark replay`; every
# 10 s the resident memory and the events accepted so far are sampled from /metrics.
# With ARRIVAL_DAYS, the stream is one of a fixed population instead: every person arrives in
# the first ARRIVAL_DAYS days and the loyal ones keep coming back (`generate --arrival-days`),
# so that after those days no new person comes and what grows per person cannot grow.
# With SOAK_CONFIG=FILE, serve runs that configuration (for example the rules of
# tests/golden/actions.toml: their triggers retire too).
# Usage: [SOAK_CONFIG=FILE] benches/soak.sh [RATE] [PERSONS] [ARRIVAL_DAYS]   (default 20000
# events/s, 300000 persons, arrivals every day)
# Output: ${TMPDIR:-/tmp}/tidemark-soak/soak.tsv (seconds, accepted, rss_mib) and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-20000}
persons=${2:-300000}
arrival_days=${3:-}
dir=${TMPDIR:-/tmp}/tidemark-soak
mkdir -p "$dir"
cargo build --release -q
bin=$PWD/target/release/tidemark
port=17980
url=http://127.0.0.1:$port
# 300 days that end before today, so that no event is ahead of the wall clock.
start_day=$(date -u -d '-320 days' +%F)
if [ -n "$arrival_days" ]; then
  log=$dir/fixed-$persons-$arrival_days-300d.ndjson
  shape=(--arrival-days "$arrival_days")
else
  log=$dir/steady-$persons-300d.ndjson
  shape=(--lifetime 60)
fi
[ -s "$log" ] || "$bin" generate --shape sparse --persons "$persons" --days 300 --seed 11 --start "$start_day" \
  --growth 0 "${shape[@]}" --output "$log"
events=$(wc -l <"$log")
rm -rf "$dir/data"
config=()
[ -n "${SOAK_CONFIG:-}" ] && config=(--config "$SOAK_CONFIG")
"$bin" serve "${config[@]}" --listen "127.0.0.1:$port" --data "$dir/data" >"$dir/serve.log" 2>&1 &
serve=$!
trap 'kill -9 $serve 2>/dev/null || true' EXIT
for _ in $(seq 500); do curl -sf "$url/healthz" >/dev/null 2>&1 && break; sleep 0.02; done
"$bin" replay --input "$log" --target "$url" --rate "$rate" --report "$dir/replay.json" >"$dir/replay.log" 2>&1 &
replay=$!
t0=$(date +%s)
printf 'seconds\taccepted\trss_mib\n' >"$dir/soak.tsv"
while kill -0 "$replay" 2>/dev/null; do
  sleep 10
  m=$(curl -sf "$url/metrics" || true)
  acc=$(echo "$m" | awk '/^tidemark_events_accepted_total/ {print $2}')
  rss=$(echo "$m" | awk '/^tidemark_resident_memory_bytes/ {printf "%.0f", $2/1048576}')
  printf '%s\t%s\t%s\n' "$(($(date +%s) - t0))" "$acc" "$rss" | tee -a "$dir/soak.tsv"
done
wait "$replay" || true
echo "soak: $events events over 300 days at $rate/s; RSS by accepted events in $dir/soak.tsv"
