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
# The memory target's shape: 4M events over 200,000 persons and 60 days. The generator gives
# 200,000 persons about 5.7M events; every line whose share of 4M steps up is kept.
gen 200k 200000 60
if [ ! -s "$dir/4m-200k.ndjson" ]; then
  n=$(wc -l <"$dir/200k.ndjson")
  awk -v k=4000000 -v n="$n" 'int(NR * k / n) != int((NR - 1) * k / n)' "$dir/200k.ndjson" >"$dir/4m-200k.ndjson"
fi

for name in 1m 1m-nolinks 4m 4m-200k; do
  for _ in $(seq "$runs"); do
    "$bin" compute --input "$dir/$name.ndjson" --output "$dir/$name.snapshot.json" 2>&1 >/dev/null | sed "s/^tidemark compute:/$name:/"
  done
done
