#!/usr/bin/env bash
# Throughput and peak memory of `tidemark compute`, side by side with the DuckDB recompute
# (`../shared/tools/duckdb_recompute.py`, or $DUCKDB_RECOMPUTE) on the same files.
# Usage: benches/compute.sh [RUNS] [scale]
#   RUNS   runs of each program on each log (default 3)
#   scale  also the 1M / 4M / 16M real-shaped logs, tidemark only
# Logs are written once under ${TMPDIR:-/tmp}/tidemark-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
dir=${TMPDIR:-/tmp}/tidemark-bench
mkdir -p "$dir"
cargo build --release -q
bin=target/release/tidemark
recompute=${DUCKDB_RECOMPUTE:-../shared/tools/duckdb_recompute.py}
if [ -f "$recompute" ] && ! python3 -c 'import duckdb' 2>/dev/null; then
  python3 -m pip install -q duckdb
fi

. benches/logs.sh
# The default (real) shape: DAU/MAU about 0.2, about 4 events per active person-day.
gen real-4m 200000
# The sparse shape (most persons come once or twice, long visits) and a dense one.
gen sparse-1m 35000 --shape sparse
gen dense-4m 40000 --shape dense

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# One run of tidemark: prints its summary line and appends the seconds to $dir/$name.tm.
tidemark() {
  local name=$1 line
  line=$("$bin" compute --input "$dir/$name.ndjson" --output "$dir/$name.snapshot.json" 2>&1 >/dev/null |
    sed "s/^tidemark compute:/$name: tidemark/" | tail -1)
  echo "$line"
  sed -n 's/.*; \([0-9.]*\)s (.*/\1/p' <<<"$line" >>"$dir/$name.tm"
}

# One run of the recompute (load and queries; identity resolution is left out of its time).
duckdb() {
  local name=$1 out
  out=$(python3 "$recompute" "$dir/$name.ndjson" UTC)
  echo "$name: duckdb $out"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["load_s"] + r["query_s"])' "$out" >>"$dir/$name.db"
}

for name in real-4m sparse-1m dense-4m; do
  rm -f "$dir/$name.tm" "$dir/$name.db"
  for _ in $(seq "$runs"); do
    tidemark "$name"
    if [ -f "$recompute" ]; then duckdb "$name"; fi
  done
  tm=$(median <"$dir/$name.tm")
  if [ -f "$recompute" ]; then
    db=$(median <"$dir/$name.db")
    awk -v n="$name" -v t="$tm" -v d="$db" 'BEGIN { printf "%s: median tidemark %.2f s, duckdb %.2f s, ratio %.2f\n", n, t, d, t / d }'
  else
    echo "$name: median tidemark $tm s (no recompute at $recompute)"
  fi
done

if [ "${2:-}" = scale ]; then
  gen real-1m 52000
  gen real-16m 800000
  # real-4m was timed above.
  for name in real-1m real-16m; do
    rm -f "$dir/$name.tm"
    for _ in $(seq "$runs"); do tidemark "$name"; done
  done
  for name in real-1m real-4m real-16m; do
    echo "$name: median tidemark $(median <"$dir/$name.tm") s"
  done
fi
