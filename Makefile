# volatility: make help lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run` needs only the runtime extras; `make test` adds training, the operator and dev tools.
RUN_STAMP := $(VENV)/.installed-local
export PATH := $(abspath $(BIN)):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help run test infra lint bench bench-api bench-operator train dashboards venv clean

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[local]'
	touch $(RUN_STAMP)

venv: $(STAMP) ## Create the virtual environment and install the project with every extra

run: $(RUN_STAMP) ## Run the whole pipeline locally in one process (API on :8000)
	$(BIN)/volatility up

test: $(STAMP) infra ## Run every test tier: unit, real Kafka broker, real Kubernetes control plane
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

infra: ## Provision the real test components (cached in ~/.cache/volatility): helm, kubectl, Kafka, Kubernetes, a real node, Prometheus and Alertmanager
	bash tests/infra/provision-tools.sh
	bash tests/infra/provision-kafka.sh
	bash tests/infra/provision-k8s.sh
	bash tests/infra/provision-prometheus.sh
	bash tests/infra/provision-node.sh

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) ## Benchmarks: feature engine, embedded pipeline, Kafka services on a real broker
	$(BIN)/python -m tests.benchmarks.pipeline
	bash tests/infra/provision-kafka.sh >/dev/null
	$(BIN)/python -m tests.benchmarks.kafka_services

bench-api: $(STAMP) ## API: open-loop p99 at 20 and 1,000 req/s, saturation, 1,000-row batches, beside the server floor
	$(BIN)/python -m tests.benchmarks.api_bench

bench-operator: $(STAMP) ## Time kubectl apply of a ModelVariant to Ready and to the last pod switched (control plane, kwok nodes)
	$(BIN)/python -m tests.cluster.bench_operator

train: $(STAMP) ## Rebuild the shipped models and model cards in models/artifacts from ../shared/data/coinbase
	$(BIN)/volatility train --data ../shared/data/coinbase --out models/artifacts --seed 0

dashboards: $(STAMP) ## Regenerate the chart's Grafana dashboards (charts/volatility/dashboards) from tools/dashboards.py
	$(BIN)/python -m tools.dashboards

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# --- images and kind ---
# The kind walkthrough: make kind-up images kind-load deploy smoke (needs Docker, kind, kubectl, helm).
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
IMAGE_TARGETS := ingest featurizer consumer api operator
KIND ?= kind
KUBECTL ?= kubectl
HELM ?= helm
KIND_CLUSTER ?= volatility
KUBE_CONTEXT ?= kind-$(KIND_CLUSTER)
NAMESPACE ?= volatility
RELEASE ?= volatility
# Traefik's Helm chart (latest unless pinned): Ingress and Gateway API, on the node's ports 80/443.
TRAEFIK_CHART_VERSION ?=
SMOKE_URL ?= http://localhost

.PHONY: images kind-up kind-load deploy smoke kind-down

# Docker when present, else buildah (no daemon). buildah runs RUN steps in a chroot on the host
# network: no OCI runtime or cgroup setup, and no podman bridge whose route could shadow a pod
# network. PYTHON_IMAGE overrides the base image; IMAGE_BUILD_FLAGS adds builder options.
CONTAINER_BUILDER ?= $(if $(shell command -v docker 2>/dev/null),docker,buildah)
BUILDER_FLAGS ?= $(if $(filter buildah,$(notdir $(CONTAINER_BUILDER))),--layers --network host --isolation chroot)
PYTHON_IMAGE ?=
IMAGE_BUILD_FLAGS ?=

images: ## Build the images volatility-<target>:<version> for ingest, featurizer, consumer, api, operator (docker, else buildah)
	@set -e; for t in $(IMAGE_TARGETS); do \
	  echo "building volatility-$$t:$(VERSION) with $(CONTAINER_BUILDER)"; \
	  $(CONTAINER_BUILDER) build $(BUILDER_FLAGS) $(IMAGE_BUILD_FLAGS) -f services/Dockerfile \
	    --target $$t --build-arg VERSION=$(VERSION) \
	    $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) \
	    -t volatility-$$t:$(VERSION) . ; \
	done

kind-up: ## Create the kind cluster (kind-config.yaml) and install Traefik (Ingress and Gateway API) on localhost:80
	$(KIND) create cluster --config kind-config.yaml --name $(KIND_CLUSTER)
	$(HELM) upgrade --install traefik traefik --repo https://traefik.github.io/charts \
	  $(if $(TRAEFIK_CHART_VERSION),--version $(TRAEFIK_CHART_VERSION)) \
	  --kube-context $(KUBE_CONTEXT) --namespace traefik --create-namespace \
	  --set-string nodeSelector.ingress-ready=true \
	  --set 'tolerations[0].key=node-role.kubernetes.io/control-plane' \
	  --set 'tolerations[0].operator=Exists' --set 'tolerations[0].effect=NoSchedule' \
	  --set ports.web.hostPort=80 --set ports.websecure.hostPort=443 \
	  --set service.type=ClusterIP --set providers.kubernetesGateway.enabled=true \
	  --wait --timeout 5m

kind-load: ## Load the built images into the kind node
	$(KIND) load docker-image --name $(KIND_CLUSTER) $(foreach t,$(IMAGE_TARGETS),volatility-$(t):$(VERSION))

deploy: ## helm upgrade --install the chart into kind (restricted namespace, Ingress on localhost)
	$(KUBECTL) --context $(KUBE_CONTEXT) create namespace $(NAMESPACE) --dry-run=client -o yaml \
	  | $(KUBECTL) --context $(KUBE_CONTEXT) apply -f -
	$(KUBECTL) --context $(KUBE_CONTEXT) label --overwrite namespace $(NAMESPACE) \
	  pod-security.kubernetes.io/enforce=restricted
	$(HELM) upgrade --install $(RELEASE) charts/volatility --kube-context $(KUBE_CONTEXT) \
	  --namespace $(NAMESPACE) --set-string image.tag=$(VERSION) \
	  --set ingress.enabled=true --set ingress.className=traefik \
	  --set-string 'networkPolicy.api.namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=traefik' \
	  --wait --timeout 10m

smoke: ## Ask the API for a prediction through Traefik on localhost
	curl -fsS --retry 30 --retry-delay 2 --retry-all-errors $(SMOKE_URL)/ready
	@echo
	@body="$$(curl -fsS $(SMOKE_URL)/version | python3 -c 'import json, sys; names = json.load(sys.stdin)["feature_names"]; print(json.dumps({"rows": [dict.fromkeys(names, 0.0)]}))')" \
	  && curl -fsS -X POST -H 'Content-Type: application/json' -d "$$body" $(SMOKE_URL)/predict
	@echo

kind-down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
# --- end images and kind ---
