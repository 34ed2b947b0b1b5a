# Armada — run `make help` for the targets.
GO       ?= go
BIN      := bin/armada
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
GOBIN    := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
# A number of runs, not a duration: with a duration Go's fuzzer sometimes
# fails with "context deadline exceeded" when the time runs out while a
# worker still handles a new input (seen in CI even without minimising).
# No minimising either, for the same reason; crashers are still written
# out as found.
FUZZTIME ?= 30000x
FUZZFLAGS := -fuzztime $(FUZZTIME) -fuzzminimizetime 0

.DEFAULT_GOAL := help
.PHONY: help build run test deps check fuzz bench clean screenshots

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/armada (the whole product: server, CLI and UI)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/armada

run: build ## Run a single-node cluster with the demo game-server fleet; UI at http://127.0.0.1:7070/ui/
	./examples/demo/run.sh $(BIN)

test: deps check ## Run every test with -race, then short fuzz runs
	$(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) fuzz

deps: ## Install the reference servers the differential tests run (redis-server, redis-cli, etcd, etcdctl, zookeeper) and chromium (UI tests) when missing
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null; }
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || \
	  { echo "redis-server and redis-cli are required: apt-get install -y redis-server redis-tools"; exit 1; }
	@command -v etcd >/dev/null && command -v etcdctl >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null; }
	@command -v etcd >/dev/null && command -v etcdctl >/dev/null || \
	  { echo "etcd and etcdctl are required: apt-get install -y etcd-server etcd-client"; exit 1; }
	@command -v chromium >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null || { echo "chromium is required for the UI tests: apt-get install -y chromium"; exit 1; }
	@test -f /usr/share/java/zookeeper.jar && command -v java >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper >/dev/null; }
	@test -f /usr/share/java/zookeeper.jar && command -v java >/dev/null || \
	  { echo "ZooKeeper 3.8 is required: apt-get install -y zookeeper"; exit 1; }

fuzz: ## Fuzz the command decoder, the blueprint parser, RedisExec, EtcdTxn, the RESP path and its size guard, and the ZooKeeper decoder for FUZZTIME each
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' $(FUZZFLAGS) ./fsm
	$(GO) test -run '^$$' -fuzz '^FuzzParseBlueprint$$' $(FUZZFLAGS) ./fsm
	$(GO) test -run '^$$' -fuzz '^FuzzRedisExec$$' $(FUZZFLAGS) ./fsm
	$(GO) test -run '^$$' -fuzz '^FuzzEtcdTxn$$' $(FUZZFLAGS) ./fsm
	$(GO) test -run '^$$' -fuzz '^FuzzRESP$$' $(FUZZFLAGS) ./adapters/redis
	$(GO) test -run '^$$' -fuzz '^FuzzGuard$$' $(FUZZFLAGS) ./adapters/redis
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequest$$' $(FUZZFLAGS) ./adapters/zk
	$(GO) test -run '^$$' -fuzz '^FuzzZKMulti$$' $(FUZZFLAGS) ./fsm

check: ## gofmt, go vet, staticcheck and a go mod tidy diff
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt wants to rewrite:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...
	@cp go.mod /tmp/armada-go.mod.bak; cp go.sum /tmp/armada-go.sum.bak; $(GO) mod tidy; \
	 if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changed go.mod/go.sum:"; git diff -- go.mod go.sum; \
	 cp /tmp/armada-go.mod.bak go.mod; cp /tmp/armada-go.sum.bak go.sum; exit 1; fi

bench: build ## Benchmark a 3-node cluster (writes vs etcd, failover, scheduler, fleets); write docs/BENCHMARKS.md
	@command -v etcd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; } \
	  || echo "etcd-server could not be installed: the report will have no reference"
	@test -f /usr/share/java/zookeeper.jar || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper >/dev/null; } \
	  || echo "zookeeper could not be installed: the ZooKeeper figure will have no reference"
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./fsm
	$(GO) test -run '^$$' -bench SegmentSync -benchtime 3000x ./cluster
	$(GO) run ./bench -armada $(BIN) -out docs/BENCHMARKS.md

screenshots: deps ## Retake the UI screenshots in docs/screenshots (the browser test against 3 real nodes)
	ARMADA_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestUI$$' ./e2e

clean: ## Remove build output and the local data dir
	rm -rf bin armada-data
