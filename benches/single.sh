#!/usr/bin/env bash
# One more event on a big history: `tidemark serve` takes the 4M-event log of benches/live.sh
# (as fast as it will, pushed back past serve.max_lag), then single events (one per request,
# 100 a second, ids of their own, persons old and new) from a second generated log; the replay
# reports each one's latency from its send to the progress mark that covers it. Beside it, the
# time `tidemark compute` takes to recompute the same 4M log from scratch.
# Usage: benches/single.sh [SECONDS]   (30 s after a 5 s warm-up; under ${TMPDIR:-/tmp}/tidemark-live)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
dir=${TMPDIR:-/tmp}/tidemark-live
mkdir -p "$dir"
cargo build --release -q
bin=target/release/tidemark
port=17891
log=$dir/4m.ndjson
[ -s "$log" ] || "$bin" generate --shape sparse --persons 140000 --days 60 --seed 7 --output "$log"
# Single events: another seed, their ids renamed so that none is a duplicate of the history.
"$bin" generate --shape sparse --persons 2000 --days 60 --seed 99 --output "$dir/single-all.ndjson" 2>/dev/null
head -n 20000 "$dir/single-all.ndjson" | sed 's/"id":"e-/"id":"late-/' >"$dir/single.ndjson"

rm -rf "$dir/single-data"
"$bin" serve --listen "127.0.0.1:$port" --data "$dir/single-data" >"$dir/single-serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
echo "== the history: $log"
"$bin" replay --input "$log" --target "http://127.0.0.1:$port" --rate 300000 --batch 500 \
  --connections 8 --report "$dir/single-fill.json" 2>&1 | grep -E "accepted|achieved|push-back"
echo "== one event per request, 100 a second"
"$bin" replay --input "$dir/single.ndjson" --target "http://127.0.0.1:$port" --rate 100 --batch 1 \
  --connections 1 --duration "${seconds}s" --warmup 5s --report "$dir/single.json" 2>&1 | grep -E "accepted|latency"
echo "== recompute of the same history"
"$bin" compute --input "$log" --output /dev/null 2>&1 | tail -1
