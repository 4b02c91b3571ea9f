package vm

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/image"
)

// FromConfig builds the vm partition of one generation: the kernel
// (spec.Kernel, partition.kernel.image, else the newest of Debian's
// /boot/vmlinuz-*-rt-*), an initramfs built for it, one vCPU per partition
// CPU plus a housekeeping one pinned to CPU 0 and the partition's CPUs,
// the region as ivshmem, the guest watchdog (GuestWatchdog, on the command
// line as mkrt.watchdog=), the dedicated NIC as vfio passthrough or a tap,
// and the accelerator that works (KVM, else TCG). A hand-over's standby
// guest also maps the running region (TakeFromPCI) and is told which is
// which on its command line.
//
// A tap in a bridge (nics[].bridge) belongs to its generation: the first
// generation's tap is nics[].interface, a later one's TapName(interface,
// n), so during a hand-over both guests are on the bridge, each with a MAC
// derived from its tap. They cannot share one IP address — both poll the
// field devices until the switch, and a device's ARP entry for a shared
// address would flip between them with every ARP request, resetting the
// other's TCP connections — so even generations take standby_address
// (mkrt.address= on the command line; the config, and so the region's
// hash, stay as written) and odd ones address.
func FromConfig(ctx context.Context, spec supervisor.Spec) (*VM, error) {
	cfg := spec.Config
	log := spec.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kernel := spec.Kernel
	if kernel == "" {
		kernel = cfg.ResolvePath(cfg.Partition.Kernel.Image)
	}
	if kernel == "" {
		ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-*")
		if len(ks) == 0 {
			return nil, fmt.Errorf("vm: no kernel: set partition.kernel.image or install Debian's linux-image-rt-amd64")
		}
		sort.Strings(ks)
		kernel = ks[len(ks)-1]
	}
	rtCPUs := make([]int, len(cfg.Partition.CPUs))
	for i := range rtCPUs {
		rtCPUs[i] = i + 1
	}
	nic, params, err := dedicatedNIC(spec)
	if err != nil {
		return nil, err
	}
	// The backend's own parameters first: partition.kernel.cmdline may
	// override them (mkrt-init reads the last of each).
	params = append([]string{fmt.Sprintf("mkrt.%s=%d", pid1.ParamWatchdog, GuestWatchdog(cfg)/time.Second)}, params...)
	extra := strings.TrimSpace(strings.Join(params, " ") + " " + cfg.Partition.Kernel.Cmdline)
	var takeSize int64
	if spec.TakeFrom != "" {
		fi, err := os.Stat(spec.TakeFrom)
		if err != nil {
			return nil, fmt.Errorf("vm: the region to take over from: %w", err)
		}
		takeSize = fi.Size()
		extra = strings.TrimSpace(extra + " mkrt.shm=pci:" + ShmPCI + " mkrt.take=pci:" + TakeFromPCI)
	}
	cmdline := image.Cmdline(image.CmdlineOptions{RTCPUs: rtCPUs, Housekeeping: []int{0}, MaxCState: -1, Extra: extra})
	initrd, err := image.ForSpec(spec, kernel, cmdline)
	if err != nil {
		return nil, err
	}
	qemu := Config{Kernel: kernel, Initrd: initrd, Cmdline: cmdline,
		MemoryMiB: int(cfg.Partition.Memory >> 20), VCPUs: len(rtCPUs) + 1, ShmPath: spec.Region, ShmSize: spec.RegionSize,
		TakeFromPath: spec.TakeFrom, TakeFromSize: takeSize}
	acc := DetectAccel(ctx, qemu, 30*time.Second, "/run/mkrt/accel")
	qemu.Accel = acc.Name
	log.Info("accelerator", "accel", acc.Name, "why", acc.Why)
	o := Options{Name: spec.Instance, QEMU: qemu, HostCPUs: append([]int{0}, cfg.Partition.CPUs...), RunDir: spec.StateDir, Log: log,
		ConsoleLog: consoleLog{log}, Halt: spec.Halt}
	if spec.StateDir != "" {
		// A file, not a pipe: the guest outlives this supervisor.
		o.ConsoleFile = filepath.Join(spec.StateDir, spec.Instance+".console")
	}
	o.Tap, o.HostAddress, o.Bridge = nic.tap, nic.hostAddress, nic.bridge
	o.QEMU.NIC = nic.qemu
	return New(o), nil
}

