# nfqfw — see README.md. Every target runs from a fresh clone.
# go from PATH, else the toolchain's usual place (sudo and fresh shells may not
# have /usr/local/go/bin on PATH).
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
PKGS      := ./...
# Fuzz targets: package:Target:executions, every native fuzz test of the
# repository (fuzz-short fails when one is missing here). The budgets are
# execution counts, not durations: with a duration, Go's fuzz coordinator
# (up to go1.26) can report "context deadline exceeded" as a failure when the
# time runs out while a worker is busy (golang/go#75804), with no failing
# input. Each count is about 6 s of fuzzing on a 2-core machine, so
# `make fuzz-short` takes about 2 minutes; `make fuzz` runs FUZZ_LONG_SCALE
# times as many.
FUZZ_TARGETS := \
	./cmd/nfqfw/internal/store:FuzzLoad:20000 \
	./engine:FuzzDecode:50000 \
	./engine:FuzzFlowTableAccounting:8000 \
	./engine/control:FuzzControlHandlers:80000 \
	./engine/control:FuzzRequest:30000 \
	./engine/ctnl:FuzzDecodeMessages:80000 \
	./engine/decision:FuzzUnmarshal:100000 \
	./engine/fleet:FuzzAccept:40000 \
	./engine/nfq:FuzzParseProcStats:50000 \
	./engine/nfq:FuzzParseQueueMessages:120000 \
	./helpers/ftp:FuzzInspect:30000 \
	./helpers/ftp:FuzzParse:20000 \
	./metrics:FuzzExpandQuery:15000 \
	./rules:FuzzParse:50000 \
	./rules/iptables:FuzzRemoval:80000
FUZZ_SCALE      ?= 1
FUZZ_LONG_SCALE ?= 50

.PHONY: all build test unit e2e fuzz fuzz-short bench bench-e2e demo demo-fleet tour tour-down deps deps-demo deps-tour lint clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nfqfw ./cmd/nfqfw

# The packages a job needs (scripts/install-deps.sh): no recommended
# packages, no service started or left enabled on the host. deps is what the
# tests need (CI); the demo and the tour need less.
deps:
	bash scripts/install-deps.sh test

deps-demo:
	bash scripts/install-deps.sh demo

deps-tour:
	bash scripts/install-deps.sh tour

# The whole suite: vet, unit and privileged end-to-end tests (root), then a
# short run of every fuzz target. CI runs exactly this. The tests report
# through scripts/testprogress: go test's own ok and FAIL lines, plus a line
# as each test of a second or more ends, so the minutes of end-to-end tests
# show their progress.
test: build
	$(GO) vet $(PKGS)
	bash -o pipefail -c '$(GO) test -count=1 -timeout 40m -json $(PKGS) | $(GO) run ./scripts/testprogress'
	$(MAKE) fuzz-short

unit:
	$(GO) test -count=1 -short $(PKGS)

fuzz-short:
	@missing=$$(grep -rn --include='*_test.go' '^func Fuzz' . | \
		sed -E 's|^\./(.*)/[^/]*_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]*).*|./\1:\2|' | \
		while read t; do case " $(FUZZ_TARGETS) " in *" $$t:"*) ;; *) echo "$$t";; esac; done); \
	if [ -n "$$missing" ]; then echo "fuzz targets missing from FUZZ_TARGETS:" $$missing; exit 1; fi
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; \
		n=$$(( $${rest##*:} * $(FUZZ_SCALE) )); \
		echo "fuzz $$pkg $$name ($${n} executions)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $${n}x $$pkg || exit 1; \
	done

fuzz:
	$(MAKE) fuzz-short FUZZ_SCALE=$(FUZZ_LONG_SCALE)

# Engine micro-benchmarks: ns/packet, allocs/op, bytes per tracked flow.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1s ./engine/... ./rules/...

# Side-by-side kernel benchmark in the namespace sandbox (root).
bench-e2e: build
	bash scripts/bench

# The demo: installs what it needs, builds, runs nfqfw in the namespace
# sandbox with the example server config and drives real traffic.
demo: deps-demo build
	bash scripts/demo.sh

# The fleet demo: three gateways and a 3-node NATS JetStream cluster in
# namespaces; a ban on one gateway shows up on the other two.
demo-fleet: build
	bash scripts/install-deps.sh test
	bash scripts/demo-fleet.sh

# README's tour: the sandbox "tour", the examples rendered for it under
# tour/, the listeners it probes started (scripts/tour.sh). tour-down
# removes it all.
tour: deps-tour build
	bash scripts/tour.sh up

tour-down:
	bash scripts/tour.sh down

clean:
	rm -rf bin
