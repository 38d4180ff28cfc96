#!/usr/bin/env bash
# One dataflow over two processes: `tidemark compute` on the real-shaped 1M log as one process
# with two workers and as two processes with one worker each on loopback, taking turns, with
# and without the five rules of tests/golden/actions.toml; prints events/s, peak memory of
# process 0 and the bytes the loopback interface carried during each two-process run.
# Usage: benches/cluster.sh [RUNS]   (2; logs under ${TMPDIR:-/tmp}/tidemark-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
dir=${TMPDIR:-/tmp}/tidemark-bench
mkdir -p "$dir"
cargo build --release -q
bin=target/release/tidemark
. benches/logs.sh
gen real-1m 52000
rule_configs

loopback() { awk '/ lo:/ { print $2 }' /proc/net/dev; }
summary() { tail -1 | sed 's/.*rows; //'; }
one() { # config
  "$bin" compute -w 2 --config "$1" --input "$dir/real-1m.ndjson" --output /dev/null 2>&1 | summary
}
two() { # config
  local peers=127.0.0.1:27901,127.0.0.1:27902 before out
  before=$(loopback)
  "$bin" compute -w 1 --processes 2 --process 0 --peers "$peers" --config "$1" \
    --input "$dir/real-1m.ndjson" --output "$dir/cluster.json" >/dev/null 2>"$dir/cluster.err" &
  local first=$!
  sleep 0.1
  "$bin" compute -q -w 1 --processes 2 --process 1 --peers "$peers" --config "$1"
  wait "$first"
  out=$(summary <"$dir/cluster.err")
  echo "$out; loopback $(($(loopback) - before)) bytes"
}
for config in no-rules rules; do
  for _ in $(seq "$runs"); do
    echo "$config, 1 process x 2 workers: $(one "$dir/$config.toml")"
    echo "$config, 2 processes x 1 worker: $(two "$dir/$config.toml")"
  done
done
