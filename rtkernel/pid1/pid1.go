// Package pid1 is what mkrt-init does as the first process of the
// application kernel: mount the pseudo file systems, load the partition's
// kernel modules, bring up the dedicated NIC, find the shared region
// (ivshmem PCI BAR2 or a physical range named on the command line), run the
// executive, reap orphans, and power the kernel off when the executive
// stops — writing the reason to the console first when it failed.
//
// It needs to run as PID 1 of a Linux kernel; the parsing and discovery
// helpers are plain functions tested on any machine against fake trees.
package pid1

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Boot is what mkrt-init learned about the kernel it runs in.
type Boot struct {
	// Params are the mkrt.* command-line parameters without the prefix.
	Params map[string]string
	// Shm is where the shared region is: a BAR path or "phys:<addr>,<size>".
	Shm ShmLocation
	// Realtime is true on a PREEMPT_RT kernel (/sys/kernel/realtime = 1).
	Realtime bool
	Release  string
}

// ShmLocation names the shared region.
type ShmLocation struct {
	// BAR is the sysfs resource file of an ivshmem device ("" if none).
	BAR string
	// Enable is the device's sysfs enable file.
	Enable string
	// Phys and Size name a physical range (kexec-family backends).
	Phys, Size uint64
}

func (l ShmLocation) String() string {
	switch {
	case l.BAR != "":
		return l.BAR
	case l.Size != 0:
		return fmt.Sprintf("phys:%#x,%#x", l.Phys, l.Size)
	}
	return "none"
}

// ParseCmdline returns the mkrt.* parameters of a kernel command line.
func ParseCmdline(cmdline string) map[string]string {
	p := map[string]string{}
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		if name, ok := strings.CutPrefix(k, "mkrt."); ok {
			p[name] = v
		}
	}
	return p
}

// The ivshmem-plain PCI identity (Red Hat, Inc. Inter-VM shared memory).
const (
	ivshmemVendor = "0x1af4"
	ivshmemDevice = "0x1110"
)

// FindShm locates the shared region: a "phys:<addr>,<size>" parameter, or
// else the first ivshmem PCI device under sys (rooted at /sys).
func FindShm(sys fs.FS, param string) (ShmLocation, error) {
	if rest, ok := strings.CutPrefix(param, "phys:"); ok {
		a, s, ok := strings.Cut(rest, ",")
		addr, err1 := strconv.ParseUint(a, 0, 64)
		size, err2 := strconv.ParseUint(s, 0, 64)
		if !ok || err1 != nil || err2 != nil || size == 0 {
			return ShmLocation{}, fmt.Errorf("pid1: bad mkrt.shm=%q (want phys:<addr>,<size>)", param)
		}
		return ShmLocation{Phys: addr, Size: size}, nil
	}
	devs, err := fs.ReadDir(sys, "bus/pci/devices")
	if err != nil {
		return ShmLocation{}, fmt.Errorf("pid1: listing PCI devices: %w", err)
	}
	for _, d := range devs {
		dir := path.Join("bus/pci/devices", d.Name())
		v, _ := fs.ReadFile(sys, path.Join(dir, "vendor"))
		id, _ := fs.ReadFile(sys, path.Join(dir, "device"))
		if strings.TrimSpace(string(v)) == ivshmemVendor && strings.TrimSpace(string(id)) == ivshmemDevice {
			return ShmLocation{BAR: "/sys/" + path.Join(dir, "resource2"), Enable: "/sys/" + path.Join(dir, "enable")}, nil
		}
	}
	return ShmLocation{}, fmt.Errorf("pid1: no ivshmem PCI device (vendor %s device %s) and no mkrt.shm=phys:… parameter", ivshmemVendor, ivshmemDevice)
}
