package vm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/image"
)

// FromConfig builds the vm partition of one generation: the kernel
// (spec.Kernel, partition.kernel.image, else the newest of Debian's
// /boot/vmlinuz-*-rt-*), an initramfs built for it, one vCPU per partition
// CPU plus a housekeeping one pinned to CPU 0 and the partition's CPUs,
// the region as ivshmem, the dedicated NIC as vfio passthrough or a tap,
// and the accelerator that works (KVM, else TCG). A hand-over's standby
// guest also maps the running region (TakeFromPCI) and is told which is
// which on its command line.
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
	extra := cfg.Partition.Kernel.Cmdline
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
	if nics := cfg.Partition.NICs; len(nics) > 0 {
		n := nics[0]
		switch {
		case n.PCI != "":
			o.QEMU.NIC = NIC{Kind: "vfio", PCI: n.PCI}
		case n.HostAddress != "":
			o.Tap, o.HostAddress = n.Interface, n.HostAddress
		default:
			return nil, fmt.Errorf("vm: nic %q: give its pci address (vfio passthrough) or a host_address for a tap", n.Interface)
		}
	}
	return New(o), nil
}

// consoleLog writes the guest's serial console to the log.
type consoleLog struct{ log *slog.Logger }

func (c consoleLog) Write(p []byte) (int, error) {
	c.log.Info("console", "line", strings.TrimRight(string(p), "\r\n"))
	return len(p), nil
}
