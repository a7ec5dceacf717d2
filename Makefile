# hwbp: hardware breakpoints and watchpoints for gVisor sandboxes.
#
#   make runsc   build bin/runsc (gVisor's runsc with the plugin linked in)
#   make demo    gdb inside the sandbox with a hardware watchpoint
#   make test    vet, BUILD.bazel check, unit tests (-race), end-to-end tests
#   make bench   benchmarks, with ratios against baselines of the same run

GO ?= go
PLATFORM ?= systrap
UNIT_PKGS = ./sentry/...

.PHONY: all runsc demo test vet unit e2e bench clean

all: runsc

# A cgo build of runsc does not boot a sandbox; go build is incremental, so
# this target always runs and is cheap when nothing changed.
runsc:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -o bin/runsc ./cmd/runsc

demo: runsc
	PLATFORM=$(PLATFORM) ./test/demo/demo.sh

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 $(UNIT_PKGS) ./test/buildfiles/...

e2e: runsc
	$(GO) test -count=1 -timeout 60m ./test/e2e/... ./test/conformance/...

test: vet unit e2e

bench: runsc
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 3 ./sentry/hwbp/

clean:
	rm -rf bin
