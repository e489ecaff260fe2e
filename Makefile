# Incasso — common tasks. `make test` is the command CI runs (.ci/run).
GO        ?= go
SPEC      ?= $(abspath ../shared/reference/fattureincloud-openapi.yaml)
export TESTCONTAINERS_RYUK_DISABLED = true

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# vet and staticcheck analyse the build the images use (static, trimmed
# paths), so CI compiles that dependency graph once for both; the code has
# no cgo, so nothing is left unchecked.
ANALYSIS_ENV = CGO_ENABLED=0 GOFLAGS=-trimpath

.PHONY: all build test test-short vet lint fuzz bench ficsim demo images compose-test compose-test-cluster clean

all: vet build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

vet:
	$(ANALYSIS_ENV) $(GO) vet ./...

# staticcheck, fetched from the Go module proxy at a pinned version.
lint:
	$(ANALYSIS_ENV) $(GO) run $(STATICCHECK) ./...

# The whole suite: gofmt, vet, staticcheck, then the tests with the race detector. FIC_OPENAPI_SPEC enables the
# OpenAPI conformance test when the spec is present.
test:
	@if [ -f "$(SPEC)" ] && [ -z "$$FIC_OPENAPI_SPEC" ]; then export FIC_OPENAPI_SPEC="$(SPEC)"; fi; \
	unformatted="$$(gofmt -l cmd internal)"; if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi; \
	$(ANALYSIS_ENV) $(GO) vet ./... && $(ANALYSIS_ENV) $(GO) run $(STATICCHECK) ./... && \
	$(GO) test -race -count=1 -timeout 12m ./...

test-short:
	$(GO) test -count=1 ./...

fuzz:
	$(GO) test ./internal/fic/filter -run '^$$' -fuzz FuzzParse -fuzztime 30s
	$(GO) test ./internal/fic -run '^$$' -fuzz FuzzDecodeDocument -fuzztime 30s

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

demo:
	$(GO) run ./cmd/demo

ficsim:
	$(GO) run ./cmd/ficsim -addr 127.0.0.1:8090 -seed 1 -companies 2 -invoices 500 -token demo-token -allow-http-sinks

# FROM scratch images of every binary (nats-server from its Go module).
images:
	./scripts/images.sh

# docker-compose smoke test: events flow and a reminder reaches the mail
# catcher; skipped without Docker.
compose-test:
	./scripts/compose-test.sh

# The same on the "cluster" profile (3 NATS nodes, R3 streams); not in CI.
compose-test-cluster:
	./scripts/compose-test.sh --cluster

clean:
	rm -rf bin/ dist/
