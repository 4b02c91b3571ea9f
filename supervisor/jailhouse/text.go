package jailhouse

import (
	"fmt"
	"io"
	"strings"

	"github.com/mkrt/mkrt/configs"
)

// FormatBDF writes a domain and a Jailhouse bdf (bus<<8 | dev<<3 | fn) as a
// PCI address, "0000:03:00.0".
func FormatBDF(domain, bdf uint16) string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", domain, bdf>>8, (bdf>>3)&0x1f, bdf&7)
}

// ParseBDF reads a PCI address "0000:03:00.0" (or "03:00.0", domain 0).
func ParseBDF(s string) (domain, bdf uint16, err error) {
	var d, b, dev, fn uint
	n, _ := fmt.Sscanf(s, "%x:%x:%x.%x", &d, &b, &dev, &fn)
	if n != 4 {
		d = 0
		if n, _ = fmt.Sscanf(s, "%x:%x.%x", &b, &dev, &fn); n != 3 {
			return 0, 0, fmt.Errorf("jailhouse: %q is not a PCI address (write DDDD:BB:DD.F)", s)
		}
	}
	if d > 0xffff || b > 0xff || dev > 0x1f || fn > 7 || len(s) > len("0000:00:00.0") {
		return 0, 0, fmt.Errorf("jailhouse: %q is not a PCI address (write DDDD:BB:DD.F)", s)
	}
	return uint16(d), uint16(b<<8 | dev<<3 | fn), nil
}

type flagName struct {
	bit  uint64
	name string
}

var memFlagNames = []flagName{
	{MemRead, "READ"}, {MemWrite, "WRITE"}, {MemExecute, "EXECUTE"}, {MemDMA, "DMA"}, {MemIO, "IO"},
	{MemCommRegion, "COMM_REGION"}, {MemLoadable, "LOADABLE"}, {MemRootShared, "ROOTSHARED"},
	{MemIOUnaligned, "IO_UNALIGNED"}, {MemIO8, "IO_8"}, {MemIO16, "IO_16"}, {MemIO32, "IO_32"}, {MemIO64, "IO_64"},
}

var cellFlagNames = []flagName{
	{CellPassiveCommReg, "PASSIVE_COMMREG"}, {CellTestDevice, "TEST_DEVICE"},
	{CellVirtualConsolePermitted, "VIRTUAL_CONSOLE_PERMITTED"}, {CellVirtualConsoleActive, "VIRTUAL_CONSOLE_ACTIVE"},
}

// MemFlagString names the flags of a memory region ("READ|WRITE|DMA").
func MemFlagString(f uint64) string { return flagString(f, memFlagNames) }

func cellFlagString(f uint32) string { return flagString(uint64(f), cellFlagNames) }

// flagString names the set bits of f, unknown ones in hex.
func flagString(f uint64, names []flagName) string {
	var n []string
	for _, x := range names {
		if f&x.bit != 0 {
			n = append(n, x.name)
			f &^= x.bit
		}
	}
	if f != 0 {
		n = append(n, fmt.Sprintf("%#x", f))
	}
	if len(n) == 0 {
		return "0"
	}
	return strings.Join(n, "|")
}

// regionRoles names what each memory region is for, as far as the cell
// itself says: ivshmem sections (from the PCI devices), the comm region,
// RAM and device memory.
func (c *Cell) regionRoles() []string {
	roles := make([]string, len(c.Memory))
	for i, m := range c.Memory {
		switch {
		case m.Flags&MemCommRegion != 0:
			roles[i] = "comm region"
		case m.Flags&MemIO != 0:
			roles[i] = "device memory"
		case m.Flags&MemLoadable != 0:
			roles[i] = "RAM"
		case m.Size == 0:
			roles[i] = "empty"
		}
	}
	for _, d := range c.PCIDevices {
		if d.Type != PCITypeIVSHMEM {
			continue
		}
		who := "ivshmem " + FormatBDF(d.Domain, d.BDF)
		names := []string{"state table", "read-write section"}
		for p := 0; p < int(d.ShmemPeers); p++ {
			names = append(names, fmt.Sprintf("output section of peer %d", p))
		}
		for k, n := range names {
			if j := int(d.ShmemRegions) + k; j < len(roles) {
				roles[j] = who + " " + n
			}
		}
	}
	return roles
}

