# One Makefile. `make demo` and `make test` work on a fresh clone: they create .venv and install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint typecheck contracts check bench kind-up kind-down clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m autoscaler.replay.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check extender autoscaler tests bench
	$(BIN)/ruff format --check extender autoscaler tests bench

# bench/ as scripts (it imports tests/kube_emulator); tests/ once per folder: each has its own
# conftest.py (see [tool.mypy] in pyproject.toml)
TEST_DIRS = $(filter-out tests/__pycache__/,$(wildcard tests/*/))

typecheck: $(STAMP)
	$(BIN)/mypy
	MYPYPATH=tests $(BIN)/mypy bench
	MYPYPATH=tests $(BIN)/mypy tests/*.py
	for d in $(TEST_DIRS); do MYPYPATH=tests:$$d $(BIN)/mypy $$d || exit 1; done

contracts: $(STAMP)
	$(BIN)/lint-imports

check: test lint typecheck contracts

bench: $(STAMP)
	$(BIN)/python bench/extender.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# --- kind: a local cluster with the default-scheduler registration, KWOK nodes, the image --
KIND_CLUSTER ?= spillover
KWOK_VERSION ?= v0.6.1
KWOK_RELEASE := https://github.com/kubernetes-sigs/kwok/releases/download/$(KWOK_VERSION)
IMAGE        ?= spillover:dev
KUBECTL      := kubectl --context kind-$(KIND_CLUSTER)

kind-up:
	docker build -t $(IMAGE) .
	kind create cluster --name $(KIND_CLUSTER) --config manifests/kind/cluster.yaml
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	$(KUBECTL) apply -f $(KWOK_RELEASE)/kwok.yaml
	$(KUBECTL) apply -f $(KWOK_RELEASE)/stage-fast.yaml
	$(KUBECTL) -n kube-system rollout status deployment/kwok-controller --timeout=180s
	$(KUBECTL) apply --server-side -k manifests/overlays/kind
	$(KUBECTL) -n spillover-system wait --for=condition=complete job/spillover-certgen-create --timeout=180s
	$(KUBECTL) -n kube-system rollout status daemonset/spillover-scheduler-extender --timeout=180s
	$(KUBECTL) -n spillover-system rollout status deployment/spillover-extender --timeout=180s
	$(KUBECTL) -n spillover-system rollout status deployment/spillover-autoscaler --timeout=300s

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)
