package shm

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mkrt/mkrt/configs"
)

// Kind is how a region is reached.
type Kind string

// The transports.
const (
	// KindFile is a file, normally /dev/shm/<name>: the process backend, and
	// the host side of a VM's ivshmem device.
	KindFile Kind = "file"
	// KindPCI is a PCI BAR: ivshmem inside a VM, ivshmem-v2 in a Jailhouse
	// cell (/sys/bus/pci/devices/<bdf>/resource2).
	KindPCI Kind = "pci"
	// KindPhys is physical memory through /dev/mem: multikernel and Parker
	// reservations.
	KindPhys Kind = "mem"
)

// ErrUnsafe: an existing region file could be held by someone else (another
// owner, a symbolic link, more than one link, group or other write
// permission, or a size this config did not give it); it is not reused.
var ErrUnsafe = errors.New("region file not safe to reuse")

// DefaultSysfsPCI is where PCI devices appear in sysfs.
const DefaultSysfsPCI = "/sys/bus/pci/devices"

// Location says where a region is and how to map it.
type Location struct {
	Kind Kind
	// Path is the file (KindFile), the PCI device's sysfs directory
	// (KindPCI, e.g. /sys/bus/pci/devices/0000:00:04.0), or the physical
	// memory device (KindPhys, default /dev/mem; tests point it at an
	// ordinary file standing in for /dev/mem).
	Path string
	// BAR is the PCI BAR to map (KindPCI); default 2 (ivshmem shared memory).
	BAR int
	// Addr is the physical address (KindPhys), page-aligned or not.
	Addr uint64
	// Size is the region size: the file size to create (KindFile with
	// Create) or the reserved size (KindPhys).
	Size int64
	// Create makes the file (mode 0600) and reserves Size bytes for it
	// (KindFile); the host side does this. An existing file is reused only
	// when it is safe to (see CreateFile), else refused with ErrUnsafe.
	Create bool
}

// File is the location of a /dev/shm-style file region.
func File(path string, size int64, create bool) Location {
	return Location{Kind: KindFile, Path: path, Size: size, Create: create}
}

// PCI is the location of BAR 2 of the PCI device bdf ("0000:00:04.0").
func PCI(bdf string) Location {
	return Location{Kind: KindPCI, Path: filepath.Join(DefaultSysfsPCI, bdf), BAR: 2}
}

// Phys is the location of size bytes of physical memory at addr.
func Phys(addr uint64, size int64) Location {
	return Location{Kind: KindPhys, Path: "/dev/mem", Addr: addr, Size: size}
}

func (l Location) String() string {
	switch l.Kind {
	case KindPCI:
		return fmt.Sprintf("pci:%s/resource%d", l.Path, l.BAR)
	case KindPhys:
		return fmt.Sprintf("mem:%s@%#x+%d", l.Path, l.Addr, l.Size)
	}
	return "file:" + l.Path
}

// ParseLocation reads a location as written in configs and on the command
// line:
//
//	/dev/shm/mkrt-line1          a file (also file:/dev/shm/mkrt-line1)
//	pci:0000:00:04.0             BAR 2 of a PCI device (pci:0000:00:04.0/resource2 for another BAR)
//	mem:0x3f000000+4Mi           physical memory at an address, of a size
func ParseLocation(s string) (Location, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || strings.HasPrefix(s, "/") {
		kind, rest = "file", s
	}
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("shm: %w: location %q: %s (write /dev/shm/NAME, pci:DDDD:BB:DD.F or mem:ADDR+SIZE)", ErrInvalid, s, why)
	}
	switch Kind(kind) {
	case KindFile:
		if rest == "" {
			return bad("no path")
		}
		return File(rest, 0, false), nil
	case KindPCI:
		bdf, res, _ := strings.Cut(rest, "/")
		if strings.Count(bdf, ":") != 2 || !strings.Contains(bdf, ".") {
			return bad("not a PCI address")
		}
		l := PCI(bdf)
		if res != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(res, "resource"))
			if err != nil || n < 0 || n > 5 || !strings.HasPrefix(res, "resource") {
				return bad("BAR must be resource0 to resource5")
			}
			l.BAR = n
		}
		return l, nil
	case KindPhys:
		a, z, ok := strings.Cut(rest, "+")
		if !ok {
			return bad("missing +SIZE")
		}
		addr, err := strconv.ParseUint(a, 0, 64)
		if err != nil {
			return bad("bad address")
		}
		size, err := configs.ParseSize(z)
		if err != nil || size <= 0 {
			return bad("bad size")
		}
		return Phys(addr, size), nil
	}
	return bad("unknown transport " + strconv.Quote(kind))
}
