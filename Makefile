# mkrt — build, run and test entry points. `make run` and `make test` are the
# two commands a fresh Debian machine needs (after .ci/run's packages).

GO        ?= go
BIN       := bin
MKRT      := $(BIN)/mkrt
DEMO      ?= configs/examples/tank-level.yaml
# -p 1: several packages take CPU 1 exclusively (cpusets) or boot QEMU; one at a time.
TESTFLAGS ?= -count=1 -timeout 25m -p 1
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build run run-vm test bench lint fmt clean kernel

all: build

build:
	$(GO) build -o $(MKRT) ./cmd/mkrt
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/mkrt-init ./cmd/mkrt-init

# The demo plant: tank simulator, process backend, embedded broker, Modbus server.
# The tank simulator stands in for the field device (remote I/O on the
# dedicated NIC); it runs 60x faster than real time so the level visibly
# settles within a couple of minutes.
run: build
	@$(MKRT) sim tank --listen 127.0.0.1:15020 --speed 60 & sim=$$!; \
	trap 'kill $$sim 2>/dev/null' EXIT; \
	$(MKRT) run $(DEMO)

test:
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# The same demo in a PREEMPT_RT guest (vm backend, root): the simulator
# listens on the host end of the partition's tap once mkrt run created it.
run-vm: build
	@$(MKRT) run configs/examples/tank-level-vm.yaml & run=$$!; \
	trap 'kill $$run 2>/dev/null; wait $$run' EXIT INT TERM; \
	for i in $$(seq 1 100); do ip link show mkrt-tank0 >/dev/null 2>&1 && break; sleep 0.2; done; \
	$(MKRT) sim tank --listen 10.213.0.1:15020 --speed 60 & sim=$$!; \
	trap 'kill $$sim $$run 2>/dev/null; wait $$run' EXIT INT TERM; \
	wait $$run

# A minimal PREEMPT_RT application kernel from a kernel source tree, e.g.
#   apt-get install linux-source-6.1 && tar -C /usr/src -xf /usr/src/linux-source-6.1.tar.xz
#   make kernel KERNEL_SRC=/usr/src/linux-source-6.1
# Debian's linux-image-rt-amd64 works as shipped; this is the lean variant.
KERNEL_SRC ?=
KERNEL_OUT ?= $(CURDIR)/out/kernel
kernel:
	@test -n "$(KERNEL_SRC)" || { echo "make kernel: set KERNEL_SRC to a kernel source tree"; exit 1; }
	mkdir -p $(KERNEL_OUT)
	$(MAKE) -C $(KERNEL_SRC) O=$(KERNEL_OUT) x86_64_defconfig
	cd $(KERNEL_SRC) && scripts/kconfig/merge_config.sh -m -O $(KERNEL_OUT) $(KERNEL_OUT)/.config $(CURDIR)/supervisor/image/mkrt-rt.config
	$(MAKE) -C $(KERNEL_SRC) O=$(KERNEL_OUT) olddefconfig
	$(MAKE) -C $(KERNEL_SRC) O=$(KERNEL_OUT) -j$$(nproc) bzImage
	@echo "kernel: $(KERNEL_OUT)/arch/x86/boot/bzImage"

clean:
	rm -rf $(BIN)
