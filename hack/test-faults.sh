#!/usr/bin/env bash
# Runs the fault tests (e2e/tests/faults/) on a control plane of their own,
# so stopping its apiserver or etcd never disturbs the e2e suite's plane.
#
# Starts the plane in target/faults-cluster (BASELINER_FAULTS_CLUSTER_DIR)
# with the apiserver compacting etcd every 10 s, runs
# `cargo test -p baseliner-e2e --test faults -- --ignored`, prints each
# fault's summary line and stops the plane again, pass or fail. A faults
# plane that is already running is reused and left running. Arguments go to
# the test binary (e.g. a test name).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CLUSTER="$REPO/e2e/controlplane/cluster.sh"
export BASELINER_CLUSTER_DIR="${BASELINER_FAULTS_CLUSTER_DIR:-$REPO/target/faults-cluster}"
export BASELINER_ETCD_COMPACTION_INTERVAL="${BASELINER_ETCD_COMPACTION_INTERVAL:-10s}"
SUMMARY="$REPO/target/faults-summary.txt"

if "$CLUSTER" status >/dev/null 2>&1; then
  echo "test-faults: reusing the running faults plane ($BASELINER_CLUSTER_DIR); it stays up" >&2
else
  trap '"$CLUSTER" down' EXIT
  "$CLUSTER" up
fi
# The harness connects to this plane, whatever KUBECONFIG the caller has.
export BASELINER_E2E_KUBECONFIG="$BASELINER_CLUSTER_DIR/kubeconfig"
export BASELINER_E2E_KUBECTL="$BASELINER_CLUSTER_DIR/bin/kubectl"
unset KUBECONFIG

mkdir -p "$REPO/target"
: >"$SUMMARY"
start=$SECONDS
status=0
cargo test -p baseliner-e2e --test faults -- --ignored "$@" || status=$?
echo "test-faults: cargo test took $((SECONDS - start))s" >&2
if [[ -s "$SUMMARY" ]]; then
  echo "test-faults: summary (also in $SUMMARY)" >&2
  sed 's/^/  /' "$SUMMARY" >&2
fi
exit "$status"
