# Lethe — make help lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

# Pinned tool versions. The control plane is built from source (hack/envtest),
# because release binaries cannot be downloaded on every machine Lethe is built on.
K8S_VERSION            ?= 1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0

LOCALBIN   ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
ENVTEST_DIR ?= $(HOME)/.local/share/kubebuilder-envtest/k8s/$(K8S_VERSION)-linux-amd64
KUBECTL    ?= $(ENVTEST_DIR)/kubectl
IMG        ?= lethe-controller:dev
TEST_TIMEOUT ?= 20m
DEV_CLUSTER_DIR ?= $(CURDIR)/.dev-cluster

export KUBEBUILDER_ASSETS := $(ENVTEST_DIR)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the Go markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false webhook paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: docs
docs: manifests ## Regenerate docs/reference.md from the CRDs (hack/gendocs).
	go run ./hack/gendocs

.PHONY: helm
helm: manifests ## Regenerate the Helm chart's parts that come from config/ and its README values table (hack/helmgen).
	go run ./hack/helmgen

.PHONY: helm-check
helm-check: ## Fail when the Helm chart's generated files are stale (run make helm).
	go run ./hack/helmgen -check

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: test
test: envtest test-services ## Run every test: unit, envtest (real kube-apiserver + etcd) and real databases.
	go test -count=1 -timeout $(TEST_TIMEOUT) ./...

.PHONY: test-services
test-services: ## Make sure the local PostgreSQL, MariaDB and Redis servers are up (starts them if stopped).
	hack/test-services.sh

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl from source into the setup-envtest directory (once).
	K8S_VERSION=$(K8S_VERSION) ENVTEST_ASSETS_DIR=$(ENVTEST_DIR) hack/envtest/build.sh

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/manager.
	go build -o $(LOCALBIN)/manager .

.PHONY: build-cli
build-cli: ## Build the kubectl plugin into bin/kubectl-lethe (bin/ on PATH: kubectl lethe).
	go build -o $(LOCALBIN)/kubectl-lethe ./cmd/kubectl-lethe

.PHONY: run
run: ## Run the manager against the current kubeconfig (databases on loopback allowed, as on a dev machine).
	go run . --leader-elect=false --egress-allow=127.0.0.0/8,::1

.PHONY: docker-build
docker-build: ## Build the manager image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests envtest ## Install the CRDs into the current cluster.
	$(KUBECTL) apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: envtest ## Remove the CRDs (and every Lethe object) from the current cluster.
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

.PHONY: deploy
deploy: manifests envtest ## Deploy the manager into the current cluster (image $(IMG)).
	cd config/manager && $(KUBECTL) kustomize . >/dev/null
	$(KUBECTL) kustomize config/default | sed 's|image: controller:latest|image: $(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: envtest ## Remove the manager from the current cluster.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: build-installer
build-installer: manifests envtest ## Render CRDs, RBAC, the manager (image $(IMG)) and its metrics Service into dist/install.yaml.
	mkdir -p dist
	$(KUBECTL) kustomize config/default | sed 's|image: controller:latest|image: $(IMG)|' >dist/install.yaml.tmp
	grep -q 'image: $(IMG)$$' dist/install.yaml.tmp || { echo "build-installer: the manager image was not set to $(IMG)" >&2; exit 1; }
	mv dist/install.yaml.tmp dist/install.yaml
	@echo "dist/install.yaml: kubectl apply --server-side -f dist/install.yaml"

.PHONY: dev-cluster
dev-cluster: envtest manifests ## Start a local control plane in the background and install the CRDs; prints the kubeconfig path.
	ENVTEST_DIR=$(ENVTEST_DIR) DEV_CLUSTER_DIR=$(DEV_CLUSTER_DIR) hack/dev-cluster.sh up

.PHONY: dev-cluster-down
dev-cluster-down: ## Stop the local control plane.
	ENVTEST_DIR=$(ENVTEST_DIR) DEV_CLUSTER_DIR=$(DEV_CLUSTER_DIR) hack/dev-cluster.sh down

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen (pinned) into bin/
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

##@ Demo

.PHONY: demo
demo: envtest manifests ## Lethe end to end on this machine: control plane, demo database, manager, requests; prints the receipts.
	ENVTEST_DIR=$(ENVTEST_DIR) DEV_CLUSTER_DIR=$(DEV_CLUSTER_DIR) hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop the demo's manager and control plane, drop the demo database.
	ENVTEST_DIR=$(ENVTEST_DIR) DEV_CLUSTER_DIR=$(DEV_CLUSTER_DIR) hack/demo.sh down

##@ Reliability

# Fuzz targets, as package:Target. Each runs FUZZTIME; their seed corpora are
# committed under testdata/fuzz/ and also run as plain tests by `make test`.
# FUZZTIME is a count of inputs (Nx) rather than a duration: Go 1.26's fuzz
# coordinator can fail a target with "context deadline exceeded" when a
# duration ends while a worker is busy on a loaded machine (golang/go#75804,
# fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 50000x
FUZZ_TARGETS ?= \
	./internal/stores/postgres:FuzzIdentifierQuoting \
	./internal/masking:FuzzRender \
	./internal/stores/http:FuzzPathTemplate \
	./internal/stores/http:FuzzBodyTemplate \
	./internal/stores/redis:FuzzGlobEscaping \
	./internal/datamap:FuzzBuild
FAULTS_TIMEOUT ?= 15m

.PHONY: fuzz
fuzz: ## Fuzz identifier quoting, masking SQL, HTTP templates, redis globs and the data-map graph (FUZZTIME inputs per target, default 50000x).
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

.PHONY: test-faults
test-faults: envtest test-services ## Crash, outage and leader-election tests: the manager binary SIGKILLed under load, a private PostgreSQL stopped mid-run (a few minutes).
	go test -tags faults -count=1 -timeout $(FAULTS_TIMEOUT) -v ./test/faults/

##@ Benchmarks

BENCH_FLAGS ?=
BENCH_OUT   ?= $(LOCALBIN)/bench

.PHONY: bench
bench: envtest test-services ## Benchmarks against their baselines, side by side (about 10 min): prints a table, writes JSON to bin/bench/. Reports; never fails on a goal.
	hack/bench-deps.sh
	go build -o $(LOCALBIN)/manager .
	go build -o $(LOCALBIN)/lethe-bench ./bench/cmd/lethe-bench
	$(LOCALBIN)/lethe-bench --manager $(LOCALBIN)/manager --out $(BENCH_OUT) $(BENCH_FLAGS)
