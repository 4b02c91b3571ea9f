package jailhouse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// ErrDevice is a PCI device that cannot be described from sysfs.
var ErrDevice = errors.New("jailhouse: PCI device")

// Resource flags of /sys/bus/pci/devices/*/resource (linux/ioport.h).
const (
	ioresourceIO    = 0x00000100
	ioresourceMem   = 0x00000200
	ioresourceMem64 = 0x00100000
)

// BAR is one base address register as sysfs reports it.
type BAR struct {
	Start, Size uint64
	IO, Mem64   bool
}

// HostDevice is a physical PCI device read from sysfs: what a cell config
// needs to pass it through.
type HostDevice struct {
	Addr   string // "0000:03:00.0"
	Domain uint16
	BDF    uint16
	BARs   [6]BAR
	// Caps are the capabilities found in config space (Start is the offset;
	// extended ones carry PCIExtCap in ID).
	Caps                      []PCICap
	NumMSIVectors             uint8
	MSI64Bits, MSIMaskable    bool
	NumMSIXVectors            uint16
	MSIXAddress, MSIXRegionSz uint64
}

// BARMask is the bar_mask Jailhouse emulates BAR sizing with: the size mask
// of each BAR without its flag bits, the upper half of a 64-bit BAR in the
// next slot.
func (d *HostDevice) BARMask() [6]uint32 {
	var m [6]uint32
	for i := 0; i < 6; i++ {
		b := d.BARs[i]
		if b.Size == 0 {
			continue
		}
		mask := ^(b.Size - 1)
		switch {
		case b.IO:
			m[i] = uint32(mask) &^ 0x3
		case b.Mem64 && i < 5:
			m[i] = uint32(mask) &^ 0xf
			m[i+1] = uint32(mask >> 32)
			i++
		default:
			m[i] = uint32(mask) &^ 0xf
		}
	}
	return m
}

// ReadHostDevice reads a PCI device from sysfs (sys is rooted at /sys):
// its BARs from resource and its capabilities, MSI and MSI-X from config.
// Config space beyond the first 64 bytes is readable by root only; a short
// config file is an error that says so.
func ReadHostDevice(sys fs.FS, addr string) (*HostDevice, error) {
	dom, bdf, err := ParseBDF(addr)
	if err != nil {
		return nil, err
	}
	d := &HostDevice{Addr: FormatBDF(dom, bdf), Domain: dom, BDF: bdf}
	dir := path.Join("bus/pci/devices", d.Addr)
	res, err := fs.ReadFile(sys, path.Join(dir, "resource"))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrDevice, d.Addr, err)
	}
	lines := strings.Split(strings.TrimSpace(string(res)), "\n")
	for i := 0; i < 6 && i < len(lines); i++ {
		f := strings.Fields(lines[i])
		if len(f) != 3 {
			return nil, fmt.Errorf("%w %s: resource line %d %q is not \"start end flags\"", ErrDevice, d.Addr, i, lines[i])
		}
		var v [3]uint64
		for k := range v {
			if v[k], err = strconv.ParseUint(f[k], 0, 64); err != nil {
				return nil, fmt.Errorf("%w %s: resource line %d: %w", ErrDevice, d.Addr, i, err)
			}
		}
		if v[1] > v[0] && v[2]&(ioresourceIO|ioresourceMem) != 0 {
			d.BARs[i] = BAR{Start: v[0], Size: v[1] - v[0] + 1, IO: v[2]&ioresourceIO != 0, Mem64: v[2]&ioresourceMem64 != 0}
		}
	}
	cfg, err := fs.ReadFile(sys, path.Join(dir, "config"))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrDevice, d.Addr, err)
	}
	if len(cfg) < 256 {
		return nil, fmt.Errorf("%w %s: config space is %d bytes, capabilities need 256 (read it as root)", ErrDevice, d.Addr, len(cfg))
	}
	if err := d.parseCaps(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// parseCaps walks the standard and (with 4096 bytes) extended capability
// lists. Lengths follow what Jailhouse's config generator gives each kind.
func (d *HostDevice) parseCaps(cfg []byte) error {
	le := binary.LittleEndian
	if le.Uint16(cfg[0x06:])&0x10 != 0 {
		seen := map[int]bool{}
		for off := int(cfg[0x34] & 0xfc); off != 0; off = int(cfg[off+1] & 0xfc) {
			if off < 0x40 || off > 0xfc-2 || seen[off] {
				return fmt.Errorf("%w %s: capability list is corrupt at %#x", ErrDevice, d.Addr, off)
			}
			seen[off] = true
			id := cfg[off]
			c := PCICap{ID: uint16(id), Start: uint16(off), Len: 2}
			switch id {
			case 0x01: // power management
				c.Len, c.Flags = 8, PCICapsWrite
			case 0x05: // MSI
				ctrl := le.Uint16(cfg[off+2:])
				d.NumMSIVectors = 1 << ((ctrl >> 1) & 7)
				d.MSI64Bits, d.MSIMaskable = ctrl&0x80 != 0, ctrl&0x100 != 0
				c.Len, c.Flags = 10, PCICapsWrite
				if d.MSI64Bits {
					c.Len += 4
				}
				if d.MSIMaskable {
					c.Len += 10
				}
			case 0x10: // PCI Express
				c.Len = 0x14
				if le.Uint16(cfg[off+2:])&0xf >= 2 {
					c.Len = 0x3c
				}
			case 0x11: // MSI-X
				ctrl := le.Uint16(cfg[off+2:])
				table := le.Uint32(cfg[off+4:])
				d.NumMSIXVectors = ctrl&0x7ff + 1
				bir := table & 7
				if bir > 5 || d.BARs[bir].Size == 0 {
					return fmt.Errorf("%w %s: MSI-X table in BAR %d, which is not a memory BAR", ErrDevice, d.Addr, bir)
				}
				d.MSIXAddress = d.BARs[bir].Start + uint64(table&^7)
				d.MSIXRegionSz = (uint64(d.NumMSIXVectors)*16 + pageSize - 1) &^ (pageSize - 1)
				c.Len, c.Flags = 12, PCICapsWrite
			case 0x09: // vendor specific: its own length byte
				c.Len = uint16(max(cfg[off+2], 2))
			}
			if int(c.Start)+int(c.Len) > 0x100 {
				c.Len = uint16(0x100 - int(c.Start))
			}
			d.Caps = append(d.Caps, c)
		}
	}
	if len(cfg) < 4096 {
		return nil
	}
	seen := map[int]bool{}
	for off := 0x100; off != 0; {
		if off < 0x100 || off > 4096-4 || seen[off] {
			return fmt.Errorf("%w %s: extended capability list is corrupt at %#x", ErrDevice, d.Addr, off)
		}
		seen[off] = true
		h := le.Uint32(cfg[off:])
		if h == 0 || h == 0xffffffff {
			break
		}
		id := uint16(h & 0xffff)
		c := PCICap{ID: id | PCIExtCap, Start: uint16(off), Len: 4}
		switch id {
		case 0x01: // advanced error reporting
			c.Len = 0x48
		case 0x03: // device serial number
			c.Len = 12
		case 0x0b: // vendor specific: length in the header
			c.Len = uint16(le.Uint32(cfg[off+4:]) >> 20)
		}
		if int(c.Start)+int(c.Len) > 4096 || c.Len < 4 {
			c.Len = 4
		}
		d.Caps = append(d.Caps, c)
		off = int(h>>20) & 0xffc
	}
	return nil
}

const pageSize = 0x1000
