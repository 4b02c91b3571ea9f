package jailhouse

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
)

// The ivshmem-v2 device mkrt gives a cell.
const (
	// IvshmemVendor and IvshmemDevice are the ivshmem-v2 PCI identity.
	IvshmemVendor = 0x110a
	IvshmemDevice = 0x4106
	// ShmemProtoMkrt is mkrt's shared-memory protocol id, in Jailhouse's
	// custom range; the device's class code is 0xff, subclass and
	// programming interface are this id's two bytes.
	ShmemProtoMkrt = 0x4d4b
	// DefaultIvshmemBDF is the virtual PCI slot of the ivshmem device in
	// both cells, 0000:00:0e.0; pick a free slot on bus 0 with
	// Options.IvshmemBDF when the host uses it.
	DefaultIvshmemBDF = 0x0e << 3
	// StateTableSize is the ivshmem-v2 state table's size.
	StateTableSize = pageSize
	// LowRAMSize is the RAM at guest-physical 0 that holds the Linux loader
	// and boot parameters; the comm region follows at 1 MiB and the rest of
	// the RAM at 2 MiB, as in Jailhouse's linux-x86-demo cell.
	LowRAMSize    = 1 << 20
	commRegionVA  = 0x00100000
	highRAMVA     = 0x00200000
	minCellMemory = 32 << 20
)

// ErrConfig is a partition the jailhouse backend cannot place.
var ErrConfig = errors.New("jailhouse: partition")

// Options say where a cell goes on this host.
type Options struct {
	// MemoryBase is the physical address of the cell's memory window: the
	// cell's RAM, then the ivshmem sections. The host must keep the window
	// out of its own use (memmap=SIZE$BASE; Plan.HostCmdline says which).
	MemoryBase uint64
	// Sys is sysfs (rooted at /sys), read for the dedicated NICs' BARs and
	// capabilities; nil only when the partition has no NICs.
	Sys fs.FS
	// IvshmemBDF is the ivshmem device's virtual PCI address; 0 means
	// DefaultIvshmemBDF.
	IvshmemBDF uint16
	// OutputSize is the size of each peer's ivshmem output section; 0 (the
	// default) gives none: the mkrt channel is entirely in the read-write
	// section.
	OutputSize uint64
	// IOMMU is the IOMMU unit index of the dedicated NICs (0: the first).
	IOMMU uint8
}

// Plan is a generated cell config with where it puts things on the host.
type Plan struct {
	Cell *Cell
	// WindowBase and WindowSize are the physical memory the cell takes.
	WindowBase, WindowSize uint64
	// StateTable is the ivshmem state table's physical address; Shm and
	// ShmSize the read-write section that holds the mkrt region.
	StateTable  uint64
	Shm         uint64
	ShmSize     uint64
	OutputSize  uint64
	IvshmemBDF  uint16
	IvshmemRegs int // index of the state table among Cell.Memory
	// NICs are the passed-through PCI devices.
	NICs []*HostDevice
}

// ShmLocation is where the root cell maps the shared region: the ivshmem
// read-write section's physical memory through /dev/mem.
func (p *Plan) ShmLocation() shm.Location { return shm.Phys(p.Shm, int64(p.ShmSize)) }

// HostCmdline is the root cell kernel parameter that keeps the window free.
func (p *Plan) HostCmdline() string {
	return fmt.Sprintf("memmap=%#x$%#x", p.WindowSize, p.WindowBase)
}

