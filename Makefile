# hwbp: hardware breakpoints and watchpoints for gVisor sandboxes.
#
#   make runsc   build bin/runsc (gVisor's runsc with the plugin linked in)
#   make demo    gdb inside the sandbox with a hardware watchpoint
#   make test    vet (with checklocks), BUILD.bazel check, unit tests (-race), end-to-end tests
#   make bench   benchmarks, with ratios against baselines of the same run
#                (PLATFORMS="systrap ptrace" by default, RUNS=21)

GO ?= go
# The demo's platform: systrap is gVisor's default; ptrace works too.
PLATFORM ?= systrap
UNIT_PKGS = ./sentry/...

.PHONY: all prepare runsc demo test vet unit hostcheck e2e bench clean

all: runsc

# runsc is built from a copy of this module in .build/src whose vendored
# gVisor gets the files under platform/*/_gvisor/ and plugin/_gvisor/ added
# (they only add exported accessors to gVisor's platform and kernel
# packages) and the fixes in patches/gvisor/ applied (each a small change
# written to be sent upstream, explained in its header). A cgo build of runsc
# does not boot a sandbox. go build is incremental, so this target always
# runs and is cheap when nothing changed.
# The packages that use those accessors (platform/*, plugin, cmd/runsc) build
# only there; vet runs there too, over every package.
BUILD_SRC = .build/src

prepare:
	@rm -rf $(BUILD_SRC) && mkdir -p bin $(BUILD_SRC)
	@tar -c --exclude=./.build --exclude=./bin --exclude=./.git --exclude=./vendor . | tar -x -C $(BUILD_SRC)
	cd $(BUILD_SRC) && $(GO) mod vendor
	@for d in platform/*/_gvisor plugin/_gvisor; do cp -r $$d/. $(BUILD_SRC)/vendor/gvisor.dev/gvisor/; done
	@for p in patches/gvisor/*.patch; do patch -s -p1 -d $(BUILD_SRC)/vendor/gvisor.dev/gvisor < $$p || { echo "$$p does not apply"; exit 1; }; done

runsc: prepare
	cd $(BUILD_SRC) && CGO_ENABLED=0 $(GO) build -mod=vendor -o $(CURDIR)/bin/runsc ./cmd/runsc

demo: runsc bin/hostbp
	PLATFORM=$(PLATFORM) ./test/demo/demo.sh

# vet also runs gVisor's checklocks analyzer (tools/checklocks) over every
# package: the +checklocks annotations are checked, and any finding fails.
vet: prepare
	@out=$$(gofmt -l cmd platform plugin sentry test tools); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	cd $(BUILD_SRC) && $(GO) vet -mod=vendor ./...
	cd $(BUILD_SRC) && $(GO) build -mod=vendor -o $(CURDIR)/.build/checklocks ./tools/checklocks
	cd $(BUILD_SRC) && $(GO) vet -mod=vendor -vettool=$(CURDIR)/.build/checklocks ./...
	@# The layers: a platform back end knows only the core (sentry/hwbp), never
	@# a consumer (sentry/ptrace) or the plugin that wires them together.
	@cd $(BUILD_SRC) && for p in $$($(GO) list -mod=vendor ./platform/...); do \
		bad=$$($(GO) list -mod=vendor -deps $$p | grep '^github.com/gvisor-hwbp/hwbp/' | grep -v -e '^github.com/gvisor-hwbp/hwbp/sentry/hwbp$$' -e "^$$p$$"); \
		[ -z "$$bad" ] || { echo "$$p imports more of hwbp than the core: $$bad"; exit 1; }; \
	done

# The packages that build only in BUILD_SRC (platform back ends, plugin) are
# tested there.
unit: prepare
	$(GO) test -race -count=1 $(UNIT_PKGS) ./test/buildfiles/...
	cd $(BUILD_SRC) && $(GO) test -mod=vendor -race -count=1 ./platform/... ./plugin/...

# hostcheck says whether this machine's host kernel delivers hardware
# watchpoint hits at all; the hit tests skip, saying so, where it does not.
# The demo and the benchmarks run bin/hostbp too, and go their own way on a
# machine where it finds no hits.
hostcheck: bin/hostbp
	@bin/hostbp || true

bin/hostbp: test/hostcheck/hostbp.c
	@mkdir -p bin && gcc -O1 -Wall -Werror -o $@ $<

# The hit tests skip where the host kernel delivers no hardware watchpoint
# hits (hostcheck) and queue themselves in VM_QUEUE; test/vm/queued.sh then
# runs them inside a QEMU guest whose emulated CPU delivers them (and does
# nothing when none was queued).
VM_QUEUE = .build/vm-queue

e2e: runsc hostcheck
	@rm -rf $(VM_QUEUE) && mkdir -p $(VM_QUEUE)
	HWBP_VM_QUEUE=$(CURDIR)/$(VM_QUEUE) $(GO) test -count=1 -timeout 60m ./test/e2e/... ./test/conformance/... ./test/gdb/... ./test/restore/... ./test/docker/...
	./test/vm/queued.sh $(VM_QUEUE)

test: vet unit e2e

# SECTIONS (numbers or names, see test/bench/bench.sh) runs only those; the
# hit sections run in the test VM where the host delivers no hits.
bench: runsc bin/hostbp
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 3 ./sentry/hwbp/
	./test/bench/bench.sh $(SECTIONS)

clean:
	rm -rf bin .build
