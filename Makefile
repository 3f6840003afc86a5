# daytwo — `make demo` and `make test` are all a fresh machine needs.

GO          ?= go
BIN         ?= bin/daytwo
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build test demo bench lint fmt-check clean

## build: compile bin/daytwo
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/daytwo

## test: vet and run every test with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race ./...

## demo: embedded ServiceNow simulator, demo fleet and the console
demo: build
	./$(BIN) demo

## bench: Go benchmarks (see BENCHMARKS.md for targets and results)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## lint: staticcheck and gofmt
lint: fmt-check
	$(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

## clean: remove build output
clean:
	rm -rf bin
