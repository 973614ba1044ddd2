# baseliner: common tasks. `make help` lists them.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
CARGO ?= cargo
CONTROLPLANE := e2e/controlplane
BASELINER ?= $(CARGO) run -q -p baseliner --
CRD := crds/baseliner.dev_productionprofiles.yaml
CRD_COPY := config/crd/bases/baseliner.dev_productionprofiles.yaml
EXCEPTION_CRD := crds/baseliner.dev_profileexceptions.yaml
EXCEPTION_CRD_COPY := config/crd/bases/baseliner.dev_profileexceptions.yaml
# The author-rights ValidatingAdmissionPolicies and their bindings (hand-written).
POLICY := crds/baseliner.dev_author-rights.yaml
POLICY_COPY := config/crd/bases/baseliner.dev_author-rights.yaml
KUBECTL ?= $(shell test -x target/cluster/bin/kubectl && echo target/cluster/bin/kubectl || echo kubectl)
# The operator image deploy and build-installer put in the Deployment.
IMG ?= baseliner:latest
DOCKER ?= docker
DEPLOY_OVERLAY := target/deploy
SAMPLES := config/samples/production-strict.yaml config/samples/staging-light.yaml config/samples/audit-only.yaml

.PHONY: help test test-unit test-e2e test-faults fuzz controlplane cluster-up cluster-down cluster-status
.PHONY: build crd check-crd lint validate-samples demo run install uninstall bench
.PHONY: docker-build deploy undeploy build-installer

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort \
	  | awk 'BEGIN {FS = ":.*## "} {printf "  %-16s %s\n", $$1, $$2}'

## Run

run: ## Run the operator: against KUBECONFIG if set, else the local control plane with the samples
	hack/run.sh

install: ## Install the CRDs and the author-rights policies into the cluster in KUBECONFIG
	$(KUBECTL) apply --server-side -f $(CRD) -f $(EXCEPTION_CRD) -f $(POLICY)

uninstall: ## Remove the CRDs (and with them every profile and exception) and the author-rights policies
	$(KUBECTL) delete --ignore-not-found -f $(CRD) -f $(EXCEPTION_CRD) -f $(POLICY)

## Deploy (config/default: CRD, RBAC, the operator in baseliner-system)

docker-build: ## Build the operator image IMG (needs a container engine: DOCKER=podman works too)
	$(DOCKER) build -t $(IMG) .

deploy: ## Install the CRD, RBAC and operator (image IMG) into the cluster in KUBECONFIG
	hack/install-overlay.sh "$(IMG)" $(DEPLOY_OVERLAY)
	$(KUBECTL) apply --server-side -k $(DEPLOY_OVERLAY)

undeploy: ## Remove the operator, its RBAC and namespace; the CRD and profiles stay (make uninstall)
	$(KUBECTL) delete --ignore-not-found -k config/manager
	$(KUBECTL) delete --ignore-not-found -k config/rbac

build-installer: ## Render everything into dist/install.yaml (image IMG) with the plane's kubectl
	hack/install-overlay.sh "$(IMG)" $(DEPLOY_OVERLAY)
	@mkdir -p dist
	"$$($(CONTROLPLANE)/build.sh)/kubectl" kustomize $(DEPLOY_OVERLAY) > dist/install.yaml.tmp
	mv dist/install.yaml.tmp dist/install.yaml
	@echo "wrote dist/install.yaml (image $(IMG))"

## Tests

test: ## Unit tests, then the e2e suite, then the fault tests
	$(MAKE) test-unit
	$(MAKE) test-e2e
	$(MAKE) test-faults

test-unit: ## Unit tests of every crate but the e2e suite
	$(CARGO) test --workspace --exclude baseliner-e2e

test-e2e: ## e2e suite on the local control plane (stops it after only if it started it)
	hack/test-e2e.sh

test-faults: ## Fault tests (apiserver, etcd, leader killed; deletions; 429) on a plane of their own
	hack/test-faults.sh

## Benchmarks

bench: ## Benchmarks on a fresh plane of their own; writes BENCHMARKS.md and .json (BENCH_NAMESPACES=1000)
	hack/bench.sh

fuzz: ## Fuzz validation and rendering: cargo-fuzz for FUZZ_SECONDS (60) per target, else proptest
	hack/fuzz.sh

## Local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl)

controlplane: ## Build the control plane binaries, or reuse the cached ones
	$(CONTROLPLANE)/build.sh

cluster-up: ## Start the control plane; admin kubeconfig in target/cluster/kubeconfig
	$(CONTROLPLANE)/cluster.sh up

cluster-down: ## Stop the control plane and remove its state
	$(CONTROLPLANE)/cluster.sh down

cluster-status: ## Is the control plane running and ready?
	$(CONTROLPLANE)/cluster.sh status

## Build, generate, lint

build: ## Build the baseliner binary (target/debug/baseliner)
	$(CARGO) build -p baseliner

crd: ## Regenerate crds/ and config/crd/bases/ from src/api.rs (and copy the policies)
	$(BASELINER) crd productionprofiles > $(CRD).tmp
	mv $(CRD).tmp $(CRD)
	cp $(CRD) $(CRD_COPY)
	$(BASELINER) crd profileexceptions > $(EXCEPTION_CRD).tmp
	mv $(EXCEPTION_CRD).tmp $(EXCEPTION_CRD)
	cp $(EXCEPTION_CRD) $(EXCEPTION_CRD_COPY)
	cp $(POLICY) $(POLICY_COPY)

check-crd: ## Fail if the committed CRDs are not what src/api.rs generates
	@$(BASELINER) crd productionprofiles > $(CRD).generated
	@for f in $(CRD) $(CRD_COPY); do \
	  diff -u $$f $(CRD).generated >&2 || { rm -f $(CRD).generated; echo "$$f is out of date: run make crd" >&2; exit 1; }; \
	done
	@rm -f $(CRD).generated
	@$(BASELINER) crd profileexceptions > $(EXCEPTION_CRD).generated
	@for f in $(EXCEPTION_CRD) $(EXCEPTION_CRD_COPY); do \
	  diff -u $$f $(EXCEPTION_CRD).generated >&2 || { rm -f $(EXCEPTION_CRD).generated; echo "$$f is out of date: run make crd" >&2; exit 1; }; \
	done
	@rm -f $(EXCEPTION_CRD).generated
	@diff -u $(POLICY) $(POLICY_COPY) >&2 || { echo "$(POLICY_COPY) differs from $(POLICY): run make crd" >&2; exit 1; }
	@echo "CRD is current"

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Offline: what a GitOps pipeline runs (no cluster)

validate-samples: ## Validate the sample profiles in config/samples/
	$(BASELINER) validate $(SAMPLES)

demo: ## Validate the samples, then render each for an example namespace (one YAML stream)
	@$(BASELINER) validate $(SAMPLES) >&2
	@echo "# production-strict for namespace shop (env=production, team=payments)"
	@$(BASELINER) render --profile config/samples/production-strict.yaml \
	  --namespace shop --label env=production --label team=payments
	@echo "---"
	@echo "# staging-light for namespace shop-staging (env=staging, team=payments)"
	@$(BASELINER) render --profile config/samples/staging-light.yaml \
	  --namespace shop-staging --label env=staging --label team=payments
	@echo "---"
	@echo "# audit-only for namespace cards (compliance=pci)"
	@$(BASELINER) render --profile config/samples/audit-only.yaml \
	  --namespace cards --label compliance=pci
