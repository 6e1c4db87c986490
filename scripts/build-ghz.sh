#!/usr/bin/env bash
# ghz, the gRPC load generator the inference benchmark uses (the gRPC counterpart of wrk), built with Go from the
# module proxy and cached outside the repository (idempotent). Prints the binary's path.
set -euo pipefail
GHZ_VERSION="${GHZ_VERSION:-v0.121.0}"
CACHE="${MITIGA_CACHE:-$HOME/.cache/mitiga}"
BIN="$CACHE/ghz-$GHZ_VERSION"
if [ ! -x "$BIN/ghz" ]; then
  export GOPATH="${GOPATH:-$CACHE/go}" GOMODCACHE="${GOMODCACHE:-$CACHE/go/pkg/mod}"
  export GOCACHE="${GOCACHE:-$CACHE/go-build}" GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$BIN"
  go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" >&2
fi
echo "$BIN/ghz"
