#!/usr/bin/env bash
# Runs the e2e suite (cargo test -p baseliner-e2e) against the local control
# plane. Starts the plane if it is not running and then stops it at the end,
# pass or fail; a plane that was already running (`make cluster-up`) is
# reused and left running.
#
# BASELINER_E2E_KUBECONFIG=/path runs the suite against that cluster instead
# and leaves plane management alone. Arguments go to `cargo test`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CLUSTER="$REPO/e2e/controlplane/cluster.sh"
STATE="${BASELINER_CLUSTER_DIR:-$REPO/target/cluster}"

if [[ -z "${BASELINER_E2E_KUBECONFIG:-}" ]]; then
  if "$CLUSTER" status >/dev/null 2>&1; then
    echo "test-e2e: reusing the running control plane ($STATE); it stays up" >&2
  else
    trap '"$CLUSTER" down' EXIT
    "$CLUSTER" up
  fi
  # The suite uses this plane, whatever KUBECONFIG the caller has.
  export KUBECONFIG="$STATE/kubeconfig"
fi

# Velero (its CRDs and server), built once and cached like the plane; built
# here rather than in the first test that needs it, so its time shows.
velero_start=$SECONDS
"$REPO/e2e/velero/build.sh" >/dev/null
echo "test-e2e: Velero ready after $((SECONDS - velero_start))s" >&2

start=$SECONDS
status=0
# --lib --tests: the harness's unit tests and the suite, no (empty) doc tests.
cargo test -p baseliner-e2e --lib --tests "$@" || status=$?
echo "test-e2e: cargo test took $((SECONDS - start))s" >&2
exit "$status"
