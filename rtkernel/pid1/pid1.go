// Package pid1 is what mkrt-init does as the first process of the
// application kernel: mount the pseudo file systems, load the partition's
// kernel modules, bring up the dedicated NIC, find the shared region
// (ivshmem PCI BAR2 or a physical range named on the command line), run the
// executive, feed the kernel's watchdog while the executive cycles
// (mkrt.watchdog=, see Feeder), reap orphans, and power the kernel off when
// the executive stops — writing the reason to the console first when it
// failed. For the watchdog tests it can make the kernel hang, stall or
// panic on purpose (mkrt.test=, InjectFault), never unless asked.
//
// It needs to run as PID 1 of a Linux kernel; the parsing and discovery
// helpers are plain functions tested on any machine against fake trees.
package pid1

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// The initramfs layout mkrt-init relies on; the image builder on the host
// (supervisor/image) writes these paths.
const (
	InitPath      = "init"
	ConfigPath    = "etc/mkrt/config.yaml"
	ModuleOrder   = "etc/mkrt/modules"
	ModulesPrefix = "lib/modules"
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

// The ivshmem-v2 PCI identity of a Jailhouse cell (Siemens AG), and the
// class code of mkrt's channel on it (class 0xff, protocol 0x4d4b).
const (
	ivshmem2Vendor = "0x110a"
	ivshmem2Device = "0x4106"
	ivshmem2Class  = "0xff4d4b"
)

// FindShm locates the shared region: a "phys:<addr>,<size>" parameter, the
// ivshmem device at a PCI address ("pci:0000:00:10.0": a guest with two
// regions, its own and the one it takes over from), or else the first
// ivshmem PCI device under sys (rooted at /sys): an
// ivshmem-plain device (its BAR 2), or in a Jailhouse cell an ivshmem-v2
// device of mkrt's protocol, whose read-write section is physical memory
// named by its vendor capability.
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
	at, byAddr := strings.CutPrefix(param, "pci:")
	if !byAddr && param != "" {
		return ShmLocation{}, fmt.Errorf("pid1: bad mkrt.shm=%q (want phys:<addr>,<size> or pci:<domain:bus:slot.fn>)", param)
	}
	devs, err := fs.ReadDir(sys, "bus/pci/devices")
	if err != nil {
		return ShmLocation{}, fmt.Errorf("pid1: listing PCI devices: %w", err)
	}
	for _, d := range devs {
		if byAddr && d.Name() != at {
			continue
		}
		dir := path.Join("bus/pci/devices", d.Name())
		v, _ := fs.ReadFile(sys, path.Join(dir, "vendor"))
		id, _ := fs.ReadFile(sys, path.Join(dir, "device"))
		if strings.TrimSpace(string(v)) == ivshmemVendor && strings.TrimSpace(string(id)) == ivshmemDevice {
			return ShmLocation{BAR: "/sys/" + path.Join(dir, "resource2"), Enable: "/sys/" + path.Join(dir, "enable")}, nil
		}
		if strings.TrimSpace(string(v)) == ivshmem2Vendor && strings.TrimSpace(string(id)) == ivshmem2Device {
			if c, err := fs.ReadFile(sys, path.Join(dir, "class")); err == nil && strings.TrimSpace(string(c)) != ivshmem2Class {
				continue // another protocol's ivshmem-v2 device (virtual network, virtio)
			}
			cfg, err := fs.ReadFile(sys, path.Join(dir, "config"))
			if err != nil {
				return ShmLocation{}, fmt.Errorf("pid1: ivshmem-v2 device %s: %w", d.Name(), err)
			}
			loc, err := ivshmem2Region(cfg)
			if err != nil {
				return ShmLocation{}, fmt.Errorf("pid1: ivshmem-v2 device %s: %w", d.Name(), err)
			}
			loc.Enable = "/sys/" + path.Join(dir, "enable")
			return loc, nil
		}
	}
	if byAddr {
		return ShmLocation{}, fmt.Errorf("pid1: no ivshmem device at PCI address %s (mkrt.shm/mkrt.take=%s)", at, param)
	}
	return ShmLocation{}, fmt.Errorf("pid1: no ivshmem PCI device (vendor %s device %s, or ivshmem-v2 %s:%s) and no mkrt.shm=phys:… parameter", ivshmemVendor, ivshmemDevice, ivshmem2Vendor, ivshmem2Device)
}

// ivshmem2Region reads the ivshmem-v2 vendor capability (ivshmem-v2
// specification of Jailhouse v0.12): state table size at +4, read-write
// section size at +8, output section size at +16 and, when BAR 2 is not
// implemented, the shared memory's address at +24. The read-write section
// follows the state table.
func ivshmem2Region(cfg []byte) (ShmLocation, error) {
	if len(cfg) < 0x40 || cfg[0x06]&0x10 == 0 {
		return ShmLocation{}, fmt.Errorf("config space has no capability list (read it as root)")
	}
	seen := map[int]bool{}
	for off := int(cfg[0x34] & 0xfc); off != 0; off = int(cfg[off+1] & 0xfc) {
		if off < 0x40 || off+2 > len(cfg) || seen[off] {
			return ShmLocation{}, fmt.Errorf("capability list is corrupt at %#x", off)
		}
		seen[off] = true
		if cfg[off] != 0x09 {
			continue
		}
		if cfg[off+2] < 0x20 || off+0x20 > len(cfg) {
			return ShmLocation{}, fmt.Errorf("vendor capability of %d bytes has no shared memory address (memory behind BAR 2 is not supported)", cfg[off+2])
		}
		le := binary.LittleEndian
		state := uint64(le.Uint32(cfg[off+4:]))
		rw := le.Uint64(cfg[off+8:])
		addr := le.Uint64(cfg[off+24:])
		if rw == 0 {
			return ShmLocation{}, fmt.Errorf("read-write section is empty")
		}
		return ShmLocation{Phys: addr + state, Size: rw}, nil
	}
	return ShmLocation{}, fmt.Errorf("no vendor capability")
}
