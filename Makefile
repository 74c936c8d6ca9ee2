# minivercel: the two set-up commands are `make run` and `make test`.
GO       ?= go
BIN      := bin/minivercel
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
DATA_DIR ?= ./data

.PHONY: build run test bench bench-sidebyside vet clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/minivercel

# Starts every role on the embedded defaults: a private PostgreSQL and all state in
# $(DATA_DIR). Your own public keys (~/.ssh/*.pub) become the admin's keys on the
# first start unless MINIVERCEL_INITIAL_ADMIN_KEYS is set.
run: build
	MINIVERCEL_INITIAL_ADMIN_KEYS="$${MINIVERCEL_INITIAL_ADMIN_KEYS:-$$(cat $$HOME/.ssh/*.pub 2>/dev/null)}" \
		./$(BIN) serve --data-dir $(DATA_DIR)

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

# Every package runs under the race detector. The end-to-end tests drive a
# separate server binary: under -race they build it with -race as well and fail
# on any race it reports (e2e/race_test.go). Database-backed tests run in
# parallel, each on a database of its own (schema/schematest).
test: vet
	$(GO) test -race -count=1 -timeout 25m ./...

# bench includes BenchmarkSideBySide (e2e/sidebyside_bench_test.go): the edge,
# nginx and Caddy under wrk, side by side. It installs nginx, caddy and wrk from
# Debian's packages when missing (as root, never under CI) and runs nginx and
# Caddy as plain processes on loopback, stopped at the end.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s -timeout 30m ./edge ./pipeline ./panel ./siteconf ./e2e

# bench-sidebyside is that comparison alone (about 4 minutes).
bench-sidebyside:
	$(GO) test -run '^$$' -bench SideBySide -benchtime 1x -timeout 20m ./e2e

clean:
	rm -rf bin
