#!/usr/bin/env bash
# Builds the service images with podman, without a Docker engine or a reachable image registry:
#  - a Debian bookworm base from debootstrap (python3, venv) unless PYTHON_IMAGE names one that can be pulled;
#  - the wheelhouse of every pinned dependency (scripts/wheelhouse.sh), made on the host, handed to the builds as a
#    build context, so pip never reaches a package index inside a build;
#  - helm from the control plane's tool cache (scripts/build-k8s.sh helm), for the retrainer's rollout.
#  - the pod sandbox ("pause") image the real node's containerd needs;
#  - stand-ins for the images manifests/ names (Kafka, Redis, Prometheus, Alertmanager), from Debian's packages on
#    the same base, for a cluster that no registry serves (manifests/images/README.md).
# Everything is cached outside the repository, keyed by its inputs. Prints the built image references.
# Usage: scripts/build-images.sh [inference detector retrainer console kafka redis prometheus alertmanager]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${MITIGA_CACHE:-$HOME/.cache/mitiga}
IMAGES=$CACHE/images
PY=${PY:-.venv/bin/python}
DEPENDENCIES=(kafka redis prometheus alertmanager)
SERVICES=("$@"); [ ${#SERVICES[@]} -eq 0 ] && SERVICES=(inference detector retrainer console "${DEPENDENCIES[@]}")
mkdir -p "$IMAGES"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

need=()
for tool in podman runc debootstrap; do command -v $tool >/dev/null || need+=($tool); done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# podman's defaults fail here: crun does not support cgroups in hybrid mode, and the default rlimits cannot be set
# without CAP_SYS_RESOURCE. Our own containers.conf, nothing of the machine's changed.
export CONTAINERS_CONF=$IMAGES/containers.conf
cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF

# 1. the base image
BASE_PACKAGES="python3,python3-venv,passwd,ca-certificates"
if [ -z "${PYTHON_IMAGE:-}" ]; then
  key=$(echo "bookworm $BASE_PACKAGES" | sha1sum | cut -c1-12)
  PYTHON_IMAGE=localhost/mitiga-base:bookworm-$key
  if ! podman image exists "$PYTHON_IMAGE"; then
    tarball=$IMAGES/base-$key.tar
    if [ ! -f "$tarball" ]; then
      root=$(mktemp -d "$IMAGES/rootfs.XXXX")
      $SUDO debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$root" \
        "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
      $SUDO rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
      $SUDO tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      $SUDO rm -rf "$root"
    fi
    podman import -q "$tarball" "$PYTHON_IMAGE" >/dev/null
  fi
fi

# 2. the wheelhouse: a wheel of every pin, the build backend and Debian's extra (scripts/wheelhouse.sh, shared with
#    make setup)
WHEELS=$(bash scripts/wheelhouse.sh "$PY")

# 3. tools: helm, from the control plane's cache
TOOLS=$IMAGES/tools
mkdir -p "$TOOLS"
if [ ! -x "$TOOLS/helm" ]; then
  cp "$(bash scripts/build-k8s.sh helm)/helm" "$TOOLS/helm.tmp" && mv "$TOOLS/helm.tmp" "$TOOLS/helm"
fi

# 4. the pod sandbox image for the real node (scripts/node/pause.go, static, from scratch)
pause_key=$(sha1sum scripts/node/pause.go | cut -c1-12)
PAUSE=localhost/mitiga-pause:$pause_key
if ! podman image exists "$PAUSE"; then
  ctx=$(mktemp -d)
  (cd scripts/node && CGO_ENABLED=0 GOCACHE="$CACHE/go-build" GOTOOLCHAIN=local go build -trimpath -ldflags "-s -w" \
     -o "$ctx/pause" pause.go)
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > "$ctx/Containerfile"
  podman build -q --format docker --runtime runc -f "$ctx/Containerfile" -t "$PAUSE" "$ctx" >/dev/null
  rm -rf "$ctx"
fi
echo "$PAUSE"

BUILD=(podman build -q --format docker --runtime runc --layers --ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
base_id=$(podman image inspect --format '{{.Id}}' "$PYTHON_IMAGE" 2>/dev/null || echo "$PYTHON_IMAGE")

# 5. the TensorFlow layer the inference, detector and retrainer images share: their Dockerfiles' first stage, the
#    same instructions in each, built once and tagged (so no prune removes it); their own builds find its layers
#    in podman's cache, and a change to mitiga's code rebuilds only what lies above it
tf_key=$( { echo "$base_id"; sed -n '/AS tensorflow$/,/AS build$/p' services/inference/Dockerfile
            cat requirements.lock services/core/requirements-tensorflow.in; } | sha1sum | cut -c1-12)
TENSORFLOW=localhost/mitiga-tensorflow:$tf_key
if [[ " ${SERVICES[*]} " =~ \ (inference|detector|retrainer)\  ]] && ! podman image exists "$TENSORFLOW"; then
  "${BUILD[@]}" --target tensorflow -f services/inference/Dockerfile --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
    --build-context "wheels=$WHEELS" -t "$TENSORFLOW" . >/dev/null
  podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=localhost/mitiga-tensorflow" \
    | grep -v ":$tf_key\$" | xargs -r podman rmi -f >/dev/null 2>&1 || true
fi

# 6. the images, tagged by a hash of their inputs (sources, lock, base), skipped when that tag exists
is_dependency() { [[ " ${DEPENDENCIES[*]} " == *" $1 "* ]]; }
for svc in "${SERVICES[@]}"; do
  extra=()
  if is_dependency "$svc"; then
    inputs=("manifests/images/$svc")
    file="manifests/images/$svc/Containerfile"
    extra+=(--build-arg "BASE_IMAGE=$PYTHON_IMAGE")
    if [ "$svc" = kafka ]; then
      kafka_lib=$(bash scripts/install-kafka.sh)
      inputs+=("$kafka_lib")
      extra+=(--build-context "kafka=$kafka_lib")
    fi
  else
    inputs=(requirements.lock pyproject.toml services/core "services/$svc")
    file="services/$svc/Dockerfile"
    extra+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" --build-context "wheels=$WHEELS")
    [ "$svc" = retrainer ] && inputs+=(charts/mitiga) && extra+=(--build-context "tools=$TOOLS")
    [ "$svc" = console ] && inputs+=(services/research)  # the shipped series
  fi
  tag=$( { echo "$base_id $(cat "$TOOLS/helm" "$0" | sha1sum | cut -c1-12)"; find "${inputs[@]}" -type f -not -path '*/__pycache__/*' \
          -not -name '*.pyc' -print0 | sort -z | xargs -0 sha1sum; } | sha1sum | cut -c1-12)
  ref=localhost/mitiga-$svc:$tag
  if ! podman image exists "$ref"; then
    is_dependency "$svc" || extra+=(--build-arg "SOURCES=$tag")
    "${BUILD[@]}" -f "$file" "${extra[@]}" -t "$ref" . >/dev/null
  fi
  podman tag "$ref" "localhost/mitiga-$svc:dev"
  # older builds of this service are only disk space now
  podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=localhost/mitiga-$svc" \
    | grep -v -e ":$tag\$" -e ':dev$' | xargs -r podman rmi -f >/dev/null 2>&1 || true
  echo "$ref"
done
podman image prune -f >/dev/null 2>&1 || true
