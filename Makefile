# hwbp: hardware breakpoints and watchpoints for gVisor sandboxes.
#
#   make runsc   build bin/runsc (gVisor's runsc with the plugin linked in)
#   make demo    gdb inside the sandbox with a hardware watchpoint
#   make test    vet (with checklocks), BUILD.bazel check, unit tests (-race), end-to-end tests
#   make containerd  build containerd and ctr 1.7 for gVisor's shim, once per
#                machine (test/docker/containerd.sh), and print their folder
#   make bench   benchmarks, with ratios against baselines of the same run
#                (PLATFORMS="systrap ptrace" by default, RUNS=21)
#   make bazel-test  the same module built and tested by Bazel, offline
#   make gazelle     regenerate BUILD.bazel files, deps.bzl and gVisor's patch

GO ?= go
# The demo's platform: systrap is gVisor's default; ptrace works too.
PLATFORM ?= systrap
UNIT_PKGS = ./sentry/... ./test/sandbox/...

.PHONY: all prepare runsc demo test vet unit hostcheck e2e bench clean containerd bazel-prepare bazel-test bazel-boot gazelle

all: runsc

# runsc is built from a copy of this module in .build/src whose vendored
# gVisor gets the patch series in patches/gvisor/ applied (each a small
# change written to be sent upstream, explained in its header; see
# patches/gvisor/README.md). A cgo build of runsc does not boot a sandbox.
# go build is incremental, so this target always runs and is cheap when
# nothing changed.
# The packages that use what the patches add (platform/*, plugin, cmd/runsc)
# build only there; vet runs there too, over every package.
BUILD_SRC = .build/src

