# mkrt — build, run and test entry points. `make run` and `make test` are the
# two commands a fresh Debian machine needs (after .ci/run's packages).

GO        ?= go
BIN       := bin
MKRT      := $(BIN)/mkrt
DEMO      ?= configs/examples/tank-level.yaml
# -p 1: several packages take CPU 1 exclusively (cpusets) or boot QEMU; one at a time.
TESTFLAGS ?= -count=1 -timeout 25m -p 1
# Each fuzzer's time under `make fuzz`; `make test` gives each a short run.
FUZZTIME  ?= 5m
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build run run-vm test fuzz bench lint fmt clean kernel

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
	$(MAKE) --no-print-directory fuzz FUZZTIME=10s

# The hostile-input suite: every Fuzz target in the tree (MQTT packets into
# the embedded broker, Modbus frames into the server, Sparkplug and JSON
# commands, the region's header and ring, configs), each for FUZZTIME from
# its committed corpus (testdata/fuzz). Plain `go test` runs the corpus only.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$f ($$pkg, $(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# The same demo in a PREEMPT_RT guest (vm backend, root). The field network
# is kept off the host's own interfaces: the simulator lives in a network
# namespace, and the host bridge between it and the guest has no address.
#
#   guest ── virtio ── mkrt-tank0 (tap, made by mkrt run: nics[].bridge) ──┐
#   [a hand-over's second guest ── mkrt-tank0-2, 10.213.0.3] ──────────────┤
#                                            br-field (host bridge, no address)
#   netns mkrt-field: field0 10.213.0.1/24 ═══ veth ═══ mkrt-field0 ───────┘
#                     mkrt sim tank on 10.213.0.1:15020
#
# A tap must be in QEMU's namespace to be opened by name and a bridge's ports
# in the bridge's, so the bridge is the host's and a veth pair leads into the
# namespace. Everything made here is removed on exit (Ctrl-C); what existed
# before (a namespace or bridge of the same name) is refused, not touched.
# With br_netfilter loaded and bridge-nf-call-iptables=1, the host's
# iptables FORWARD chain also filters bridged frames: allow br-field there.
FIELD_NS ?= mkrt-field
FIELD_BR ?= br-field
run-vm: build
	@ns=$(FIELD_NS); br=$(FIELD_BR); made=; sim=; run=; \
	cleanup() { \
	  [ -z "$$run" ] || { kill $$run 2>/dev/null; wait $$run; }; \
	  [ -z "$$sim" ] || kill $$sim 2>/dev/null; \
	  case " $$made " in *" br "*) ip link del $$br;; esac; \
	  case " $$made " in *" ns "*) ip netns del $$ns;; esac; \
	}; \
	trap cleanup EXIT; trap 'exit 130' INT TERM; \
	ip netns add $$ns && made=ns && \
	ip link add $$br type bridge && made="$$made br" && \
	ip link set $$br addrgenmode none && ip link set $$br up && \
	ip link add $$ns"0" type veth peer name field0 netns $$ns && \
	ip link set $$ns"0" addrgenmode none && ip link set $$ns"0" master $$br up && \
	ip -n $$ns addr add 10.213.0.1/24 dev field0 && \
	ip -n $$ns link set field0 up && ip -n $$ns link set lo up || exit 1; \
	ip netns exec $$ns $(MKRT) sim tank --listen 10.213.0.1:15020 --speed 60 & sim=$$!; \
	$(MKRT) run configs/examples/tank-level-vm.yaml & run=$$!; \
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
