# safe-restart: two commands do all set-up on a fresh Debian 12 machine:
#   make demo   installs what it needs and runs the main job on a real Apache
#   make test   installs what the tests need and runs every test
SHELL := /bin/bash
GO ?= go
PACKAGES := apache2 apache2-dev nginx php8.2-fpm logrotate iproute2 curl openssl util-linux procps prometheus ansible-core systemd
BIN := bin/safe-restart

.PHONY: all build deps test lint demo bench-reap bench-restart bench-trial bench-systemd clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/safe-restart

# deps installs the real servers the tests and the demo run (Debian's packages).
deps:
	@missing=""; for p in $(PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# test runs every test: unit tests, real-kernel IPC tests and real Apache in
# private IPC/PID/mount/net namespaces. With CI=true a missing server fails.
test: deps lint
	$(GO) test -race -count=1 -timeout 12m ./...

# FORBIDDEN is what the libraries (supervise/..., ipcguard) never call
# outside their one home: they print nothing and exit nothing (cmd does),
# poll through proc.Retry (no sleep loops), run commands through
# proc.Command, and log through zerolog. A line that must is marked
# //permit:NAME with its reason.
FORBIDDEN := ^(fmt\.Print.*|print|println|os\.Exit|time\.Sleep|exec\.Command|exec\.CommandContext|log\.(Print|Fatal|Panic).*)$$

# lint: gofmt, go vet, staticcheck, errorlint (errors compared and asserted
# through errors.Is/As) and forbidigo (FORBIDDEN), pinned and fetched from
# the Go module proxy.
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(GO) run codeberg.org/polyfloyd/go-errorlint@v1.9.1 ./...
	$(GO) run github.com/ashanbrown/forbidigo/v2@v2.3.1 -set_exit_status -tests=false '$(FORBIDDEN)' -- ./supervise/... ./ipcguard/...

# demo shows the main job on a real Apache, in private namespaces so that
# nothing touches this machine's IPC, processes or network.
demo: deps build
	unshare --ipc --pid --net --mount --fork --mount-proc bash examples/demo/demo.sh $(abspath $(BIN))

# bench-reap times `safe-restart ipc reap` against the usual ipcs|awk|ipcrm
# loop on 1000, 10000 and 32000 leaked sets, in a private IPC namespace.
bench-reap: deps build
	$(GO) build -o bin/bench-reap ./cmd/bench-reap
	unshare --ipc --pid --mount --fork --mount-proc bin/bench-reap -safe-restart $(abspath $(BIN)) $(BENCHFLAGS)

# bench-restart measures what each way of restarting Apache (prefork and
# event), nginx and php-fpm costs a prober and 50 keep-alive clients
# (refused, reset, failed, closed, longest gap), on stock servers, and
# safe-restart's overhead over each server's own method.
bench-restart: deps build
	$(GO) build -o bin/bench-restart ./cmd/bench-restart
	unshare --ipc --pid --net --mount --fork --mount-proc bin/bench-restart -safe-restart $(abspath $(BIN)) $(BENCHFLAGS)

# bench-trial measures the trial start's cost: safe-restart reload and
# restart with it and with --no-trial, apache2 -t, and the naive reload
# (apache2 -t && -k graceful), alternating in one run.
bench-trial: deps build
	$(GO) build -o bin/bench-trial ./cmd/bench-trial
	unshare --ipc --pid --net --mount --fork --mount-proc bin/bench-trial -safe-restart $(abspath $(BIN)) $(BENCHFLAGS)

# bench-systemd measures a full restart on a real systemd (booted in private
# namespaces) running Debian's apache2, nginx and php8.2-fpm units:
# safe-restart restart, with and without the trial start, against the naive
# systemctl restart, in turn, while a prober counts refused connections.
# ROUNDS=N (default 5).
bench-systemd: deps
	SAFE_RESTART_BENCH_SYSTEMD=$(or $(ROUNDS),5) $(GO) test -count=1 -timeout 30m -run '^TestBenchSystemdRestart$$' -v ./cmd/safe-restart/ \
		| sed -n 's/^.*ns| //p' | grep -v -e '^=== RUN' -e '^--- ' -e '^PASS' -e '^ '

clean:
	rm -rf bin