// Generate builds the cell config of cfg's partition: the cell is named
// after the control program; it gets the partition's CPUs, partition.memory
// of RAM at Options.MemoryBase, a comm region, the 8250 console at PIO
// 0x3f8, an ivshmem-v2 device whose read-write section is
// partition.shared_memory, and each dedicated NIC with its BARs, MSI and
// MSI-X. It checks what Jailhouse would refuse later: CPU 0 (the root cell
// keeps it), unaligned or tiny memory, overlapping regions.
func Generate(cfg *configs.Config, o Options) (*Plan, error) {
	p := cfg.Partition
	name := cfg.Metadata.Name
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("%w: "+f, append([]any{ErrConfig}, a...)...)) }
	if name == "" || len(name) > NameMaxLen {
		bad("metadata.name %q names the cell and must be 1-%d bytes", name, NameMaxLen)
	}
	cpus := slices.Clone([]int(p.CPUs))
	slices.Sort(cpus)
	cpus = slices.Compact(cpus)
	if len(cpus) == 0 {
		bad("no cpus: give the cell at least one CPU (partition.cpus)")
	}
	if slices.Contains(cpus, 0) {
		bad("CPU 0 stays with the root cell; give the cell other CPUs (partition.cpus)")
	}
	mem := uint64(p.Memory)
	if mem == 0 {
		mem = uint64(configs.DefaultMemory)
	}
	if mem < minCellMemory || mem%LowRAMSize != 0 {
		bad("memory %d must be a multiple of 1Mi and at least 32Mi (the kernel loads at 16 MiB)", mem)
	}
	shmSize := uint64(p.SharedMemory)
	if shmSize == 0 {
		shmSize = uint64(configs.DefaultSharedMemory)
	}
	shmSize = (shmSize + pageSize - 1) &^ (pageSize - 1)
	if o.MemoryBase == 0 || o.MemoryBase%pageSize != 0 {
		bad("memory base %#x must be a non-zero, page-aligned physical address (--memory-base)", o.MemoryBase)
	}
	out := (o.OutputSize + pageSize - 1) &^ (pageSize - 1)
	bdf := o.IvshmemBDF
	if bdf == 0 {
		bdf = DefaultIvshmemBDF
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	base := o.MemoryBase
	plan := &Plan{WindowBase: base, StateTable: base + mem, Shm: base + mem + StateTableSize, ShmSize: shmSize, OutputSize: out, IvshmemBDF: bdf}
	plan.WindowSize = mem + StateTableSize + shmSize + 2*out
	c := &Cell{
		Name:       name,
		Flags:      CellPassiveCommReg | CellVirtualConsolePermitted,
		CPUs:       cpus,
		CPUSetSize: uint32((cpus[len(cpus)-1]/64 + 1) * 8),
		Console:    Console{Address: 0x3f8, Type: ConType8250, Flags: ConAccessPIO | ConRegDist1},
		PIO:        []PIO{{Base: 0x3f8, Length: 8}},
	}
	ram := uint64(MemRead | MemWrite | MemExecute | MemDMA | MemLoadable)
	c.Memory = []Memory{
		{PhysStart: base, VirtStart: 0, Size: LowRAMSize, Flags: ram},
		{VirtStart: commRegionVA, Size: pageSize, Flags: MemRead | MemWrite | MemCommRegion},
		{PhysStart: base + LowRAMSize, VirtStart: highRAMVA, Size: mem - LowRAMSize, Flags: ram},
	}
	plan.IvshmemRegs = len(c.Memory)
	c.Memory = append(c.Memory, ivshmemRegions(plan, 1)...)
	c.PCIDevices = append(c.PCIDevices, PCIDevice{
		Type: PCITypeIVSHMEM, BDF: bdf,
		BARMask:        [6]uint32{0xfffff000, 0xfffffe00},
		NumMSIXVectors: 1,
		ShmemRegions:   uint32(plan.IvshmemRegs), ShmemDevID: 1, ShmemPeers: 2, ShmemProtocol: ShmemProtoMkrt,
	})
	for i, nic := range p.NICs {
		addr := nic.PCI
		if addr == "" {
			var err error
			if addr, err = nicPCI(o.Sys, nic.Interface); err != nil {
				bad("nics[%d]: %v", i, err)
				continue
			}
		}
		if o.Sys == nil {
			bad("nics[%d] %s: no sysfs to read the device from", i, addr)
			continue
		}
		d, err := ReadHostDevice(o.Sys, addr)
		if err != nil {
			bad("nics[%d]: %v", i, err)
			continue
		}
		plan.NICs = append(plan.NICs, d)
		addDevice(c, d, o.IOMMU)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := checkOverlaps(c); err != nil {
		return nil, err
	}
	plan.Cell = c
	return plan, nil
}

// ivshmemRegions are the state table, read-write section and one output
// section per peer, as peer id sees them (its own output writable).
func ivshmemRegions(p *Plan, id int) []Memory {
	rs := []Memory{
		{PhysStart: p.StateTable, VirtStart: p.StateTable, Size: StateTableSize, Flags: MemRead | MemRootShared},
		{PhysStart: p.Shm, VirtStart: p.Shm, Size: p.ShmSize, Flags: MemRead | MemWrite | MemRootShared},
	}
	for peer := 0; peer < 2; peer++ {
		if p.OutputSize == 0 {
			rs = append(rs, Memory{})
			continue
		}
		a := p.Shm + p.ShmSize + uint64(peer)*p.OutputSize
		f := uint64(MemRead | MemRootShared)
		if peer == id {
			f |= MemWrite
		}
		rs = append(rs, Memory{PhysStart: a, VirtStart: a, Size: p.OutputSize, Flags: f})
	}
	return rs
}

// addDevice passes a physical PCI device through: its memory BARs as device
// memory (the MSI-X table page left out: Jailhouse intercepts it), its I/O
// BARs as PIO regions, and its capabilities.
func addDevice(c *Cell, d *HostDevice, iommu uint8) {
	for _, b := range d.BARs {
		switch {
		case b.Size == 0:
		case b.IO:
			if b.Start+b.Size <= 0x10000 {
				c.PIO = append(c.PIO, PIO{Base: uint16(b.Start), Length: uint16(b.Size)})
			}
		default:
			start, end := b.Start, b.Start+((b.Size+pageSize-1)&^(pageSize-1))
			if d.NumMSIXVectors > 0 && d.MSIXAddress >= start && d.MSIXAddress < end {
				if d.MSIXAddress > start {
					c.Memory = append(c.Memory, Memory{PhysStart: start, VirtStart: start, Size: d.MSIXAddress - start, Flags: MemRead | MemWrite | MemIO})
				}
				start = d.MSIXAddress + d.MSIXRegionSz
			}
			if end > start {
				c.Memory = append(c.Memory, Memory{PhysStart: start, VirtStart: start, Size: end - start, Flags: MemRead | MemWrite | MemIO})
			}
		}
	}
	c.PCIDevices = append(c.PCIDevices, PCIDevice{
		Type: PCITypeDevice, IOMMU: iommu, Domain: d.Domain, BDF: d.BDF, BARMask: d.BARMask(),
		CapsStart: uint16(len(c.PCICaps)), NumCaps: uint16(len(d.Caps)),
		NumMSIVectors: d.NumMSIVectors, MSI64Bits: d.MSI64Bits, MSIMaskable: d.MSIMaskable,
		NumMSIXVectors: d.NumMSIXVectors, MSIXRegionSize: uint16(d.MSIXRegionSz), MSIXAddress: d.MSIXAddress,
	})
	c.PCICaps = append(c.PCICaps, d.Caps...)
}

// nicPCI finds the PCI address of a host interface through sysfs
// (class/net/IF/device links to the PCI device).
func nicPCI(sys fs.FS, ifname string) (string, error) {
	if ifname == "" {
		return "", errors.New("neither pci nor interface is set")
	}
	if sys == nil {
		return "", fmt.Errorf("interface %s: give its PCI address (nics[].pci)", ifname)
	}
	target, err := fs.ReadLink(sys, path.Join("class/net", ifname, "device"))
	if err != nil {
		return "", fmt.Errorf("interface %s is not a PCI device this host can pass through (give nics[].pci): %w", ifname, err)
	}
	return path.Base(target), nil
}

// checkOverlaps refuses a cell whose regions overlap in physical or in
// guest-physical space (Jailhouse refuses it at cell creation otherwise).
func checkOverlaps(c *Cell) error {
	var errs []string
	for i, a := range c.Memory {
		for j := i + 1; j < len(c.Memory); j++ {
			b := c.Memory[j]
			if a.Size == 0 || b.Size == 0 {
				continue
			}
			if a.Flags&MemCommRegion == 0 && b.Flags&MemCommRegion == 0 && a.PhysStart < b.PhysStart+b.Size && b.PhysStart < a.PhysStart+a.Size {
				errs = append(errs, fmt.Sprintf("regions %d and %d overlap in physical memory", i, j))
			}
			if a.VirtStart < b.VirtStart+b.Size && b.VirtStart < a.VirtStart+a.Size {
				errs = append(errs, fmt.Sprintf("regions %d and %d overlap in the cell's address space", i, j))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s (move --memory-base)", ErrConfig, strings.Join(errs, "; "))
	}
	return nil
}

// RootCellSnippet is the C the host's root-cell system config must carry
// for the cell's ivshmem device: the same four regions (the root cell is
// peer 0) and the device at the same virtual slot. Jailhouse connects two
// ivshmem devices only when both cells declare them; mkrt cannot change the
// root cell's config, which is compiled from the host's own sources.
func (p *Plan) RootCellSnippet() string {
	var b strings.Builder
	fmt.Fprintf(&b, "/* mkrt shared channel for cell %q: add to the root cell's mem_regions */\n", p.Cell.Name)
	for _, m := range ivshmemRegions(p, 0) {
		if m.Size == 0 {
			b.WriteString("{ 0 },\n")
			continue
		}
		fmt.Fprintf(&b, "{\n\t.phys_start = %#x,\n\t.virt_start = %#x,\n\t.size = %#x,\n\t.flags = %s,\n},\n",
			m.PhysStart, m.VirtStart, m.Size, cFlags(m.Flags))
	}
	fmt.Fprintf(&b, "/* and to its pci_devices (shmem_regions_start = index of the first region above) */\n")
	fmt.Fprintf(&b, "{\n\t.type = JAILHOUSE_PCI_TYPE_IVSHMEM,\n\t.domain = 0x0,\n\t.bdf = %#x, /* %s */\n\t.bar_mask = JAILHOUSE_IVSHMEM_BAR_MASK_MSIX,\n\t.num_msix_vectors = 1,\n\t.shmem_regions_start = /* index */,\n\t.shmem_dev_id = 0,\n\t.shmem_peers = 2,\n\t.shmem_protocol = %#x,\n},\n",
		p.IvshmemBDF, FormatBDF(0, p.IvshmemBDF), ShmemProtoMkrt)
	return b.String()
}

func cFlags(f uint64) string {
	s := MemFlagString(f)
	return "JAILHOUSE_MEM_" + strings.ReplaceAll(s, "|", " | JAILHOUSE_MEM_")
}