// MinGuestWatchdog is the shortest guest watchdog timeout FromConfig sets.
const MinGuestWatchdog = 3 * time.Second

// GuestWatchdog is the guest watchdog's timeout for cfg: twice what the
// supervisor's heartbeat watchdog allows (watchdog.heartbeat periods of
// the fastest task), at least MinGuestWatchdog, in whole seconds (the
// device counts seconds). The supervisor sees a stalled executive first;
// the guest's watchdog is the backstop that stops the guest by itself —
// also while no supervisor runs — and that catches a hung guest kernel
// whose region still looks alive.
func GuestWatchdog(cfg *configs.Config) time.Duration {
	period, missed := supervisor.HeartbeatFromConfig(cfg)
	d := max(MinGuestWatchdog, 2*time.Duration(missed)*period)
	return (d + time.Second - 1) / time.Second * time.Second
}

// tapNIC is how one generation's guest gets its dedicated NIC.
type tapNIC struct {
	tap, hostAddress, bridge string
	qemu                     NIC
}

// dedicatedNIC is the guest's NIC for spec's generation and the command
// line parameters it needs.
func dedicatedNIC(spec supervisor.Spec) (tapNIC, []string, error) {
	nics := spec.Config.Partition.NICs
	if len(nics) == 0 {
		return tapNIC{}, nil, nil
	}
	n := nics[0]
	switch {
	case n.PCI != "":
		return tapNIC{qemu: NIC{Kind: "vfio", PCI: n.PCI}}, nil, nil
	case n.Bridge != "":
		gen := Generation(spec)
		tap := TapName(n.Interface, gen)
		t := tapNIC{tap: tap, bridge: n.Bridge, qemu: NIC{MAC: TapMAC(tap)}}
		if gen%2 == 0 && n.StandbyAddress != "" {
			return t, []string{fmt.Sprintf("mkrt.%s=%s", pid1.ParamAddress, n.StandbyAddress)}, nil
		}
		return t, nil, nil
	case n.HostAddress != "":
		return tapNIC{tap: n.Interface, hostAddress: n.HostAddress, qemu: NIC{MAC: TapMAC(n.Interface)}}, nil, nil
	default:
		return tapNIC{}, nil, fmt.Errorf("vm: nic %q: give its pci address (vfio passthrough), or for a tap a host_address or a bridge", n.Interface)
	}
}

// Generation is the generation number of spec: 1 when its instance is
// metadata.name, n when it is metadata.name-n (supervisor.Spec.Instance).
func Generation(spec supervisor.Spec) int {
	rest, ok := strings.CutPrefix(spec.Instance, spec.Config.Metadata.Name+"-")
	if !ok {
		return 1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// TapName is the tap of generation n of a guest whose NIC is iface: iface
// itself for the first generation, iface-n for later ones, with iface
// shortened as far as the suffix needs to fit an interface name.
func TapName(iface string, n int) string {
	if n <= 1 {
		return iface
	}
	suffix := "-" + strconv.Itoa(n)
	if len(iface)+len(suffix) > configs.MaxIfName {
		iface = iface[:max(0, configs.MaxIfName-len(suffix))]
	}
	return iface + suffix
}

// TapMAC is the guest MAC behind tap: locally administered (QEMU's 52:54
// prefix), derived from the tap's name, so two generations' guests on one
// bridge differ and each keeps its MAC across restarts (devices' ARP
// caches stay right).
func TapMAC(tap string) string {
	h := fnv.New32a()
	h.Write([]byte(tap))
	s := h.Sum32()
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}

// consoleLog writes the guest's serial console to the log.
type consoleLog struct{ log *slog.Logger }

func (c consoleLog) Write(p []byte) (int, error) {
	c.log.Info("console", "line", strings.TrimRight(string(p), "\r\n"))
	return len(p), nil
}