// WriteText prints the cell for review: every header field, then every
// array entry with its flags named.
func (c *Cell) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("cell %q (Jailhouse %s, config revision %d, %d bytes)\n", c.Name, Release, Revision, c.Size())
	p("  flags           %s\n", cellFlagString(c.Flags))
	p("  cpus            %s (cpu_set_size %d)\n", configs.CPUList(c.CPUs).String(), c.cpuSetSize())
	p("  vpci_irq_base   %d\n", c.VPCIIRQBase)
	p("  cpu_reset_addr  %#x\n", c.CPUResetAddress)
	p("  msg_reply_tmo   %d\n", c.MsgReplyTimeout)
	con := "none"
	switch c.Console.Type {
	case ConType8250:
		access := "pio"
		if c.Console.Flags&ConAccessMMIO != 0 {
			access = "mmio"
		}
		con = fmt.Sprintf("8250 %s %#x", access, c.Console.Address)
	case ConTypeNone:
	default:
		con = fmt.Sprintf("type %d at %#x flags %#x", c.Console.Type, c.Console.Address, c.Console.Flags)
	}
	p("  console         %s\n", con)
	roles := c.regionRoles()
	p("  memory regions (%d):\n", len(c.Memory))
	for i, m := range c.Memory {
		p("    [%d] phys %#012x virt %#012x size %#010x %-40s %s\n", i, m.PhysStart, m.VirtStart, m.Size, MemFlagString(m.Flags), roles[i])
	}
	if len(c.Caches) > 0 {
		p("  cache regions (%d):\n", len(c.Caches))
		for i, k := range c.Caches {
			p("    [%d] start %d size %d type %d flags %#x\n", i, k.Start, k.Size, k.Type, k.Flags)
		}
	}
	if len(c.IRQChips) > 0 {
		p("  irqchips (%d):\n", len(c.IRQChips))
		for i, q := range c.IRQChips {
			p("    [%d] address %#x id %#x pin_base %d pins %08x %08x %08x %08x\n", i, q.Address, q.ID, q.PinBase, q.PinBitmap[0], q.PinBitmap[1], q.PinBitmap[2], q.PinBitmap[3])
		}
	}
	p("  pio regions (%d):\n", len(c.PIO))
	for i, r := range c.PIO {
		p("    [%d] 0x%04x-0x%04x\n", i, r.Base, uint32(r.Base)+uint32(r.Length)-1)
	}
	p("  pci devices (%d):\n", len(c.PCIDevices))
	for i, d := range c.PCIDevices {
		kind := map[uint8]string{PCITypeDevice: "device", PCITypeBridge: "bridge", PCITypeIVSHMEM: "ivshmem"}[d.Type]
		if kind == "" {
			kind = fmt.Sprintf("type %d", d.Type)
		}
		p("    [%d] %s %s iommu %d bar_mask %08x %08x %08x %08x %08x %08x\n", i, kind, FormatBDF(d.Domain, d.BDF), d.IOMMU,
			d.BARMask[0], d.BARMask[1], d.BARMask[2], d.BARMask[3], d.BARMask[4], d.BARMask[5])
		p("        caps %d+%d msi %d (64bit %v, maskable %v) msix %d at %#x size %#x\n", d.CapsStart, d.NumCaps,
			d.NumMSIVectors, d.MSI64Bits, d.MSIMaskable, d.NumMSIXVectors, d.MSIXAddress, d.MSIXRegionSize)
		if d.Type == PCITypeIVSHMEM {
			p("        shmem regions from %d, dev id %d of %d peers, protocol 0x%04x\n", d.ShmemRegions, d.ShmemDevID, d.ShmemPeers, d.ShmemProtocol)
		}
	}
	if len(c.PCICaps) > 0 {
		p("  pci capabilities (%d):\n", len(c.PCICaps))
		for i, k := range c.PCICaps {
			kind := "cap"
			id := k.ID
			if id&PCIExtCap != 0 {
				kind, id = "ext cap", id&^PCIExtCap
			}
			w := ""
			if k.Flags&PCICapsWrite != 0 {
				w = " writable"
			}
			p("    [%d] %s %#04x at %#05x len %d%s\n", i, kind, id, k.Start, k.Len, w)
		}
	}
	if len(c.StreamIDs) > 0 {
		p("  stream ids %v\n", c.StreamIDs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
