#!/usr/bin/env bash
# One wheel of every pin in requirements.lock, plus the build backend, uv and what Debian's Python needs beside them,
# downloaded (or built) once into a cache outside the repository, keyed by the lock (idempotent). `make setup`
# installs the venv from it and the images' builds read it, so a fresh clone downloads nothing twice and a warm
# machine nothing at all (pip's own HTTP cache is not kept on every machine: seen here, it stored nothing).
# Prints the wheelhouse's directory. Usage: scripts/wheelhouse.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-python3.11}}
CACHE=${MITIGA_CACHE:-$HOME/.cache/mitiga}
WHEELS=$CACHE/wheels
backend=$(sed -n 's/^requires = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '"' | tr ',' '\n' | sed 's/^ *//')
mapfile -t backend <<< "$backend"
# the lock is resolved on Python >= 3.11.3; Debian's 3.11.2 (the images' base) also needs redis's async-timeout;
# uv installs the venv from here (make setup: 25 s from this folder, 6 s from uv's cache, against 2 min 45 s by pip)
extra=(async-timeout==5.0.1 uv==0.13.9)
key=$( { cat requirements.lock; printf '%s\n' "${backend[@]}" "${extra[@]}"; } | sha1sum | cut -c1-12)
if [ ! -f "$WHEELS/.complete-$key" ]; then
  mkdir -p "$WHEELS"
  # wheels already in the folder are found there (--find-links), so a changed lock fetches only what changed
  "$PY" -m pip wheel -q --disable-pip-version-check --no-deps --find-links "$WHEELS" -w "$WHEELS" \
    -r requirements.lock "${extra[@]}" >&2
  "$PY" -m pip wheel -q --disable-pip-version-check --find-links "$WHEELS" -w "$WHEELS" "${backend[@]}" >&2
  touch "$WHEELS/.complete-$key"
fi
echo "$WHEELS"
