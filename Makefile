# safe-restart: two commands do all set-up on a fresh Debian 12 machine:
#   make demo   installs what it needs and runs the main job on a real Apache
#   make test   installs what the tests need and runs every test
SHELL := /bin/bash
GO ?= go
PACKAGES := apache2 apache2-dev nginx php8.2-fpm logrotate iproute2 curl openssl util-linux procps prometheus ansible-core systemd \
	man-db bash-completion zsh fish lintian
BIN := bin/safe-restart

# What a build says it is (safe-restart --version), read from git by
# packaging/version.sh: a commit tagged vX.Y.Z is that version, any other
# commit the pseudo-version go install gives it, +dirty for a modified tree.
# Its date is the commit's, so one commit builds the same bytes everywhere
# (with the same Go). Outside a git checkout they are unknown, and release
# refuses. Override any on the command line (make deb VERSION=v1.2.3).
GIT_VERSION := $(shell sh packaging/version.sh 2>/dev/null || echo v0.0.0-unknown)
VERSION := $(GIT_VERSION)
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(findstring +dirty,$(GIT_VERSION))
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
SOURCE_DATE_EPOCH := $(SOURCE_DATE_EPOCH)
BUILD_DATE := $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
# Debian's form, in the same order: v1.2.3 is 1.2.3, the snapshot after it
# (v1.2.4-0.DATE-COMMIT) 1.2.4~0.gitDATE.COMMIT, before any tag
# 0.0.0~gitDATE.COMMIT; a tilde sorts before the release it precedes.
DEB_VERSION := $(shell echo '$(VERSION)' | sed -E 's/^v//; s/-0\.([0-9]{14})-([0-9a-f]{12})/~0.git\1.\2/; \
	s/^([0-9.]+)-([0-9]{14})-([0-9a-f]{12})/\1~git\2.\3/; s/-/~/g')
STAMP := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)
ARCHES := amd64 arm64
DIST ?= dist
# HOST_BIN, this machine's build of those (its architecture must be one of
# ARCHES), writes the man pages and completions.
HOST_BIN = $(DIST)/$(shell $(GO) env GOARCH)/safe-restart
NFPM := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
export SOURCE_DATE_EPOCH

.PHONY: all build deps test lint demo bench-reap bench-restart bench-trial bench-systemd dist-files deb release release-check clean

all: build

build:
	$(GO) build -ldflags "$(STAMP)" -o $(BIN) ./cmd/safe-restart

# dist-files builds what the packages hold, in $(DIST)/: for each of ARCHES a
# static, stripped, stamped binary ($(DIST)/ARCH/safe-restart); from this
# machine's (HOST_BIN), the man pages and the bash, zsh and fish completions; the
# examples git tracks, README.Debian and the changelog; gzipped without
# timestamps, every file dated SOURCE_DATE_EPOCH (nfpm keeps a tree's own
# dates) and readable by all, writable by its owner only, whatever the umask.
dist-files:
	rm -rf $(DIST) && mkdir -p $(DIST)/doc/man $(DIST)/doc/completions
	for a in $(ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags "-s -w $(STAMP)" -o $(DIST)/$$a/safe-restart ./cmd/safe-restart || exit 1; \
	done
	$(HOST_BIN) man $(DIST)/doc/man && gzip -9n $(DIST)/doc/man/*.1
	$(HOST_BIN) completion bash > $(DIST)/doc/completions/safe-restart
	$(HOST_BIN) completion zsh > $(DIST)/doc/completions/_safe-restart
	$(HOST_BIN) completion fish > $(DIST)/doc/completions/safe-restart.fish
	if git rev-parse --git-dir >/dev/null 2>&1; then \
		git ls-files -z examples ':!:examples/demo/' | xargs -0r cp --parents -t $(DIST)/doc; \
	else cp -r examples $(DIST)/doc/ && rm -r $(DIST)/doc/examples/demo; fi
	gzip -9n < packaging/README.Debian > $(DIST)/doc/README.Debian.gz
	sed -e 's/@DEB_VERSION@/$(DEB_VERSION)/' -e 's/@VERSION@/$(VERSION)/' -e 's/@COMMIT@/$(COMMIT)/' \
		-e "s/@DATE@/$$(date -u -R -d @$(SOURCE_DATE_EPOCH))/" packaging/changelog.in | gzip -9n > $(DIST)/doc/changelog.gz
	chmod -R go-w,a+rX $(DIST)
	find $(DIST) -exec touch -h -d @$(SOURCE_DATE_EPOCH) {} +

# deb builds $(DIST)/safe-restart_DEB_VERSION_ARCH.deb for each of ARCHES
# with nfpm (packaging/nfpm.yaml), pinned and fetched from the Go module proxy.
deb: dist-files
	for a in $(ARCHES); do \
		DIST=$(abspath $(DIST)) ARCH=$$a DEB_ARCH=$$a DEB_VERSION=$(DEB_VERSION) $(NFPM) package --config packaging/nfpm.yaml --packager deb \
			--target $(DIST)/safe-restart_$(DEB_VERSION)_$$a.deb || exit 1; \
	done

# release-check refuses a release whose version is unknown (no git).
release-check:
	@case "$(VERSION) $(COMMIT)" in *unknown*) echo "release: not a git checkout: the version is unknown" >&2; exit 1;; esac

# release adds the plain binaries (safe-restart_VERSION_linux_ARCH) and
# $(DIST)/SHA256SUMS of everything released; two runs on one commit give the
# same bytes (TestRelease in packaging/ checks it).
release: release-check deb
	for a in $(ARCHES); do cp $(DIST)/$$a/safe-restart $(DIST)/safe-restart_$(VERSION)_linux_$$a; done
	cd $(DIST) && sha256sum safe-restart_*.deb safe-restart_$(VERSION)_linux_* > SHA256SUMS

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
	$(GO) build -o bin/bench-restart ./cmd/bench-restart
	unshare --ipc --pid --net --mount --fork --mount-proc bash examples/demo/demo.sh $(abspath $(BIN)) $(abspath bin/bench-restart)

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
	rm -rf bin $(DIST)
