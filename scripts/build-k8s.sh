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
BIN="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
export GOPATH="${GOPATH:-$CACHE/go}" GOMODCACHE="${GOMODCACHE:-$CACHE/go/pkg/mod}"
export GOCACHE="${GOCACHE:-$CACHE/go-build}" GOFLAGS="-mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
ONLY=" $* "
have() { [ -x "$BIN/$1" ] || { [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $1 "* ]]; }; }
mkdir -p "$BIN"
work="$(mktemp -d "$CACHE/build.XXXX")"; trap 'rm -rf "$work"' EXIT
# go install into the work folder, then an atomic rename into $BIN
install_go() { local name=$1; shift; GOBIN="$work/bin" go install -trimpath "$@" >&2 && mv -f "$work/bin/$name" "$BIN/$name"; }

if ! have kube-apiserver || ! have kube-controller-manager || ! have kube-scheduler || ! have kubelet || ! have kube-proxy; then
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging: a module
  # that requires it must replace each one with its published v0.X release instead.
  mkdir -p "$work/k8s" && cd "$work/k8s"
  minor="${K8S_VERSION#v1.}"; staging="v0.$minor"
  modfile="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  { echo "module mitiga.dev/k8sbuild"; echo; echo "go 1.24"; echo
    echo "require k8s.io/kubernetes $K8S_VERSION"; echo
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
  ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    have "$c" || { go build -trimpath -ldflags "$ldflags" -o "$work/$c" "k8s.io/kubernetes/cmd/$c" >&2 && mv -f "$work/$c" "$BIN/$c"; }
  done
fi

if ! have etcd; then
  mkdir -p "$work/etcd" && cd "$work/etcd"
  printf 'module mitiga.dev/etcdbuild\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go
  go build -trimpath -ldflags "-s -w" -o "$work/etcd.bin" . >&2 && mv -f "$work/etcd.bin" "$BIN/etcd"
fi

have kwok || install_go kwok -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
if ! have kwok-stages.yaml && [ ! -f "$BIN/kwok-stages.yaml" ]; then
  # kwok's default stages (from its module): nodes become Ready, pods Running and Ready, Job pods complete
  dir="$(cd "$work" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml pod/fast/pod-ready.yaml \
           pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    cat "$dir/kustomize/stage/$f"; echo "---"
  done > "$BIN/kwok-stages.yaml.tmp" && mv "$BIN/kwok-stages.yaml.tmp" "$BIN/kwok-stages.yaml"
fi
if ! have crds && [ ! -f "$BIN/crds/servicemonitors.yaml" ]; then
  # the Prometheus Operator's CRDs, so the chart's ServiceMonitor and PrometheusRule are validated for real
  dir="$(cd "$work" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION" \
         | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  mkdir -p "$BIN/crds"
  for kind in servicemonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$BIN/crds/$kind.yaml"
  done
fi
have helm || install_go helm -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
have coredns || install_go coredns -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" >&2
# the only version the module proxy serves here; its advisory (GHSA-phqm-jgc3-qf8g) is in the service proxy, which
# the node never runs (--run-service-proxy=false, --run-router=false: the NetworkPolicy controller only)
have kube-router || install_go kube-router -ldflags "-s -w" "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" >&2
have kustomize || install_go kustomize -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
echo "$BIN"
