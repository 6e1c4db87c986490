#!/usr/bin/env bash
# One Helm version built with Go from the module proxy into the cache, beside the control plane's own (make matrix
# runs the rollout suite with it). Prints the binary's path. Usage: scripts/build-helm.sh v4.3.2
set -euo pipefail
VERSION="${1:?a Helm version, e.g. v4.3.2}"
CACHE="${MITIGA_CACHE:-$HOME/.cache/mitiga}"
DEST="$CACHE/helm-$VERSION"
if [ -x "$DEST/helm" ]; then echo "$DEST/helm"; exit 0; fi
major="${VERSION%%.*}"   # v3 or v4: the module path carries it
export GOPATH="${GOPATH:-$CACHE/go}" GOMODCACHE="${GOMODCACHE:-$CACHE/go/pkg/mod}"
export GOCACHE="${GOCACHE:-$CACHE/go-build}" GOFLAGS="-mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
work="$(mktemp -d "$CACHE/helm-build.XXXX")"; trap 'rm -rf "$work"' EXIT
GOBIN="$work" go install -trimpath -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$VERSION" \
  "helm.sh/helm/$major/cmd/helm@$VERSION" >&2
mkdir -p "$DEST" && mv -f "$work/helm" "$DEST/helm"
echo "$DEST/helm"
