#!/usr/bin/env bash
# `make test` and CI: every phase timed, then one table of the phases and the test tiers.
#   debs, kafka  the real servers' packages and Kafka's jars (make infra's first two steps)
#   setup   the venv with the pinned packages (make setup)
#   lint    ruff, mypy --strict, the import rules (make lint)
#   images  the service images and the manifests' stand-ins (scripts/build-images.sh), so no test pays for them
#   k8s     the control plane built with Go (scripts/build-k8s.sh, make infra's last step): on a fresh machine the
#           longest phase and bound by the CPU, so it runs in the background from the start, beside setup, lint and
#           the images (bound by the network and the disk); its time is its own, its wait what it added
#   tests   the whole suite in one pytest run on MITIGA_TEST_WORKERS pytest-xdist workers (2; 1 runs it in one
#           process), each module whole on one worker and the suites that share a machine-wide resource each on
#           one worker (tests/tiers.py);
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

quiet() { "$@" >/dev/null; }

k8s_pid=""
# the background build runs in its own process group, so an early exit stops the go compilers too
stop_k8s() { [ -z "$k8s_pid" ] || kill -TERM -- "-$k8s_pid" 2>/dev/null; }
trap 'stop_k8s; summary' EXIT

phase debs bash scripts/install-debs.sh || exit 1
phase kafka quiet bash scripts/install-kafka.sh || exit 1
rm -f out/build-k8s.*
k8s_start=$(date +%s)
setsid bash -c 'bash scripts/build-k8s.sh >out/build-k8s.log 2>&1; echo $? >out/build-k8s.rc; date +%s >out/build-k8s.end' &
k8s_pid=$!
phase setup make --no-print-directory setup || exit 1
phase lint make --no-print-directory lint || exit 1
phase images quiet env PY=$PY bash scripts/build-images.sh || exit 1
wait_k8s() {
  wait "$k8s_pid"
  k8s_pid=""
  phases+=("$(printf '%-8s %6d s  %s' k8s "$(( $(cat out/build-k8s.end) - k8s_start ))" "in the background (out/build-k8s.log)")")
  [ "$(cat out/build-k8s.rc)" = 0 ] || { tail -30 out/build-k8s.log; return 1; }
}
phase k8s-wait wait_k8s || exit 1
workers=${MITIGA_TEST_WORKERS:-2}
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers")
# shellcheck disable=SC2086
phase tests $PY -m pytest "${parallel[@]}" --durations=30 --junitxml=out/junit.xml ${PYTEST_ARGS:-} || overall=1
exit $overall
