#!/usr/bin/env bash
# One dataflow over two processes: `tidemark compute` on the real-shaped 1M log as one process
# with two workers and as two processes with one worker each on loopback, taking turns, with
# and without the five rules of tests/golden/actions.toml; prints events/s, peak memory of
# process 0 and the bytes the loopback interface carried during each two-process run. Then
# `tidemark serve` the same ways, fed by `tidemark replay` (4 connections, 500 events per
# request) as fast as it answers: one process with two workers, and two processes with the
# events sent to process 0 and to process 1 (which relays them to process 0). The compute
# runs include the log split in two halves, each process reading its own with --input.
# `rejoin` measures a lost process started again alone: two serving processes take the 1M log,
# then process 1 and then process 0 are SIGKILLed and started again; it prints how long the
# cluster took to be whole again and to serve every event again at both nodes.
# Usage: benches/cluster.sh [RUNS] [compute|rejoin]   (2 runs; `compute` skips serve; logs
# under ${TMPDIR:-/tmp}/tidemark-bench)
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
split -n l/2 -d "$dir/real-1m.ndjson" "$dir/real-1m.half-"
two() { # config, and `split` to give each process half of the log
  local peers=127.0.0.1:27901,127.0.0.1:27902 before out
  local input=("$dir/real-1m.ndjson") other=()
  if [ "${2:-}" = split ]; then
    input=("$dir/real-1m.half-00") other=(--input "$dir/real-1m.half-01")
  fi
  before=$(loopback)
  "$bin" compute -w 1 --processes 2 --process 0 --peers "$peers" --config "$1" \
    --input "${input[0]}" --output "$dir/cluster.json" >/dev/null 2>"$dir/cluster.err" &
  local first=$!
  sleep 0.1
  "$bin" compute -q -w 1 --processes 2 --process 1 --peers "$peers" --config "$1" "${other[@]}"
  wait "$first"
  out=$(summary <"$dir/cluster.err")
  echo "$out; loopback $(($(loopback) - before)) bytes"
}
for config in no-rules rules; do
  [ "${2:-}" = rejoin ] && break
  for _ in $(seq "$runs"); do
    echo "$config, 1 process x 2 workers: $(one "$dir/$config.toml")"
    echo "$config, 2 processes x 1 worker: $(two "$dir/$config.toml")"
    echo "$config, 2 processes x 1 worker, log split in two: $(two "$dir/$config.toml" split)"
  done
done
[ "${2:-}" = compute ] && exit 0

ready() { # port
  until curl -sf "127.0.0.1:$1/healthz" >/dev/null; do sleep 0.2; done
}
replayed() { # port
  "$bin" replay --input "$dir/real-1m.ndjson" --target "http://127.0.0.1:$1" \
    --batch 500 --connections 4 2>&1 | grep -E '^(achieved|latency)' | tr -s ' ' | paste -sd ';'
}
serve_one() {
  "$bin" serve -w 2 --listen 127.0.0.1:27910 --data "$(mktemp -d)" 2>/dev/null &
  local pid=$!
  ready 27910
  echo "serve, 1 process x 2 workers: $(replayed 27910)"
  kill "$pid"; wait "$pid" || true
}
serve_two() { # port the events go to: 27911 (process 0) or 27912 (process 1)
  local peers=127.0.0.1:27903,127.0.0.1:27904
  "$bin" serve -w 1 --processes 2 --process 0 --peers "$peers" --listen 127.0.0.1:27911 \
    --data "$(mktemp -d)" 2>/dev/null &
  local first=$!
  "$bin" serve -w 1 --processes 2 --process 1 --peers "$peers" --listen 127.0.0.1:27912 2>/dev/null &
  local second=$!
  ready 27911; ready 27912
  echo "serve, 2 processes x 1 worker, events to port $1: $(replayed "$1")"
  kill "$first" "$second"; wait "$first" "$second" || true
}
accepted() { # port: events.accepted of its snapshot
  curl -sf "127.0.0.1:$1/v1/snapshot" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["events"]["accepted"])' 2>/dev/null || echo 0
}
rejoin() {
  local peers=127.0.0.1:27905,127.0.0.1:27906 data pids want started whole
  data=$(mktemp -d)
  start() { # process
    if [ "$1" = 0 ]; then
      "$bin" serve -w 1 --processes 2 --process 0 --peers "$peers" --listen 127.0.0.1:27913 \
        --data "$data" >/dev/null 2>&1 &
    else
      "$bin" serve -w 1 --processes 2 --process 1 --peers "$peers" --listen 127.0.0.1:27914 \
        >/dev/null 2>&1 &
    fi
    pids[$1]=$!
  }
  start 0; start 1
  ready 27913; ready 27914
  replayed 27913 >/dev/null
  want=$(accepted 27913)
  for lost in 1 0; do
    kill -9 "${pids[$lost]}"; wait "${pids[$lost]}" 2>/dev/null || true
    until ! curl -sf 127.0.0.1:$((27913 + 1 - lost))/healthz >/dev/null; do sleep 0.05; done
    started=$(date +%s.%N)
    start "$lost"
    until curl -sf 127.0.0.1:27913/healthz >/dev/null && curl -sf 127.0.0.1:27914/healthz >/dev/null; do
      sleep 0.05
    done
    whole=$(date +%s.%N)
    until [ "$(accepted 27913)" = "$want" ] && [ "$(accepted 27914)" = "$want" ]; do sleep 0.1; done
    echo "rejoin of process $lost ($want events kept): whole again $(awk "BEGIN { printf \"%.2f\", $whole - $started }") s after its start, every event served at both nodes after $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $started }") s"
  done
  kill "${pids[0]}" "${pids[1]}"; wait "${pids[0]}" "${pids[1]}" 2>/dev/null || true
  rm -rf "$data"
}
for _ in $(seq "$runs"); do
  if [ "${2:-}" = rejoin ]; then
    rejoin
    continue
  fi
  serve_one
  serve_two 27911
  serve_two 27912
done
