#!/usr/bin/env bash
# `make run`: the operator in the foreground.
#
# With $KUBECONFIG set, it runs against that cluster and changes nothing
# else there (install the CRD first: `make install`).
# Without, it starts the local control plane (building it on first use),
# installs the CRD, the sample profiles, a minimal Velero Schedule CRD and a
# few sample namespaces, then runs the operator against it.
# One local process needs no leader election (a deployed operator holds its
# own Lease). Arguments go to `baseliner run`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CARGO="${CARGO:-cargo}"

"$CARGO" build -q -p baseliner --bin baseliner
BASELINER="$REPO/target/debug/baseliner"

if [[ -n "${KUBECONFIG:-}" ]]; then
  echo "run: using the cluster in KUBECONFIG=$KUBECONFIG" >&2
  exec "$BASELINER" run --leader-elect=false "$@"
fi

e2e/controlplane/cluster.sh up
export KUBECONFIG="$REPO/target/cluster/kubeconfig"
kubectl() { "$REPO/target/cluster/bin/kubectl" "$@"; }

kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/productionprofiles.baseliner.dev crd/profileexceptions.baseliner.dev --timeout=60s >/dev/null
# The samples back up to Velero: Velero's own CRDs (from its Go module, the
# release pinned in e2e/velero/go.mod) let the demo show the Schedules. The
# Velero server is not started; the operator also runs fine without Velero
# at all, and says so.
VELERO_DIR="$(e2e/velero/build.sh)"
kubectl apply --server-side -f e2e/manifests/velero-namespace.yaml -f "$VELERO_DIR/crds/" >/dev/null
kubectl wait --for=condition=Established crd/schedules.velero.io --timeout=60s >/dev/null
kubectl apply --server-side -k config/samples >/dev/null

sample_namespace() {
  local name="$1"; shift
  kubectl create namespace "$name" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
  kubectl label namespace "$name" --overwrite "$@" >/dev/null
}
sample_namespace shop env=production team=payments
sample_namespace checkout env=production team=payments
sample_namespace shop-staging env=staging team=payments
sample_namespace cardholder-data compliance=pci team=risk
sample_namespace scratch team=research
# A sample exception: staging's quota raised for shop-staging for 30 days
# (the expiry is written at run time: an exception runs at most 90 days).
expires=$(date -u -d '+30 days' +%Y-%m-%dT00:00:00Z)
sed "s/EXPIRES/$expires/" config/samples/exceptions/staging-quota.yaml | kubectl apply --server-side -f - >/dev/null

cat >&2 <<EOT

run: local control plane ready, samples applied. In another shell:
  export KUBECONFIG=$KUBECONFIG
  export PATH=$REPO/target/cluster/bin:\$PATH
  kubectl get prodprofile                      # matched / compliant / excepted per profile
  kubectl get profileexceptions                # what is waived, why, until when
  kubectl get netpol,limitrange,quota,rolebinding -n shop
  kubectl get namespace shop --show-labels     # Pod Security labels
  kubectl get schedules.velero.io -n velero
  kubectl delete netpol baseliner-default-deny -n shop   # watch it come back
  kubectl get events -A --field-selector reason=Created
  $BASELINER report                          # per namespace and control, with evidence (-o html)
  $BASELINER why shop                        # who owns it, why, what is in place
  $BASELINER plan -f config/samples/         # what applying the samples would change (nothing)
Stop with Ctrl-C; \`make cluster-down\` removes the local control plane.

EOT
exec "$BASELINER" run --leader-elect=false "$@"
