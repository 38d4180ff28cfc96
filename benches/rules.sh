#!/usr/bin/env bash
# What rules cost: `tidemark compute` on the 1M-event generated log with and without the five
# rules of tests/golden/actions.toml (same timezone, default metrics), side by side.
# Usage: benches/rules.sh [RUNS]   (writes under ${TMPDIR:-/tmp}/tidemark-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
dir=${TMPDIR:-/tmp}/tidemark-bench
mkdir -p "$dir"
cargo build --release -q
bin=target/release/tidemark
[ -s "$dir/1m.ndjson" ] || "$bin" generate --persons 35000 --days 60 --seed 7 --output "$dir/1m.ndjson.tmp" && mv -f "$dir/1m.ndjson.tmp" "$dir/1m.ndjson" 2>/dev/null || true
# The rules alone (the alerts of the file are left out), and the same file without them.
awk '/^\[\[alerts\]\]/ {exit} {print}' tests/golden/actions.toml >"$dir/rules.toml"
awk '/^\[\[rules\]\]/ {exit} {print}' tests/golden/actions.toml >"$dir/no-rules.toml"

rate() { # config -> events/s of one run
  "$bin" compute --config "$1" --input "$dir/1m.ndjson" --output /dev/null 2>&1 |
    sed -n 's/.*(\([0-9]*\) events\/s).*/\1/p'
}
for _ in $(seq "$runs"); do
  without=$(rate "$dir/no-rules.toml")
  with=$(rate "$dir/rules.toml")
  echo "without rules: $without events/s; with the five rules: $with events/s; ratio $(awk -v a="$with" -v b="$without" 'BEGIN {printf "%.2f", a / b}')"
done
