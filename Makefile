# daytwo — `make demo` and `make test` are all a fresh machine needs.

GO          ?= go
BIN         ?= bin/daytwo
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE        ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFUMPT     := mvdan.cc/gofumpt@v0.12.0
GOIMPORTS   := golang.org/x/tools/cmd/goimports@v0.52.0

.PHONY: bench-1m bench-filter-1m build test demo bench bench-ansible reliability lint fmt-check fmt clean

## build: compile bin/daytwo (static and path-free, as the Dockerfile builds it)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/daytwo

## test: vet and run every test with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race -timeout 30m ./...

## demo: embedded ServiceNow simulator, demo fleet and the console
demo: build
	./$(BIN) demo

## bench: the issue-8 benchmarks (BENCHMARKS.md); results in $(BENCH_OUT)
BENCH_OUT   ?= bin/bench.txt
bench:
	@mkdir -p $(dir $(BENCH_OUT)) && : > $(BENCH_OUT)
	$(GO) test -run '^$$' -bench 'BenchmarkUpsertChanges|BenchmarkJournalStep' -benchtime 1x ./store/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkSearchChanges' -benchtime 5x ./store/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkUpsertChanges' -benchtime 1x ./store/pg/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkJournalStep' -benchtime 1000x ./store/pg/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkMirror100k' -benchtime 1x ./cmd/daytwo/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkIdleCycle$$' -benchtime 20x ./cmd/daytwo/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkIdleSyncOnce$$' -benchtime 10x ./cmd/daytwo/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkIdleCycleServices$$' -benchtime 40x ./cmd/daytwo/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkApprovalPolling' -benchtime 5x ./cmd/daytwo/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkRollout1000$$|BenchmarkRollout10000$$' -benchtime 1x -timeout 20m ./cmd/daytwo/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkRollout1000PG$$' -benchtime 1x ./cmd/daytwo/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkMirror100kPG$$' -benchtime 1x ./cmd/daytwo/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkFirstFrame|BenchmarkChangesScroll' ./tui/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkChangesFilter' -benchtime 20x ./tui/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkMatrixFirstFrame' -benchtime 30x ./tui/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	$(GO) test -run '^$$' -bench 'BenchmarkMatrixKeystroke' -benchtime 3000x ./tui/ >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	@cat $(BENCH_OUT)

## bench-1m: the 1M-change mirror against its floor (not in `make bench`: the simulator holds ~1.1 GiB for 1M changes and the run takes minutes)
bench-1m:
	$(GO) test -run '^$$' -bench 'BenchmarkMirror1M' -benchtime 1x -timeout 60m ./cmd/daytwo/

## bench-filter-1m: the console filter over 1M changes (~4 min with the fill; DAYTWO_BENCH_1M_DB=<path> keeps the 2.4 GB file between runs)
bench-filter-1m:
	$(GO) test -run '^$$' -bench 'BenchmarkConsoleFilter1M' -benchtime 20x -count 3 -timeout 30m ./tui/

## bench-ansible: needs `ansible`; slow (tens of minutes on 2 cores). The Ansible executor
## (ANSIBLE_HOSTS local hosts, one playbook per batch of ANSIBLE_BATCH, forks 50) against
## plain ansible-playbook once over all of them (x-ansible, target <= 1.2), then the
## 1000-host command-executor rollout against an ad-hoc ansible run.
ANSIBLE_HOSTS ?= 1000
ANSIBLE_BATCH ?= 25%
bench-ansible:
	DAYTWO_BENCH_HOSTS=$(ANSIBLE_HOSTS) DAYTWO_BENCH_BATCH=$(ANSIBLE_BATCH) $(GO) test -run '^$$' -bench 'BenchmarkAnsibleExecutor' -benchtime 1x -timeout 90m ./cmd/daytwo/
	$(GO) test -run '^$$' -bench 'BenchmarkRolloutVsAnsible' -benchtime 1x -timeout 20m ./cmd/daytwo/

## reliability: the long reliability suites and bounded fuzzing (BENCHMARKS.md)
FUZZTIME    ?= 30s
reliability:
	DAYTWO_RELIABILITY=long $(GO) test -count 1 -timeout 40m -v -run 'TestCrashDuringRollouts|TestFaultsProposeApproveRunEvidence|TestSecretsNeverStored|TestShellMetacharacters|TestSlowCreatesLeaveNoDuplicates|TestCrashTrials|TestStaleRunnerAfterTakeover|TestTwoRunsOfOneUpdate|TestPostgresFailoverTrials' ./cmd/daytwo/
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./cmd/daytwo/internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./ops/policy/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeChange$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./itsm/
	$(GO) test -run '^$$' -fuzz '^FuzzParseQuery$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./itsm/snowsim/

## lint: staticcheck, gofumpt (a stricter gofmt) and goimports (daytwo's imports grouped last)
lint: fmt-check
	$(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi
	@out=$$($(GO) run $(GOFUMPT) -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofumpt-ed (make fmt):"; echo "$$out"; exit 1; fi
	@out=$$($(GO) run $(GOIMPORTS) -l -local github.com/daytwo/daytwo $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "imports not grouped (make fmt):"; echo "$$out"; exit 1; fi

## fmt: format every Go file as lint wants it
fmt:
	$(GO) run $(GOFUMPT) -w $$(git ls-files '*.go')
	$(GO) run $(GOIMPORTS) -w -local github.com/daytwo/daytwo $$(git ls-files '*.go')

## clean: remove build output
clean:
	rm -rf bin
