// Package vm is the vm partition backend: QEMU boots the PREEMPT_RT
// application kernel with the mkrt initramfs; the shared region is an
// ivshmem-plain device backed by the same /dev/shm file the bridge maps; the
// dedicated NIC is vfio-pci passthrough on real hosts or virtio-net on a tap
// (with a host address, or a port of a host bridge that carries the field
// network: then each generation's guest has a tap and a MAC of its own);
// vCPU threads are pinned to the partition's host cores through QMP; KVM is
// used when it works, TCG otherwise (detected, and reported). The serial
// console goes into the partition's console ring (supervisor.Console) and,
// with Options.ConsoleLog, to the partition log.
//
// Every guest has QEMU's i6300esb watchdog (-device i6300esb), which
// mkrt-init arms (mkrt.watchdog=) and feeds only while the executive's
// cycle counter advances. When it fires, QEMU pauses the guest
// (-action watchdog=pause) and reports a WATCHDOG event on the guest's
// event socket (a second QMP monitor, so commands on the first never
// contend with it); the partition's run then ends with Exit.Signal
// SignalWatchdog, and the supervisor treats it as a fault. Pause, not
// reset: a paused guest drives nothing from that instant, whether or not
// a supervisor is there to fence it, and keeps its state for a post-mortem
// until the supervisor quits it; a reset would reboot into the same
// fault, and with -no-reboot it would end QEMU exactly as a clean
// power-off does. A kernel panic (panic=-1) resets the guest, which
// -no-reboot turns into QEMU's end; the SHUTDOWN event's reason
// (guest-reset) tells it from mkrt-init's power-off (SignalGuestReset).
//
// The bring-up is a list of named supervisor.Steps run by a
// supervisor.Lifecycle (tap, qemu, pin-vcpus), undone in reverse on failure
// and on Stop; no lock is held while QEMU starts, while QMP is dialled or
// while a stop waits for QEMU to end.
//
// It needs qemu-system-x86_64 (Debian qemu-system-x86), a kernel and an
// initramfs from supervisor/image; root for taps and vfio; /dev/kvm for
// KVM (else TCG).
package vm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mkrt/mkrt/configs"
)

// NIC is the guest's dedicated NIC.
type NIC struct {
	// Kind is "none", "tap" (virtio-net on a host tap) or "vfio" (PCI passthrough).
	Kind string
	// Tap is the host tap interface (Kind tap).
	Tap string
	// MAC is the guest MAC address; default derived by QEMU.
	MAC string
	// PCI is the host PCI address bound to vfio-pci (Kind vfio).
	PCI string
}

// The guest's ivshmem devices sit at fixed slots of the root bus, so a
// guest with two regions tells them apart by address.
const (
	shmSlot      = "0x10"
	takeFromSlot = "0x11"
	// ShmPCI and TakeFromPCI are their PCI addresses inside the guest.
	ShmPCI      = "0000:00:10.0"
	TakeFromPCI = "0000:00:11.0"
)

// Config is one QEMU invocation.
type Config struct {
	// QEMU is the emulator binary; default qemu-system-x86_64.
	QEMU    string
	Kernel  string
	Initrd  string
	Cmdline string
	// MemoryMiB is guest memory; default 256.
	MemoryMiB int
	// VCPUs is the number of guest CPUs; default 2 (one housekeeping, one RT).
	VCPUs int
	// ShmPath is the host file behind the guest's ivshmem-plain BAR2.
	ShmPath string
	ShmSize int64
	// TakeFromPath is the host file of the running partition's region, for
	// a guest that takes over from it (a hand-over): a second ivshmem-plain
	// device. The guest finds its own region at ShmPCI and this one at
	// TakeFromPCI (mkrt.shm= and mkrt.take= on its command line).
	TakeFromPath string
	TakeFromSize int64
	NIC          NIC
	// Accel is "kvm" or "tcg".
	Accel string
	// QMP is the path of the QMP unix socket for commands.
	QMP string
	// Events is the path of a second QMP socket, which the backend only
	// listens to for events (WATCHDOG, SHUTDOWN); "" for none.
	Events string
	Extra  []string
}

