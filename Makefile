# gpuspace Makefile. The two commands a new user needs: `make run` (the local
# system on simulated GPUs) and `make test` (everything CI runs).

SHELL := /usr/bin/env bash -o pipefail
.DEFAULT_GOAL := build

GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=v1.37.1 \
                -X k8s.io/component-base/version.gitMajor=1 \
                -X k8s.io/component-base/version.gitMinor=37
GPUSPACE_LDFLAGS := -X github.com/gpuspace/gpuspace/internal/cli.Version=$(VERSION)

# go-nvml is cgo; its headers use deprecated declarations.
export CGO_ENABLED ?= 1
export CGO_CFLAGS  ?= -Wno-deprecated-declarations
# Tests find the control-plane binaries here.
export GPUSPACE_BIN_DIR := $(BIN)

# Our binaries: one per directory under cmd/.
CMDS := $(notdir $(patsubst %/main.go,%,$(wildcard cmd/*/main.go)))
# The control plane the local system and the integration tests run, built
# from the pinned Kubernetes and etcd modules.
CONTROL_PLANE := $(BIN)/etcd $(BIN)/kube-apiserver $(BIN)/kube-controller-manager

TEST_TIMEOUT ?= 20m
TEST_FLAGS   ?=
BENCH        ?= .
BENCH_FLAGS  ?= -benchtime=500ms -count=1

.PHONY: build
build: $(addprefix $(BIN)/,$(CMDS)) control-plane $(BIN)/kubectl ## Build every binary into bin/ (and a matching kubectl)

.PHONY: control-plane
control-plane: $(CONTROL_PLANE) ## Build etcd, kube-apiserver and kube-controller-manager into bin/

# Go's build cache makes these cheap when nothing changed; FORCE lets Go,
# not make, decide what is stale.
$(BIN)/gpuspace: FORCE
	$(GO) build -ldflags "$(GPUSPACE_LDFLAGS)" -o $@ ./cmd/gpuspace

$(BIN)/gpuspace-scheduler: FORCE
	$(GO) build -ldflags "$(KUBE_LDFLAGS)" -o $@ ./cmd/gpuspace-scheduler

$(BIN)/%: FORCE
	$(GO) build -o $@ ./cmd/$*

$(BIN)/etcd: FORCE
	$(GO) build -o $@ ./internal/dev/controlplane/etcd

$(BIN)/kube-apiserver: FORCE
	$(GO) build -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(BIN)/kube-controller-manager: FORCE
	$(GO) build -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-controller-manager

$(BIN)/kubectl: FORCE
	$(GO) build -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kubectl

.PHONY: FORCE
FORCE:

.PHONY: run
run: build ## Run the local system (gpuspace dev) in the foreground
	$(BIN)/gpuspace dev $(DEV_FLAGS)

.PHONY: test
test: control-plane $(BIN)/gpuspace $(BIN)/gpuspace-scheduler ## Run every test: unit, integration, fuzz seed corpora, then the e2e suite against gpuspace dev with one cluster and with two
	$(GO) test -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./...
	hack/e2e-local.sh
	E2E_CLUSTERS=2 hack/e2e-local.sh

.PHONY: bench
bench: control-plane ## Run the Go benchmarks (BENCH=regexp, BENCH_FLAGS=...)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCH_FLAGS) ./...

# The manifests the Helm chart renders as they are: it ships copies under
# manifests/chart/gpuspace/files/ (a chart cannot read files outside its
# directory), made by `make generate` and so checked by `make verify`.
CHART_FILES := crds/gpuspace.io_*.yaml rbac/workspace-user-clusterrole.yaml \
               gpuspace/namespace.yaml gpuspace/rbac.yaml scheduler/rbac.yaml scheduler/config.yaml \
               device-plugin/namespace.yaml device-plugin/rbac.yaml device-plugin/admission-policy.yaml \
               admission/workspace-node-binding.yaml worker/credential.yaml

.PHONY: generate
generate: ## Regenerate deepcopy code, CRD YAML, the OpenAPI document, the Go API client and the Helm chart's copies of manifests
	$(GO) tool controller-gen object paths=./api/... crd:crdVersions=v1 output:crd:dir=./manifests/crds
	$(GO) generate ./apiserver/client/
	rm -rf manifests/chart/gpuspace/files
	cd manifests && for f in $(CHART_FILES); do install -D -m 0644 $$f chart/gpuspace/files/$$f || exit 1; done

.PHONY: verify
verify: ## gofmt, go vet, generated files and go.mod up to date
	hack/verify-links.sh
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	hack/verify-clean.sh "generated files" $(MAKE) --no-print-directory generate
	hack/verify-clean.sh "go.mod/go.sum" $(GO) mod tidy

TAG ?= dev
REGISTRY ?= gpuspace
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
IMAGES := gpuspace gpuspace-scheduler gpuspace-device-plugin
IMAGE_BIN := $(CURDIR)/_output/bin
IMAGE_OUT := $(CURDIR)/_output/images
# The images' binaries: -trimpath and stripped so that the same source gives
# the same bytes (and so the same image digests); static except the device
# plugin (go-nvml is cgo), whose netgo/osusergo tags keep glibc's NSS out.
IMAGE_GOFLAGS := -trimpath -buildvcs=false

.PHONY: images
images: ## Build the container images $(REGISTRY)/<binary>:$(TAG) without Docker: an OCI layout and one docker-archive per image under _output/images/
	CGO_ENABLED=0 $(GO) build $(IMAGE_GOFLAGS) -ldflags "-s -w $(GPUSPACE_LDFLAGS)" -o $(IMAGE_BIN)/gpuspace ./cmd/gpuspace
	CGO_ENABLED=0 $(GO) build $(IMAGE_GOFLAGS) -ldflags "-s -w $(KUBE_LDFLAGS)" -o $(IMAGE_BIN)/gpuspace-scheduler ./cmd/gpuspace-scheduler
	CGO_ENABLED=1 $(GO) build $(IMAGE_GOFLAGS) -tags netgo,osusergo -ldflags "-s -w" -o $(IMAGE_BIN)/gpuspace-device-plugin ./cmd/gpuspace-device-plugin
	$(GO) run ./hack/images --bin-dir $(IMAGE_BIN) --out $(IMAGE_OUT) --registry $(REGISTRY) --tag $(TAG) \
	  --version $(VERSION) --revision "$(REVISION)"

.PHONY: e2e
e2e: control-plane $(BIN)/gpuspace $(BIN)/gpuspace-scheduler ## Run the e2e suite against a fresh local system (gpuspace dev)
	hack/e2e-local.sh

.PHONY: e2e-kind
e2e-kind: ## Create a kind cluster, deploy gpuspace and run the e2e suite (needs Docker and kind)
	hack/e2e-kind.sh

.PHONY: e2e-node
e2e-node: build images ## Join a real kubelet 1.37.1 (containerd, runc) to gpuspace dev; the device plugin's DaemonSet runs from make images' image and a pod gets GPUs from it (root; restores the host)
	hack/e2e-node.sh

.PHONY: clean
clean: ## Remove bin/ and the local system's state
	rm -rf $(BIN) .gpuspace

.PHONY: help
help:
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'
