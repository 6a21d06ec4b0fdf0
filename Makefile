# kubectl-stash for Redis. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
K8S_VERSION ?= 1.37.2
ETCD_VERSION ?= 3.5.21
# Tools are built once into a cache that survives between runs (hack/tools.sh).
TOOLS_BIN ?= $(HOME)/.cache/kubectl-stash/bin
export PATH := $(CURDIR)/bin:$(TOOLS_BIN):$(PATH)
export STASH_TOOLS_BIN := $(TOOLS_BIN)
LDFLAGS := -s -w -X stash.dev/redis/version.Version=$(VERSION)
GO_TEST_FLAGS ?= -race -timeout 25m
# The CA roots copied into the images (Debian's ca-certificates package).
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
# The module downloads of a first build go to a log (hack/lib/quiet.sh), not the terminal;
# the stamp makes later builds skip the step until go.sum changes.
MODULES_STAMP := $(HOME)/.cache/kubectl-stash/go-modules.stamp

.PHONY: help
help: ## Show this help.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(MODULES_STAMP): go.sum
	@hack/quietly.sh go-modules go mod download
	@mkdir -p $(@D) && touch $@

.PHONY: build
build: $(MODULES_STAMP) ## Build bin/kubectl-stash, bin/stash-webhook and bin/stash-runner.
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/kubectl-stash ./cmd/kubectl-stash
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/stash-webhook ./cmd/webhook
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/stash-runner ./cmd/runner

.PHONY: image
image: ## Write multi-platform OCI image archives dist/images/stash-{runner,webhook}.tar (linux/amd64+arm64), offline.
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux_amd64/stash-runner ./cmd/runner
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux_amd64/stash-webhook ./cmd/webhook
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux_arm64/stash-runner ./cmd/runner
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux_arm64/stash-webhook ./cmd/webhook
	go run ./hack/image -binary-dir bin -version $(VERSION) -out dist/images -platforms linux/amd64,linux/arm64 -ca-bundle $(CA_BUNDLE)

.PHONY: tools
tools: ## Install the test tools (redis-server, redis-sentinel, redis 8.0 and valkey 8.1 from Debian trixie, the newest redis 8.0.x and valkey 9.x from Debian sid, the redis test RDB files, controller-gen, fake-gcs-server, minio, azurite, krew, helm, promtool) into the cache.
	@hack/tools.sh redis trixie sid redis-test-assets controller-gen fake-gcs-server minio azurite krew helm promtool >/dev/null

.PHONY: generate
generate: ## Regenerate deepcopy code and CRD manifests from the API types, the Grafana dashboard, and the Helm chart's copies.
	@hack/tools.sh controller-gen >/dev/null
	controller-gen object:headerFile=hack/boilerplate.go.txt paths=./api/...
	controller-gen crd:allowDangerousTypes=false paths=./api/... output:crd:artifacts:config=config/crd/bases
	controller-gen webhook paths=./webhook/... output:webhook:artifacts:config=config/webhook
	go run ./hack/dashboard -out config/monitoring/grafana-dashboard.json
	hack/render-webhook.sh

.PHONY: verify
verify: generate ## Fail when generated code or CRDs are stale, or code is not gofmt'ed / vetted.
	@git diff --exit-code -- api config/crd config/webhook config/deploy config/monitoring charts || { echo "generated files are stale: run 'make generate' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- api config/crd config/webhook config/deploy config/monitoring charts)" || { git status --porcelain -- api config/crd config/webhook config/deploy config/monitoring charts; echo "untracked generated files: run 'make generate' and commit them" >&2; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed: $$out" >&2; exit 1; }
	go vet ./...

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, kube-controller-manager and etcd from the module proxy (cached).
	WITH_CONTROLLER_MANAGER=1 hack/envtest-assets.sh $(K8S_VERSION) $(ETCD_VERSION) >/dev/null

# Fuzz targets as package:function pairs; `make fuzz` runs each for FUZZ_TIME.
FUZZ_TARGETS ?= ./runner/rdb:FuzzReader ./runner/rdb:FuzzConvert ./runner/stream:FuzzDecoder ./plugin:FuzzManifests ./runner/crypt:FuzzUnsealAndDecrypt ./runner/store:FuzzParseLocation ./runner/restore:FuzzImportRestore
FUZZ_TIME ?= 20s
# Go's fuzzer also minimizes each new interesting input; one still being minimized when
# FUZZ_TIME ends fails the run with "context deadline exceeded" although nothing was found.
# Bounding that minimization keeps a bounded run from failing on its deadline; a crasher is
# still reported with its input (and written to testdata/fuzz).
FUZZ_MINIMIZE ?= 100x

.PHONY: fuzz
fuzz: ## Run every fuzz target of FUZZ_TARGETS for FUZZ_TIME each (make test runs it).
	for t in $(FUZZ_TARGETS); do go test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZ_TIME) -fuzzminimizetime $(FUZZ_MINIMIZE) "$${t%%:*}" || exit 1; done

.PHONY: node-assets
node-assets: ## Build the real node's pieces (kubelet, kube-scheduler, kube-proxy, containerd, CoreDNS; runc and CNI from apt), cached; ~15-40 min cold.
	hack/node-assets.sh $(K8S_VERSION) >/dev/null

.PHONY: test
test: tools envtest-assets node-assets verify build image fuzz ## Run every test: unit, real Redis, storage emulators, envtest, kubectl, the real node.
	KUBEBUILDER_ASSETS="$$(WITH_CONTROLLER_MANAGER=1 hack/envtest-assets.sh $(K8S_VERSION) $(ETCD_VERSION))" \
	STASH_NODE_ASSETS="$$(hack/node-assets.sh $(K8S_VERSION))" \
	STASH_BIN_DIR="$(CURDIR)/bin" go test $(GO_TEST_FLAGS) ./...

.PHONY: dist
dist: ## Build kubectl-stash archives (linux/darwin/windows × amd64/arm64), sha256 sums and the krew manifest dist/stash.yaml.
	@hack/tools.sh krew >/dev/null
	VERSION=$(VERSION) hack/dist.sh

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin dist

.PHONY: demo
demo: build envtest-assets ## The whole flow: scheduled and triggered backups, restore, digest check; on a real node as root on Linux, else on the node agent (STASH_DEMO_NODE=real|agent).
	@hack/tools.sh redis >/dev/null
	KUBEBUILDER_ASSETS="$$(WITH_CONTROLLER_MANAGER=1 hack/envtest-assets.sh $(K8S_VERSION) $(ETCD_VERSION))" K8S_VERSION=$(K8S_VERSION) hack/demo.sh

.PHONY: bench-cluster
bench-cluster: build ## Benchmark a 3-master cluster: parallel vs one-by-one dump, runner backup and restore (about 1 min).
	go run ./bench cluster -runner bin/stash-runner

.PHONY: bench
bench: build ## Benchmark the runner against redis-dump-go, redis-cli --pipe/--rdb and a minimal DUMP/RESTORE loop (about 20 min; see bench/README.md).
	hack/tools.sh redis >/dev/null
	go run ./bench -runner bin/stash-runner $(BENCH_FLAGS)