// Args returns QEMU's command line (without the binary).
func (c Config) Args() ([]string, error) {
	if c.Kernel == "" || c.Initrd == "" {
		return nil, fmt.Errorf("vm: kernel and initrd are required")
	}
	mem := c.MemoryMiB
	if mem == 0 {
		mem = 256
	}
	cpus := c.VCPUs
	if cpus == 0 {
		cpus = 2
	}
	a := []string{
		"-name", "mkrt,debug-threads=on", // vCPU threads get names QMP and ps can show
		"-machine", "q35",
		"-m", strconv.Itoa(mem),
		"-smp", strconv.Itoa(cpus),
		"-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
		"-serial", "stdio",
		"-monitor", "none",
		"-kernel", c.Kernel,
		"-initrd", c.Initrd,
		"-append", c.Cmdline,
	}
	switch c.Accel {
	case "kvm":
		a = append(a, "-accel", "kvm", "-cpu", "host")
	case "tcg", "":
		a = append(a, "-accel", "tcg,thread=multi", "-cpu", "max")
	default:
		return nil, fmt.Errorf("vm: unknown accelerator %q (kvm or tcg)", c.Accel)
	}
	for _, r := range []struct {
		id, path, slot string
		size           int64
	}{{"mkrtshm", c.ShmPath, shmSlot, c.ShmSize}, {"mkrttake", c.TakeFromPath, takeFromSlot, c.TakeFromSize}} {
		if r.path == "" {
			continue
		}
		if r.size <= 0 || r.size&(r.size-1) != 0 {
			return nil, fmt.Errorf("vm: shared region %s: size %d must be a power of two for an ivshmem BAR", r.path, r.size)
		}
		a = append(a,
			"-object", fmt.Sprintf("memory-backend-file,id=%s,share=on,mem-path=%s,size=%d", r.id, qemuEscape(r.path), r.size),
			"-device", fmt.Sprintf("ivshmem-plain,memdev=%s,addr=%s", r.id, r.slot))
	}
	switch c.NIC.Kind {
	case "", "none":
	case "tap":
		if c.NIC.Tap == "" || len(c.NIC.Tap) > configs.MaxIfName {
			return nil, fmt.Errorf("vm: tap NIC needs a tap interface name of 1 to %d bytes, not %q", configs.MaxIfName, c.NIC.Tap)
		}
		dev := "virtio-net-pci,netdev=nic0"
		if c.NIC.MAC != "" {
			dev += ",mac=" + c.NIC.MAC
		}
		a = append(a, "-netdev", "tap,id=nic0,ifname="+c.NIC.Tap+",script=no,downscript=no", "-device", dev)
	case "vfio":
		if c.NIC.PCI == "" {
			return nil, fmt.Errorf("vm: vfio NIC needs a PCI address")
		}
		a = append(a, "-device", "vfio-pci,host="+c.NIC.PCI)
	default:
		return nil, fmt.Errorf("vm: unknown NIC kind %q (none, tap or vfio)", c.NIC.Kind)
	}
	// The guest's watchdog: when it fires the guest stops at once (see
	// the package doc).
	a = append(a, "-device", "i6300esb", "-action", "watchdog=pause")
	for _, sock := range []string{c.QMP, c.Events} {
		if len(sock) > maxSocketPath {
			return nil, fmt.Errorf("vm: socket path %s is %d bytes, longer than a unix socket path may be (%d): give a shorter state directory (mkrt run --state-dir) or partition name", sock, len(sock), maxSocketPath)
		}
	}
	if c.QMP != "" {
		a = append(a, "-qmp", "unix:"+qemuEscape(c.QMP)+",server=on,wait=off")
	}
	if c.Events != "" {
		a = append(a, "-chardev", "socket,id=mkrtevents,path="+qemuEscape(c.Events)+",server=on,wait=off",
			"-mon", "chardev=mkrtevents,mode=control")
	}
	return append(a, c.Extra...), nil
}

// maxSocketPath is the longest unix socket path (sun_path less its NUL).
const maxSocketPath = 107

// qemuEscape doubles commas, QEMU's escape inside option values.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
