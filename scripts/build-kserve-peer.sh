#!/usr/bin/env bash
# The KServe peer of the inference bench in a venv of its own, cached outside the repo by its lock's hash
# (benchmarks/kserve_peer/requirements.lock: kserve with the same TensorFlow and Keras as mitiga, one resolver run).
# Wheels already fetched for the images (TensorFlow among them) are used from the wheelhouse. Prints the venv's python.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${MITIGA_CACHE:-$HOME/.cache/mitiga}"
LOCK=$ROOT/benchmarks/kserve_peer/requirements.lock
HASH=$(sha256sum "$LOCK" | cut -c1-12)
VENV=$CACHE/kserve-peer-$HASH
if [[ ! -x $VENV/bin/python || ! -f $VENV/.complete ]]; then
  rm -rf "$VENV"
  PYTHON=${PYTHON:-python3.11}
  "$PYTHON" -m venv "$VENV" >&2
  links=()
  [[ -d $CACHE/images/wheelhouse ]] && links=(--find-links "$CACHE/images/wheelhouse")
  "$VENV/bin/pip" install -q --disable-pip-version-check "${links[@]}" -r "$LOCK" >&2
  touch "$VENV/.complete"
fi
echo "$VENV/bin/python"
