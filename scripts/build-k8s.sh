#!/usr/bin/env bash
# A Kubernetes test control plane built with Go from the module proxy, cached outside the repository
# (idempotent): kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok, helm and kustomize, plus kwok's
# stages and the Prometheus Operator CRDs; kubelet, kube-proxy and CoreDNS for the real node
# (services/devstack/mitiga_devstack/node.py), and kube-router, whose NetworkPolicy controller alone enforces the
# policies there.
# Prints the directory holding the binaries. Override versions with the variables below.
# Usage: scripts/build-k8s.sh [tool...]   (no tool: all of them; `helm` alone is what the images need)
# Each binary is built in a folder beside the cache's and moved into place, so two builds at once (make test builds
# the images' helm while the rest builds) never leave a half-written binary.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.5}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
PROM_OPERATOR_VERSION="${PROM_OPERATOR_VERSION:-v0.85.0}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.7.1}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.4}"
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}"
CACHE="${MITIGA_CACHE:-$HOME/.cache/mitiga}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# Every tool is built once per version into a folder of its own ($CACHE/tools/<tool>-<version>), so another
# Kubernetes or Helm version (make matrix) rebuilds only that tool; $BIN gathers one version of each as symlinks.
BIN="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
TOOLS="$CACHE/tools"
export GOPATH="${GOPATH:-$CACHE/go}" GOMODCACHE="${GOMODCACHE:-$CACHE/go/pkg/mod}"
export GOCACHE="${GOCACHE:-$CACHE/go-build}" GOFLAGS="-mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
ONLY=" $* "
wanted() { [ "$ONLY" = "  " ] || [[ "$ONLY" == *" $1 "* ]]; }
mkdir -p "$BIN" "$TOOLS"
work="$(mktemp -d "$CACHE/build.XXXX")"; trap 'rm -rf "$work"' EXIT
# link NAME into $BIN from DIR (atomically: a symlink beside it, renamed over)
link() { ln -sfn "$2/$1" "$BIN/.$1.link" && mv -fT "$BIN/.$1.link" "$BIN/$1"; }
# provide NAME DIR BUILD...: NAME is in $BIN, or linked from DIR once BUILD (run with $out, a fresh folder) made it
provide() {
  local name=$1 dir=$2; shift 2
  if [ -e "$BIN/$name" ] || ! wanted "$name"; then return 0; fi
  if [ ! -e "$dir/$name" ]; then
    out="$(mktemp -d "$work/out.XXXX")"; "$@"
    mkdir -p "$dir" && mv -f "$out/$name" "$dir/$name"
  fi
  link "$name" "$dir"
}
# go install into $out
install_go() { GOBIN="$out" go install -trimpath "$@" >&2; }

# staging MODULE v0.X.Y: the version of a staging module to build with. The module proxy here does not serve every
# patch of every staging module: a missing one is taken from the nearest patch it serves (older first, then newer),
# and listed in the version's folder (staging-substitutions.txt) for make matrix to state.
staging() {
  local m=$1 want=$2 base patch p
  base="${want%.*}"; patch="${want##*.}"
  [[ "$m" == k8s.io/sample-* ]] && { echo "$want"; return; }  # examples, never imported by a component
  # asked outside the build's module, whose go.mod is being written
  served() { (cd "$work" && go mod download -json "$m@$1" 2>/dev/null) | grep -q '"Dir"'; }
  if served "$want"; then echo "$want"; return; fi
  for p in $(seq $((patch - 1)) -1 0) $(seq $((patch + 1)) $((patch + 10))); do
    if served "$base.$p"; then
      echo "$m $base.$p" >> "$work/staging-substitutions.txt"; echo "$base.$p"; return
    fi
  done
  echo "$want"  # none served: the build names the module that is missing
}
kube() {
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging: a module
  # that requires it must replace each one with its published v0.X release instead.
  local c=$1 minor="${K8S_VERSION#v1.}"
  mkdir -p "$work/k8s" && cd "$work/k8s"
  if [ ! -f go.mod ]; then
    modfile="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    { echo "module mitiga.dev/k8sbuild"; echo; echo "go 1.24"; echo
      echo "require k8s.io/kubernetes $K8S_VERSION"; echo
      for m in $(grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" | awk '{print $1}'); do
        echo "replace $m => $m $(staging "$m" "v0.$minor")"
      done
    } > go.mod
  fi
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
  ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  go build -trimpath -ldflags "$ldflags" -o "$out/$c" "k8s.io/kubernetes/cmd/$c" >&2
}
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  provide "$c" "$TOOLS/kubernetes-$K8S_VERSION" kube "$c"
done
if [ -f "$work/staging-substitutions.txt" ]; then
  cp "$work/staging-substitutions.txt" "$TOOLS/kubernetes-$K8S_VERSION/staging-substitutions.txt"
fi

etcd() {
  mkdir -p "$work/etcd" && cd "$work/etcd"
  printf 'module mitiga.dev/etcdbuild\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go
  go build -trimpath -ldflags "-s -w" -o "$out/etcd" . >&2
}
provide etcd "$TOOLS/etcd-$ETCD_VERSION" etcd

provide kwok "$TOOLS/kwok-$KWOK_VERSION" install_go -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
  "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
stages() {
  # kwok's default stages (from its module): nodes become Ready, pods Running and Ready, Job pods complete
  local dir f
  dir="$(cd "$work" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml pod/fast/pod-ready.yaml \
           pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    cat "$dir/kustomize/stage/$f"; echo "---"
  done > "$out/kwok-stages.yaml"
}
provide kwok-stages.yaml "$TOOLS/kwok-$KWOK_VERSION" stages
crds() {
  # the Prometheus Operator's CRDs, so the chart's ServiceMonitor and PrometheusRule are validated for real
  local dir kind
  dir="$(cd "$work" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION" \
         | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  mkdir -p "$out/crds"
  for kind in servicemonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$out/crds/$kind.yaml"
  done
}
provide crds "$TOOLS/prometheus-operator-crds-$PROM_OPERATOR_VERSION" crds
# Helm: scripts/build-helm.sh keeps each version in a folder of its own too
if wanted helm && [ ! -e "$BIN/helm" ]; then link helm "$(dirname "$(bash "$HERE/build-helm.sh" "$HELM_VERSION")")"; fi
provide coredns "$TOOLS/coredns-$COREDNS_VERSION" install_go -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
# the only version the module proxy serves here; its advisory (GHSA-phqm-jgc3-qf8g) is in the service proxy, which
# the node never runs (--run-service-proxy=false, --run-router=false: the NetworkPolicy controller only)
provide kube-router "$TOOLS/kube-router-$KUBE_ROUTER_VERSION" install_go -ldflags "-s -w" \
  "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
provide kustomize "$TOOLS/kustomize-$KUSTOMIZE_VERSION" install_go -ldflags "-s -w" \
  "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
echo "$BIN"