prepare:
	@rm -rf $(BUILD_SRC) && mkdir -p bin $(BUILD_SRC)
	@tar -c --exclude=./.build --exclude=./bin --exclude=./.git --exclude=./vendor --exclude='./bazel-*' . | tar -x -C $(BUILD_SRC)
	cd $(BUILD_SRC) && $(GO) mod vendor
	@for p in patches/gvisor/*.patch; do patch -s -p1 -d $(BUILD_SRC)/vendor/gvisor.dev/gvisor < $$p || { echo "$$p does not apply"; exit 1; }; done

runsc: prepare
	cd $(BUILD_SRC) && CGO_ENABLED=0 $(GO) build -mod=vendor -o $(CURDIR)/bin/runsc ./cmd/runsc

demo: runsc bin/hostbp
	PLATFORM=$(PLATFORM) ./test/demo/demo.sh

# vet also runs gVisor's checklocks analyzer (tools/checklocks) over every
# package: the +checklocks annotations are checked, and any finding fails.
vet: prepare
	@out=$$(gofmt -l cmd platform plugin sentry test tools); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	@# BUILD.bazel files, deps.bzl (from go.mod) and gVisor's patch for Bazel
	@# are what gazelle and bazel/gvisor-patch.sh generate (make gazelle).
	GO=$(GO) ./bazel/gazelle.sh check
	@# README.md at most 200 lines, every link of the docs resolves.
	./tools/doccheck.sh
	@missing=$$(git ls-files '*.go' '*.c' '*.h' '*.sh' | xargs grep -L 'SPDX-License-Identifier: Apache-2.0'); \
		[ -z "$$missing" ] || { echo "no license header (see LICENSE):"; echo "$$missing"; exit 1; }
	cd $(BUILD_SRC) && $(GO) vet -mod=vendor ./...
	cd $(BUILD_SRC) && $(GO) build -mod=vendor -o $(CURDIR)/.build/checklocks ./tools/checklocks
	cd $(BUILD_SRC) && $(GO) vet -mod=vendor -vettool=$(CURDIR)/.build/checklocks ./...
	@# The layers: a platform back end knows only the core (sentry/hwbp, and
	@# sentry/hwbp/backend, its contract with the back ends) and the host's
	@# perf events (platform/hostperf), never a consumer (sentry/ptrace) or
	@# the plugin that wires them together; the core knows nothing above it.
	@cd $(BUILD_SRC) && for p in $$($(GO) list -mod=vendor ./platform/...); do \
		bad=$$($(GO) list -mod=vendor -deps $$p | grep '^github.com/gvisor-hwbp/hwbp/' | grep -v -e '^github.com/gvisor-hwbp/hwbp/sentry/hwbp$$' -e '^github.com/gvisor-hwbp/hwbp/sentry/hwbp/backend$$' -e '^github.com/gvisor-hwbp/hwbp/platform/hostperf$$' -e "^$$p$$"); \
		[ -z "$$bad" ] || { echo "$$p imports more of hwbp than the core: $$bad"; exit 1; }; \
	done
	@cd $(BUILD_SRC) && for p in $$($(GO) list -mod=vendor ./sentry/hwbp/...); do \
		bad=$$($(GO) list -mod=vendor -deps $$p | grep '^github.com/gvisor-hwbp/hwbp/' | grep -v '^github.com/gvisor-hwbp/hwbp/sentry/hwbp\(/.*\)\?$$'); \
		[ -z "$$bad" ] || { echo "the core's $$p imports hwbp packages above it: $$bad"; exit 1; }; \
	done

# The packages that build only in BUILD_SRC (platform back ends, plugin) are
# tested there.
unit: prepare
	$(GO) test -race -count=1 $(UNIT_PKGS)
	cd $(BUILD_SRC) && $(GO) test -mod=vendor -race -count=1 ./platform/... ./plugin/...

# hostcheck says whether this machine's host kernel delivers hardware
# watchpoint hits at all; the hit tests skip, saying so, where it does not.
# The demo and the benchmarks run bin/hostbp too, and go their own way on a
# machine where it finds no hits.
hostcheck: bin/hostbp
	@bin/hostbp || true

bin/hostbp: test/hostcheck/hostbp.c test/include/hwbp_test.h
	@mkdir -p bin && gcc -O1 -Wall -Werror -I test/include -o $@ $<

# The hit tests skip where the host kernel delivers no hardware watchpoint
# hits (hostcheck) and queue themselves in VM_QUEUE; test/vm/queued.sh then
# runs them inside a QEMU guest whose emulated CPU delivers them (and does
# nothing when none was queued).
VM_QUEUE = .build/vm-queue

e2e: runsc hostcheck
	@rm -rf $(VM_QUEUE) && mkdir -p $(VM_QUEUE)
	HWBP_VM_QUEUE=$(CURDIR)/$(VM_QUEUE) $(GO) test -count=1 -timeout 60m ./test/e2e/... ./test/conformance/... ./test/gdb/... ./test/restore/... ./test/perf/... ./test/docker/... ./test/watch/...
	./test/vm/queued.sh $(VM_QUEUE)

test: vet unit e2e

# containerd 1.7 or later, which gVisor's shim needs (Debian 12 has 1.6), is
# built from containerd's module once per machine into a cache outside the
# work tree (HWBP_CONTAINERD_CACHE, default /var/cache/hwbp-containerd).
# TestContainerd runs the same script, so e2e builds it the first time
# without this target, and no other test waits for it.
containerd:
	@GO=$(GO) ./test/docker/containerd.sh

# SECTIONS (numbers or names, see test/bench/bench.sh) runs only those; the
# hit sections run in the test VM where the host delivers no hits.
bench: runsc bin/hostbp
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 3 ./sentry/hwbp/
	./test/bench/bench.sh $(SECTIONS)

# Bazel: Debian's bazel-bootstrap 4.2 with rules_go v0.34.0 and gazelle
# v0.27.0, offline. bazel/prepare.sh installs the Debian packages when they
# are missing and prepares the rest in .build/bazel (WORKSPACE); then "bazel
# test //..." builds every target, //cmd/runsc among them, and runs every
# test that needs no root. Nice, and at most two cores: the machine is shared.
# The disk cache and the repository cache live outside the clone, so that a
# new clone (CI's) builds from them; BAZEL_CACHE moves them.
BAZEL ?= bazel
# Startup options, for example --output_base=DIR (.ci/run sets one).
BAZEL_STARTUP ?=
BAZEL_CACHE ?= /var/cache/hwbp-bazel
BAZEL_FLAGS = --local_cpu_resources=2 --disk_cache=$(BAZEL_CACHE)/disk --repository_cache=$(BAZEL_CACHE)/repos

bazel-prepare:
	GO=$(GO) ./bazel/prepare.sh

bazel-test: bazel-prepare
	@# Bazel 4's disk cache never shrinks: past 10 GB it starts anew.
	@[ ! -d $(BAZEL_CACHE)/disk ] || [ $$(du -sm $(BAZEL_CACHE)/disk | cut -f1) -lt 10000 ] || rm -rf $(BAZEL_CACHE)/disk
	nice -n 19 $(BAZEL) $(BAZEL_STARTUP) test $(BAZEL_FLAGS) --nocache_test_results //...

# The runsc that Bazel built boots a sandbox on every platform (as root).
bazel-boot: bazel-prepare
	nice -n 19 $(BAZEL) $(BAZEL_STARTUP) test $(BAZEL_FLAGS) --nocache_test_results --test_filter=TestSandboxBootsWithPlugin --test_arg=-test.v --test_output=all //test/e2e:e2e_test

gazelle:
	GO=$(GO) ./bazel/gazelle.sh fix

clean:
	rm -rf bin .build
