#!/usr/bin/env bash
# What rules cost: `tidemark compute` on the 1M-event generated logs, the real shape (the
# generator's default) and the sparse one, with and without the five rules of
# tests/golden/actions.toml (same timezone, default metrics), side by side. Then live: `serve`
# with the same rules sending webhooks to `tidemark replay --webhook`, which replays the real
# log at RATE events/s and reports the latency from each firing's release to its receipt.
# Usage: benches/rules.sh [RUNS] [RATE] [SECONDS]   (3, 20000, 30; under ${TMPDIR:-/tmp}/tidemark-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
rate=${2:-20000}
seconds=${3:-30}
dir=${TMPDIR:-/tmp}/tidemark-bench
mkdir -p "$dir"
cargo build --release -q
bin=target/release/tidemark
. benches/logs.sh
# The same logs as benches/compute.sh.
gen real-1m 52000
gen sparse-1m 35000 --shape sparse
rule_configs

rate() { # log config -> events/s of one run
  "$bin" compute --config "$2" --input "$dir/$1.ndjson" --output /dev/null 2>&1 |
    sed -n 's/.*(\([0-9]*\) events\/s).*/\1/p'
}
for log in real-1m sparse-1m; do
  for _ in $(seq "$runs"); do
    without=$(rate "$log" "$dir/no-rules.toml")
    with=$(rate "$log" "$dir/rules.toml")
    echo "$log: without rules $without events/s; with the five rules $with events/s; ratio $(awk -v a="$with" -v b="$without" 'BEGIN {printf "%.2f", a / b}')"
  done
done

# Live: the rules with a webhook action each, aimed at the replay's receiver, on the event clock
# (so that each release is dated by the event that made it due).
port=17979
hook=17980
awk -v url="http://127.0.0.1:$hook/" '
  /^\[\[rules\]\]/ && n++ { print "[[rules.actions]]\nwebhook = \"" url name "\"\n" }
  /^name = / { name = $3; gsub(/"/, "", name) }
  { print }
  END { print "\n[[rules.actions]]\nwebhook = \"" url name "\"" }
' "$dir/rules.toml" >"$dir/rules-live.toml"
printf '\n[serve]\nclock = "event"\n' >>"$dir/rules-live.toml"
rm -rf "$dir/rules-data"
"$bin" serve --config "$dir/rules-live.toml" --listen "127.0.0.1:$port" --data "$dir/rules-data" \
  >"$dir/rules-serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
"$bin" replay --input "$dir/real-1m.ndjson" --target "http://127.0.0.1:$port" --rate "$rate" \
  --duration "${seconds}s" --warmup 5s --webhook "127.0.0.1:$hook" --report "$dir/rules-live.json"
