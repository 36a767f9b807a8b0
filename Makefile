# nfqfw — see README.md. Every target runs from a fresh clone.
# go from PATH, else the toolchain's usual place (sudo and fresh shells may not
# have /usr/local/go/bin on PATH).
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
PKGS      := ./...
# Fuzz targets: package:Target, every native fuzz test of the repository
# (fuzz-short fails when one is missing here). `make fuzz-short` runs each
# briefly (CI: 11 targets x 8 s plus instrumented builds, about 2 minutes),
# `make fuzz` longer.
FUZZ_TARGETS := \
	./engine:FuzzDecode \
	./engine:FuzzFlowTableAccounting \
	./engine/control:FuzzRequest \
	./engine/ctnl:FuzzDecodeMessages \
	./engine/guard:FuzzControlHandlers \
	./engine/nfq:FuzzParseProcStats \
	./engine/store:FuzzLoad \
	./helpers/ftp:FuzzInspect \
	./helpers/ftp:FuzzParse \
	./metrics:FuzzExpandQuery \
	./rules:FuzzParse \
	./rules/iptables:FuzzRemoval
FUZZ_SHORT ?= 8s
FUZZ_LONG  ?= 5m

.PHONY: all build test unit e2e fuzz fuzz-short bench bench-e2e demo deps lint clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nfqfw ./cmd/nfqfw

deps:
	bash scripts/install-deps.sh

# The whole suite: vet, unit and privileged end-to-end tests (root), then a
# short run of every fuzz target. CI runs exactly this.
test: build
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 40m $(PKGS)
	$(MAKE) fuzz-short

unit:
	$(GO) test -count=1 -short $(PKGS)

fuzz-short:
	@missing=$$(grep -rn --include='*_test.go' '^func Fuzz' . | \
		sed -E 's|^\./(.*)/[^/]*_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]*).*|./\1:\2|' | \
		while read t; do case " $(FUZZ_TARGETS) " in *" $$t "*) ;; *) echo "$$t";; esac; done); \
	if [ -n "$$missing" ]; then echo "fuzz targets missing from FUZZ_TARGETS:" $$missing; exit 1; fi
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZ_SHORT))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZ_SHORT) $$pkg || exit 1; \
	done

fuzz:
	$(MAKE) fuzz-short FUZZ_SHORT=$(FUZZ_LONG)

# Engine micro-benchmarks: ns/packet, allocs/op, bytes per tracked flow.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1s ./engine/... ./rules/...

# Side-by-side kernel benchmark in the namespace sandbox (root).
bench-e2e: build
	bash scripts/bench

# The demo: installs what it needs, builds, runs nfqfw in the namespace
# sandbox with the example gateway config and drives real traffic.
demo: deps build
	bash scripts/demo.sh

clean:
	rm -rf bin
