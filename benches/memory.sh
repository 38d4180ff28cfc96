#!/usr/bin/env bash
# Peak resident memory of `tidemark compute` against log size: a least-squares fit of
#   peak = base + a * persons + b * active person-days
# over logs that vary persons at fixed days and days at fixed persons. Each log runs RUNS times
# (default 3) and counts with its median peak. Active person-days are the sum of the `dau` rows.
# Usage: benches/memory.sh [RUNS]   (writes logs under ${TMPDIR:-/tmp}/tidemark-memory)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
dir=${TMPDIR:-/tmp}/tidemark-memory
mkdir -p "$dir"
cargo build --release -q
bin=target/release/tidemark

# persons days
logs=(
  "10000 30" "20000 30" "40000 30" "80000 30"
  "20000 15" "20000 60" "20000 120" "20000 240" "20000 365"
)

peak_of() { # log -> peak MiB of one compute run
  local summary peak
  summary=$("$bin" compute --input "$1" --output "$dir/snapshot.json" 2>&1 >/dev/null)
  peak=$(sed -n 's/.*peak memory \([0-9]*\) MiB.*/\1/p' <<<"$summary")
  [ -n "$peak" ] || { echo "no peak memory in: $summary" >&2; exit 1; }
  echo "$peak"
}

{
  printf '%-8s %-5s %-9s %-12s %-9s %s\n' persons days events person_days peak_mib runs_mib
  for log in "${logs[@]}"; do
    read -r persons days <<<"$log"
    file="$dir/p$persons-d$days.ndjson"
    [ -s "$file" ] || "$bin" generate --shape sparse --persons "$persons" --days "$days" --seed 7 --output "$file" 2>>"$dir/generate.log"
    peaks=()
    for _ in $(seq "$runs"); do peaks+=("$(peak_of "$file")"); done
    median=$(printf '%s\n' "${peaks[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    events=$(wc -l <"$file")
    person_days=$(grep -o '"metric":"dau","dims":{"day":"[^"]*"},"value":[0-9]*' "$dir/snapshot.json" |
      awk -F: '{ s += $NF } END { print s }')
    [ -n "$person_days" ] || { echo "no dau rows in $dir/snapshot.json" >&2; exit 1; }
    printf '%-8s %-5s %-9s %-12s %-9s %s\n' "$persons" "$days" "$events" "$person_days" "$median" "$(IFS=,; echo "${peaks[*]}")"
  done
} | tee "$dir/runs.txt"

# Ordinary least squares of the three coefficients (Cramer's rule), then each log's residual.
awk 'NR > 1 {
  n++; x[n] = $1; y[n] = $4; z[n] = $5 * 1048576
  sx += x[n]; sy += y[n]; sz += z[n]; sxx += x[n]^2; syy += y[n]^2
  sxy += x[n]*y[n]; sxz += x[n]*z[n]; syz += y[n]*z[n]
}
function det(a,b,c,d,e,f,g,h,i) { return a*(e*i-f*h) - b*(d*i-f*g) + c*(d*h-e*g) }
END {
  D = det(n, sx, sy, sx, sxx, sxy, sy, sxy, syy)
  base = det(sz, sx, sy, sxz, sxx, sxy, syz, sxy, syy) / D
  a = det(n, sz, sy, sx, sxz, sxy, sy, syz, syy) / D
  b = det(n, sx, sz, sx, sxx, sxz, sy, sxy, syz) / D
  printf "fit over %d logs: peak = %.0f MiB + %.0f bytes/person + %.0f bytes/active person-day\n", n, base / 1048576, a, b
  for (i = 1; i <= n; i++) {
    fit = base + a * x[i] + b * y[i]
    printf "  %6d persons, %7d person-days: measured %4.0f MiB, fit %4.0f MiB\n", x[i], y[i], z[i] / 1048576, fit / 1048576
  }
}' "$dir/runs.txt"
