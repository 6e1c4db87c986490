#!/usr/bin/env bash
# `make test` and CI: every phase timed, then one table of the phases and the test tiers.
#   setup   the venv with the pinned packages (make setup)
#   lint    ruff, mypy --strict, the import rules (make lint)
#   infra   the real servers' binaries: Debian packages, Kafka's jars, the control plane built with Go (make infra)
#   images  the service images and the manifests' stand-ins (scripts/build-images.sh), so no test pays for them
#   tests   the whole suite in one pytest run on MITIGA_TEST_WORKERS pytest-xdist workers (2; 1 runs it in one
#           process), the suites that share a machine-wide resource each on one worker (tests/tiers.py);
#           tests/tiers.py reports the time of each tier (fast, slow, integration, node), pytest the 30 slowest
#           tests; a JUnit report goes to out/junit.xml
# PYTEST_ARGS adds arguments to the pytest run (for example -x, or -k to pick tests).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
PY=.venv/bin/python
phases=()
overall=0

phase() {
  local name=$1 start rc
  shift
  start=$(date +%s)
  echo "=== $name: $*"
  "$@"
  rc=$?
  phases+=("$(printf '%-8s %6d s  %s' "$name" "$(( $(date +%s) - start ))" "$([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)")")")
  return $rc
}

summary() {
  echo
  echo "=== time per phase"
  printf '%s\n' "${phases[@]}" | tee out/phases.txt
  if [ -f out/tiers.txt ]; then
    echo "=== time per test tier"
    cat out/tiers.txt
  fi
}
trap summary EXIT

phase setup make --no-print-directory setup || exit 1
phase lint make --no-print-directory lint || exit 1
phase infra make --no-print-directory infra || exit 1
phase images env PY=$PY bash scripts/build-images.sh >/dev/null || exit 1
workers=${MITIGA_TEST_WORKERS:-2}
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers" --dist loadgroup)
# shellcheck disable=SC2086
phase tests $PY -m pytest "${parallel[@]}" --durations=30 --junitxml=out/junit.xml ${PYTEST_ARGS:-} || overall=1
exit $overall
