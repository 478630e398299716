# ansible-bridge: every set-up step lives here, so a fresh machine needs only `make demo` / `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv controlplane lint types crd-check manifests-check unit test demo demo-stop bench clean

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

lint: $(STAMP)
	$(BIN)/ruff check bridge tests
	$(BIN)/ruff format --check bridge tests

types: $(STAMP)
	$(BIN)/mypy

# crds/ must be what `ansible-bridge crd` generates from playbooks/watches.yaml and the specs.
manifests-check: $(STAMP)
	$(BIN)/ansible-bridge manifests --watches playbooks/watches.yaml --out deploy/ --check

crd-check: $(STAMP)
	$(BIN)/ansible-bridge crd --watches playbooks/watches.yaml --out crds/ --check

unit: $(STAMP)
	$(BIN)/pytest -m "not e2e"

test: $(STAMP) lint types crd-check manifests-check controlplane
	$(BIN)/pytest

demo: $(STAMP) controlplane
	$(BIN)/python -m bridge.demo

demo-stop: $(STAMP)
	$(BIN)/python -m bridge.demo stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
