#!/usr/bin/env bash
# `make bench`: the benchmarks (bench/, baseliner-bench) on a fresh local
# control plane of their own, in target/bench-cluster with its own ports, so
# a plane the developer or the e2e suite is using is never disturbed. The
# plane is stopped and removed at the end, pass or fail.
#
# Writes BENCHMARKS.md and BENCHMARKS.json at the repository root. Settings
# (BENCH_NAMESPACES, BENCH_RUNS, BENCH_SAMPLES, BENCH_RESYNC_SECONDS,
# BENCH_FLOOR_CONCURRENCY, BENCH_OUTPUT, BENCH_BASELINE) are described in
# bench/src/main.rs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CARGO="${CARGO:-cargo}"
CLUSTER="$REPO/e2e/controlplane/cluster.sh"
export BASELINER_CLUSTER_DIR="$REPO/target/bench-cluster"

start=$SECONDS
# Release builds: the operator as it ships, and the driver.
"$CARGO" build --release -p baseliner --bin baseliner
"$CARGO" build --release -p baseliner-bench

# BENCH_BASELINE=REV: that revision's operator too, measured beside this one
# in the same run. Built from `git archive` (the work tree is untouched) into
# target/bench-baseline/REV, and kept there for the next run.
if [[ -n "${BENCH_BASELINE:-}" ]]; then
  rev="$(git rev-parse --short "$BENCH_BASELINE^{commit}")"
  dir="$REPO/target/bench-baseline/$rev"
  if [[ ! -x "$dir/target/release/baseliner" ]]; then
    rm -rf "$dir/src"
    mkdir -p "$dir/src"
    git archive "$rev" | tar -x -C "$dir/src"
    "$CARGO" build --release --manifest-path "$dir/src/Cargo.toml" \
      --target-dir "$dir/target" -p baseliner --bin baseliner
  fi
  export BENCH_BASELINE_BIN="$dir/target/release/baseliner"
  export BENCH_BASELINE_LABEL="$rev"
fi

# A fresh plane every time: nothing left from an earlier run is measured.
"$CLUSTER" down >/dev/null 2>&1 || true
trap '"$CLUSTER" down' EXIT
"$CLUSTER" up

export BASELINER_E2E_KUBECONFIG="$BASELINER_CLUSTER_DIR/kubeconfig"
export BASELINER_E2E_KUBECTL="$BASELINER_CLUSTER_DIR/bin/kubectl"
export BASELINER_BIN="$REPO/target/release/baseliner"
export BASELINER_E2E_LOG="${BASELINER_E2E_LOG:-info}"
"$REPO/target/release/baseliner-bench"
echo "bench: done in $((SECONDS - start))s (builds and plane included)" >&2
