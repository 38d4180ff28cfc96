#!/usr/bin/env bash
# Throughput and peak memory of `tidemark compute` on generated logs.
# Usage: benches/compute.sh [RUNS]   (writes logs under ${TMPDIR:-/tmp}/tidemark-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
dir=${TMPDIR:-/tmp}/tidemark-bench
mkdir -p "$dir"
cargo build --release -q
bin=target/release/tidemark

gen() { # name persons days [extra generate flags]
  local name=$1 persons=$2 days=$3; shift 3
  [ -s "$dir/$name.ndjson" ] || "$bin" generate --persons "$persons" --days "$days" --seed 7 "$@" --output "$dir/$name.ndjson"
}
gen 1m 35000 60
gen 1m-nolinks 35000 60 --no-links
gen 4m 140000 60

for name in 1m 1m-nolinks 4m; do
  for _ in $(seq "$runs"); do
    "$bin" compute --input "$dir/$name.ndjson" --output "$dir/$name.snapshot.json" 2>&1 >/dev/null | sed "s/^tidemark compute:/$name:/"
  done
done
