#!/usr/bin/env bash
# Builds the Velero server from its Go module (pinned in ./go.mod, the only
# place its version is written) and copies Velero's own CRDs from the same
# module; caches both outside the clone, keyed by the pinned module graph.
#
#   e2e/velero/build.sh          build if not cached; print the directory
#   e2e/velero/build.sh --path   print the directory, build nothing
#                                (exit 1 if it is not built yet)
#
# The directory holds `velero` (the binary), `crds/` (Velero's CRDs, from
# its config/crd/v1/bases and v2alpha1/bases) and VERSIONS.
#
# Environment: BASELINER_CACHE_DIR, GO and BUILD_JOBS, as for
# e2e/controlplane/build.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Bump to force a rebuild when the build flags below change.
BUILD_REV="2"

log() { echo "velero/build.sh: $*" >&2; }

if [[ -n "${GO:-}" ]]; then :
elif command -v go >/dev/null 2>&1; then GO="$(command -v go)"
elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
else log "no Go toolchain found (set GO=/path/to/go or put go on PATH)"; exit 1
fi
export GOTOOLCHAIN=local
GO_VERSION="$("$GO" env GOVERSION)"
VELERO_VERSION="$(cd "$HERE" && "$GO" list -m -f '{{.Version}}' github.com/vmware-tanzu/velero)"
DIGEST="$(cat "$HERE/go.mod" "$HERE/go.sum" | { echo "rev=$BUILD_REV"; cat; } | sha256sum | cut -c1-12)"
CACHE_ROOT="${BASELINER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baseliner}"
DEST="$CACHE_ROOT/velero/velero-${VELERO_VERSION}_${GO_VERSION}_$DIGEST"

if [[ "${1:-}" == "--path" ]]; then
  echo "$DEST"
  [[ -x "$DEST/velero" ]]
  exit $?
fi
if [[ -x "$DEST/velero" && -f "$DEST/crds/velero.io_schedules.yaml" ]]; then
  log "cached: $DEST"
  echo "$DEST"
  exit 0
fi

mkdir -p "$CACHE_ROOT/velero"
if [[ -e "$DEST" ]]; then rm -rf "$DEST"; fi
TMP="$(mktemp -d "$CACHE_ROOT/velero/.build-XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

export CGO_ENABLED=0
# -mod=readonly: the committed go.sum is the pin; never rewrite it.
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
JOBS="${BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
start=$SECONDS
log "building Velero $VELERO_VERSION with $GO_VERSION, -p $JOBS -> $DEST"
(cd "$HERE" && "$GO" build -p "$JOBS" \
  -ldflags "-s -w -X github.com/vmware-tanzu/velero/pkg/buildinfo.Version=$VELERO_VERSION" \
  -o "$TMP/velero" github.com/vmware-tanzu/velero/cmd/velero)
MODULE_DIR="$(cd "$HERE" && "$GO" list -m -f '{{.Dir}}' github.com/vmware-tanzu/velero)"
mkdir -p "$TMP/crds"
cp "$MODULE_DIR"/config/crd/v1/bases/*.yaml "$MODULE_DIR"/config/crd/v2alpha1/bases/*.yaml "$TMP/crds/"
chmod -R u+w "$TMP/crds"
cat >"$TMP/VERSIONS" <<EOV
velero $VELERO_VERSION
go $GO_VERSION
build-rev $BUILD_REV
built-seconds $((SECONDS - start))
EOV
if mv -T "$TMP" "$DEST" 2>/dev/null; then
  trap - EXIT
else
  log "another build finished first; keeping it"
fi
log "built in $((SECONDS - start))s"
echo "$DEST"
