#!/usr/bin/env bash
# Builds the local control plane binaries (etcd, kube-apiserver,
# kube-controller-manager, kubectl) from their Go modules and caches them
# outside the clone, keyed by versions and by the pinned module graphs.
#
#   e2e/controlplane/build.sh          build if not cached; print the bin dir
#   e2e/controlplane/build.sh --path   print the bin dir, build nothing
#                                      (exit 1 if it is not built yet)
#
# Environment:
#   BASELINER_CACHE_DIR  cache root (default ${XDG_CACHE_HOME:-~/.cache}/baseliner)
#   GO                   go command (default: go on PATH, else /usr/local/go/bin/go)
#   BUILD_JOBS           go build -p (default: number of CPUs)
#
# The build goes into a temporary directory that is renamed into place only
# when every binary is built, so an interrupted build never leaves a half cache.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Pinned versions. Keep these in step with kubernetes/go.mod and etcd/go.mod.
K8S_VERSION="v1.37.1"
ETCD_VERSION="v3.7.0"
# Bump to force a rebuild when the build flags below change.
BUILD_REV="1"

log() { echo "build.sh: $*" >&2; }

find_go() {
  if [[ -n "${GO:-}" ]]; then echo "$GO"; return; fi
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  log "no Go toolchain found (set GO=/path/to/go or put go on PATH)"
  exit 1
}

GO="$(find_go)"
export GOTOOLCHAIN=local
GO_VERSION="$("$GO" env GOVERSION)"
# Kubernetes v1.37 is built with Go 1.26. An older local Go fetches that
# toolchain through the Go module proxy (golang.org/toolchain).
GO_MINOR="$(sed -n 's/^go1\.\([0-9]*\).*/\1/p' <<<"$GO_VERSION")"
if [[ -n "$GO_MINOR" ]] && ((GO_MINOR < 26)); then
  log "local $GO_VERSION is older than go1.26; using the go1.26.8 toolchain"
  export GOTOOLCHAIN=go1.26.8
  GO_VERSION="$("$GO" env GOVERSION)"
fi

# A short digest of everything that decides the binaries' content.
inputs_digest() {
  cat "$HERE/kubernetes/go.mod" "$HERE/kubernetes/go.sum" \
      "$HERE/etcd/go.mod" "$HERE/etcd/go.sum" \
    | { echo "rev=$BUILD_REV"; cat; } | sha256sum | cut -c1-12
}

CACHE_ROOT="${BASELINER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baseliner}"
KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_${GO_VERSION}_$(inputs_digest)"
DEST="$CACHE_ROOT/controlplane/$KEY"

if [[ "${1:-}" == "--path" ]]; then
  echo "$DEST"
  [[ -x "$DEST/kube-apiserver" ]]
  exit $?
fi

BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)
complete() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$DEST/$b" ]] || return 1; done
}

if complete; then
  log "cached: $DEST"
  echo "$DEST"
  exit 0
fi

# Go 1.27 changes encoding/json underneath the apiserver's OpenAPI handler
# and the served documents break kubectl apply; nojsonv2 restores the old
# behaviour. Go 1.26 (what Kubernetes v1.37 is built with) needs nothing.
case "$GO_VERSION" in
  go1.2[0-6]|go1.2[0-6].*) ;;
  *) export GOEXPERIMENT="${GOEXPERIMENT:+$GOEXPERIMENT,}nojsonv2"
     log "$GO_VERSION: building with GOEXPERIMENT=$GOEXPERIMENT" ;;
esac

mkdir -p "$CACHE_ROOT/controlplane"
# Something incomplete at the destination was not made by this script; clear it.
if [[ -e "$DEST" ]]; then rm -rf "$DEST"; fi
TMP="$(mktemp -d "$CACHE_ROOT/controlplane/.build-$KEY.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

export CGO_ENABLED=0
# -mod=readonly: the committed go.sum files are the pin; never rewrite them.
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
JOBS="${BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"

# Version stamps, as Kubernetes' own hack/lib/version.sh sets them, so that
# `kubectl version` and /version report the release instead of v0.0.0.
# The build date is the module's publication time, for reproducible output.
BUILD_DATE="$(cd "$HERE/kubernetes" &&
  "$GO" list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
MINOR="${K8S_VERSION#v1.}"; MINOR="${MINOR%%.*}"
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  K8S_LDFLAGS+=" -X '$pkg.gitVersion=$K8S_VERSION'"
  K8S_LDFLAGS+=" -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$MINOR'"
  K8S_LDFLAGS+=" -X '$pkg.gitTreeState=clean'"
  K8S_LDFLAGS+=" -X '$pkg.buildDate=$BUILD_DATE'"
done

timed() {
  local name="$1"; shift
  local start=$SECONDS
  log "building $name ..."
  "$@"
  log "built $name in $((SECONDS - start))s"
}

total_start=$SECONDS
log "Go $GO_VERSION, Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, -p $JOBS -> $DEST"

(cd "$HERE/etcd" && timed etcd \
  "$GO" build -p "$JOBS" -ldflags "-s -w" -o "$TMP/etcd" go.etcd.io/etcd/server/v3)

for cmd in kube-apiserver kube-controller-manager kubectl; do
  (cd "$HERE/kubernetes" && timed "$cmd" \
    "$GO" build -p "$JOBS" -ldflags "$K8S_LDFLAGS" -o "$TMP/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done

cat >"$TMP/VERSIONS" <<EOF
kubernetes $K8S_VERSION
etcd $ETCD_VERSION
go $GO_VERSION
build-rev $BUILD_REV
built-seconds $((SECONDS - total_start))
EOF

# Publish atomically. If another build won the race, keep theirs.
if mv -T "$TMP" "$DEST" 2>/dev/null; then
  trap - EXIT
else
  complete || { log "could not move $TMP to $DEST"; exit 1; }
fi
log "done in $((SECONDS - total_start))s: $DEST"
echo "$DEST"
