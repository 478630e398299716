# ansible-bridge: every set-up step lives here, so a fresh machine needs only `make demo` / `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv controlplane sshd lint types crd-check manifests-check unit test demo demo-stop bench clean

all: test

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# kube-apiserver, etcd and kubectl: $KUBEBUILDER_ASSETS if set, else built from the pinned Go
# modules into ~/.cache/ansible-bridge/controlplane/<version>/ (once; reused afterwards).
controlplane: $(STAMP)
	$(BIN)/ansible-bridge controlplane assets

# ruff, and the import contracts of [tool.importlinter] in pyproject.toml (the README's code map).
lint: $(STAMP)
	$(BIN)/ruff check bridge tests bench
	$(BIN)/ruff format --check bridge tests bench
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

# crds/ must be what `ansible-bridge crd` generates from playbooks/watches.yaml and the specs.
manifests-check: $(STAMP)
	$(BIN)/ansible-bridge manifests --watches playbooks/watches.yaml --out deploy/ --check

crd-check: $(STAMP)
	$(BIN)/ansible-bridge crd --watches playbooks/watches.yaml --out crds/ --check

unit: $(STAMP)
	$(BIN)/pytest -m "not e2e"

# openssh-server and -client for the SSH e2e tests (tests/e2e/test_credentials.py starts its own
# sshd processes). Installed with apt only when missing (needs root); no service is started.
SSHD_TOOLS := /usr/sbin/sshd /usr/bin/ssh /usr/bin/ssh-keygen /usr/bin/ssh-agent /usr/bin/ssh-add
sshd:
	@missing=; for f in $(SSHD_TOOLS); do [ -x $$f ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing openssh-server and openssh-client (for the SSH e2e tests)"; \
	  policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends openssh-server openssh-client >/dev/null; rc=$$?; \
	  [ -z "$$policy" ] || rm -f /usr/sbin/policy-rc.d; exit $$rc; \
	fi

# The e2e suite runs twice: with the default executor (warm), then with ansible-runner's.
test: $(STAMP) lint types crd-check manifests-check controlplane sshd
	$(BIN)/pytest
	BRIDGE_TEST_EXECUTOR=local $(BIN)/pytest -m e2e

demo: $(STAMP) controlplane
	$(BIN)/python -m bridge.tools.demo

demo-stop: $(STAMP)
	$(BIN)/python -m bridge.tools.demo stop

# Performance (not part of `make test`): latency, throughput and scale against bare
# ansible-playbook and the Operator SDK operator (built once with Go into
# ~/.cache/ansible-bridge/bench/). Prints the tables and writes bench/results/latest.md.
# Knobs: BENCH_REPS, BENCH_THROUGHPUT, BENCH_SCALE, BENCH_IDLE_SECONDS, BENCH_SCENARIOS.
# BENCH_SCENARIOS=soak runs the soak instead (~12 min, writes bench/results/soak.md; knobs
# BENCH_SOAK_RESOURCES, _PERIOD, _SECONDS, _OUTAGE, _SETTLE).
bench: $(STAMP) controlplane
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
