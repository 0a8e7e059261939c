# mitmlab's entry points. `make demo` and `make test` work on a fresh machine
# with only Go installed; `make interop` needs openssl, curl, certutil,
# chromium, firefox-esr, tshark and tcpdump (.ci/run installs them), and root for the
# live-capture tests; root, ip (iproute2) and nft (nftables) for lab 12.

GO       ?= go
BIN      := bin/mitmlab
OUT      ?= out
FUZZTIME ?= 10s

.PHONY: all build test demo lint fuzz interop bench bench-analyze bench-proxy bench-capture soak ci clean

all: lint test build

## build: compile the CLI to ./bin/mitmlab, stamped with the VCS revision
build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/mitmlab

## test: every unit test, with the race detector
test:
	$(GO) test -race ./...

## demo: the main job: every lab, on loopback, no root and no setup needed
## (the capture is live when privileged, the tap otherwise; lab 12 needs
## root, ip and nft, and is skipped, exit status 0, without them)
demo: build
	@$(BIN) lab run --all --out $(OUT)
	@echo
	@echo "Open $(OUT)/report.html for the whole run; each lab's artifacts are in $(OUT)/<lab>/."

## lint: go vet, and gofmt must have nothing to say
lint:
	$(GO) vet ./...
	$(GO) vet -tags interop ./...
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt: these files need formatting:"; echo "$$unformatted"; exit 1; fi

## fuzz: a short run of every fuzz target (FUZZTIME each, default 10s)
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## interop: tests that drive real outside tools (openssl, curl, certutil, chromium, firefox-esr, tshark, tcpdump),
## plus every command shown in docs/, with missing tools as failures. The labs package starts a
## fresh browser per page (some fifty Chromium and Firefox starts), past go test's default
## ten minutes on a busy two-core machine.
interop:
	$(GO) test -race -count=1 -timeout 30m -tags interop -run 'Interop|TestDocsCommands' ./...

## bench: benchmarks (leaf minting, the proxy under concurrency, pcap writing,
## TLS parsing, the analyzer on a synthetic 200 MB capture), then bench-analyze
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@$(MAKE) --no-print-directory bench-analyze

## bench-analyze: `mitmlab analyze` against tshark on a real 200+ MB tcpdump capture of
## TLS on lo, with and without keys, 3 alternating reps, and the connection counts (issue 10;
## needs root, tcpdump, tshark; about 3 minutes); flags with ANALYZE_FLAGS='-quick' or '-reps 5'
bench-analyze:
	$(GO) build -o bin/bench-analyze ./cmd/bench-analyze
	@if [ "$$(id -u)" != 0 ]; then echo "bench-analyze: skipped: tcpdump on lo needs root; run sudo make bench-analyze"; exit 0; fi; \
	bin/bench-analyze $(ANALYZE_FLAGS)

## bench-proxy: the proxy side by side with no proxy, mitmdump and goproxy (issue 11);
## loopback only, about 10 minutes; pass flags with BENCH_FLAGS='-reps 1 -duration 2s'
bench-proxy:
	$(GO) build -o bin/bench-proxy ./cmd/bench-proxy
	bin/bench-proxy $(BENCH_FLAGS)

## soak: mitmlab with default limits holding 2000 idle keep-alive connections and
## 2000 idle tunnels, a new client's latency, 1 GiB up and down (issue 9); BENCH_FLAGS too
soak:
	$(GO) build -o bin/bench-proxy ./cmd/bench-proxy
	bin/bench-proxy -soak $(BENCH_FLAGS)

## bench-capture: `mitmlab capture` beside tcpdump on the same bursts on lo (a 512 MiB stream,
## a paced one, 100,000 ping-pongs): each one's CPU and kernel drops, 3 alternating reps (needs root)
bench-capture: build
	@if [ "$$(id -u)" != 0 ]; then echo "bench-capture: skipped: live capture needs root; run sudo make bench-capture"; exit 0; fi; \
	$(GO) test -run '^$$' -bench '^BenchmarkLiveBesideTcpdump$$' -benchtime 1x -count 1 ./capture -mitmlab $(abspath $(BIN))

## ci: what .ci/run runs after installing the outside tools
ci: lint test interop demo

clean:
	rm -rf bin $(OUT)
