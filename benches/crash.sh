#!/usr/bin/env bash
# The crash test with more kills: SIGKILL `tidemark serve` KILLS times (default 50) at random
# moments while a client sends a generated log with retries; the served snapshot must equal
# `compute` and every firing reach the webhook under one key. Prints the test's own figures.
# Usage: benches/crash.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-50}
start=$(date +%s)
TIDEMARK_CRASH_KILLS=$kills cargo test --release -q --test integration crash::sigkill -- --nocapture 2>&1 |
  grep -v '^\[serve\]' | grep -E 'sent|firings|test result|panicked|differences'
echo "crash bench: $kills SIGKILLs, $(($(date +%s) - start)) s in all (build included)"
