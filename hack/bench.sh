#!/usr/bin/env bash
# `make bench`: the benchmarks (bench/, baseliner-bench) on a fresh local
# control plane of their own, in target/bench-cluster with its own ports, so
# a plane the developer or the e2e suite is using is never disturbed. The
# plane is stopped and removed at the end, pass or fail.
#
# Writes BENCHMARKS.md and BENCHMARKS.json at the repository root. Settings
# (BENCH_NAMESPACES, BENCH_RUNS, BENCH_SAMPLES, BENCH_RESYNC_SECONDS,
# BENCH_FLOOR_CONCURRENCY, BENCH_OUTPUT) are described in bench/src/main.rs.
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
