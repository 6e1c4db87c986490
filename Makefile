# mitiga: every target does its own setup on a fresh machine (venv, pinned packages, tools).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK_HASH := $(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(LOCK_HASH)
# downloads are cached outside the repository, all under MITIGA_CACHE (an empty folder gives a cold run)
export MITIGA_CACHE ?= $(HOME)/.cache/mitiga
export PIP_CACHE_DIR ?= $(MITIGA_CACHE)/pip
export UV_CACHE_DIR ?= $(MITIGA_CACHE)/uv
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: help setup infra check test e2e fuzz soak lint protos demo up down bench lock clean images docs matrix

help: ## list the targets
	@grep -E '^[a-z0-9]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv with the pinned packages and mitiga in editable mode

# every wheel comes from the wheelhouse (scripts/wheelhouse.sh, cached outside the repository, shared with the images),
# installed by uv
$(STAMP): requirements.lock pyproject.toml scripts/wheelhouse.sh
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "mitiga needs Python 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	wheels=$$(bash scripts/wheelhouse.sh $(PYTHON)) && \
	  $(PY) -m pip install -q --no-index --find-links "$$wheels" uv && \
	  $(VENV)/bin/uv pip install -q --python $(PY) --no-index --find-links "$$wheels" -r requirements.lock && \
	  $(VENV)/bin/uv pip install -q --python $(PY) --no-index --find-links "$$wheels" --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

lint: setup ## ruff, mypy (strict) and the import rules (import-linter, pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

infra: ## install the real servers the tests use (Debian packages, Kafka jars, a Kubernetes control plane built with Go), cached outside the repo
	bash scripts/install-debs.sh
	bash scripts/install-kafka.sh >/dev/null
	bash scripts/build-k8s.sh >/dev/null

check: setup ## the loop to run after every change: lint, then every test that starts no server, builds no image and trains little (tests/tiers.py)
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -m "not slow and not integration and not node" $(PYTEST_ARGS)

test: ## everything, as CI runs it: setup, lint, infra, images, then the whole suite; each phase and test tier timed (scripts/test.sh)
	bash scripts/test.sh

e2e: setup infra ## only the real-node suite (part of make test): images, kubelet + containerd, the chart, a retrain Job's container, rollouts, a killed detector pod
	$(PY) -m pytest -q tests/node

fuzz: setup ## the fuzz suite at 1,000 generated requests per operation (make test runs it at 100)
	MITIGA_FUZZ_EXAMPLES=1000 $(PY) -m pytest -q tests/fuzz tests/inference/test_codec_properties.py

images: setup ## the service images and the stand-ins for manifests/ (Kafka, Redis, Prometheus, Alertmanager) with podman (no Docker engine or registry needed), cached by their inputs
	bash scripts/build-images.sh

protos: setup ## regenerate the protobuf code from protos/
	$(PY) protos/generate.py

demo: setup ## the standalone loop on the shipped Amazon data (installs chromium for its console screenshots)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver >/dev/null; }
	$(PY) -m mitiga_standalone.demo

up: setup infra ## the multi-process stack: Kafka, Redis, Prometheus, Alertmanager, inference, detector
	$(PY) -m mitiga_devstack up

down: ## stop exactly what `make up` started
	$(PY) -m mitiga_devstack down

bench: setup infra ## benchmarks, time to mitigation and rollouts on a real node among them; results in benchmarks/results/*.json and *.md
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	bash scripts/build-ghz.sh >/dev/null
	bash scripts/build-kserve-peer.sh >/dev/null
	cd benchmarks && ../$(PY) inference_bench.py && ../$(PY) trial_bench.py && ../$(PY) detector_bench.py \
	  && ../$(PY) detector_scale_bench.py && ../$(PY) detector_replicas_bench.py \
	  && ../$(PY) early_detection_bench.py && ../$(PY) kafka_bench.py && ../$(PY) policy_bench.py \
	  && ../$(PY) classifier_bench.py && ../$(PY) multimodel_bench.py && ../$(PY) mitigation_bench.py \
	  && ../$(PY) rollout_bench.py

matrix: setup infra ## the suites that touch Kafka, Redis, Helm and Kubernetes against each version this machine can get (not part of make test); writes docs/compatibility.md
	$(PY) -m mitiga_devstack.matrix

soak: setup infra ## R1: the multi-process stack at 70% of its peak for 10 minutes (SOAK_SECONDS); benchmarks/results/soak.*
	cd benchmarks && ../$(PY) soak.py

docs: setup ## regenerate docs/settings.md, metrics.md, alerts.md and loop.svg from the code
	$(PY) scripts/gen_docs.py

# The current pins are kept as constraints, so a new requirement is resolved against them (UPGRADE=1: all anew).
lock: ## resolve every pin in one resolver run into requirements.lock
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -e '.[dev]' $(if $(UPGRADE),,-c requirements.lock)
	{ echo '# Every pin from one resolver run (pip, Python 3.11, CPU). Regenerate with `make lock`.'; \
	  .venv-lock/bin/pip freeze --exclude-editable; } > requirements.lock
	rm -rf .venv-lock

clean: ## remove the venv and generated output
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
