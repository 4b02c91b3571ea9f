package jailhouse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// The pinned Jailhouse release and its config format revision.
const (
	// Release is the Jailhouse tag whose headers this package follows.
	Release = "v0.12"
	// Revision is JAILHOUSE_CONFIG_REVISION of Release.
	Revision = 12
	// Signature is JAILHOUSE_CELL_DESC_SIGNATURE.
	Signature = "JHCELL"
	// NameMaxLen is JAILHOUSE_CELL_NAME_MAXLEN (the name field holds one more
	// byte for the terminating NUL).
	NameMaxLen = 31
)

// Sizes of the packed structs of cell-config.h and console.h (v0.12).
const (
	HeaderSize    = 132 // struct jailhouse_cell_desc
	ConsoleSize   = 32  // struct jailhouse_console
	MemorySize    = 32  // struct jailhouse_memory
	CacheSize     = 12  // struct jailhouse_cache
	IRQChipSize   = 32  // struct jailhouse_irqchip
	PIOSize       = 4   // struct jailhouse_pio
	PCIDeviceSize = 56  // struct jailhouse_pci_device
	PCICapSize    = 8   // struct jailhouse_pci_capability
	StreamIDSize  = 4   // __u32
)

// Offsets of the fields of struct jailhouse_cell_desc.
const (
	offSignature       = 0
	offRevision        = 6
	offName            = 8
	offID              = 40
	offFlags           = 44
	offCPUSetSize      = 48
	offNumMemory       = 52
	offNumCaches       = 56
	offNumIRQChips     = 60
	offNumPIO          = 64
	offNumPCIDevices   = 68
	offNumPCICaps      = 72
	offNumStreamIDs    = 76
	offVPCIIRQBase     = 80
	offCPUResetAddress = 84
	offMsgReplyTimeout = 92
	offConsole         = 100
)

// Cell flags (jailhouse_cell_desc.flags).
const (
	CellPassiveCommReg          = 0x00000001
	CellTestDevice              = 0x00000002
	CellVirtualConsolePermitted = 0x40000000
	CellVirtualConsoleActive    = 0x80000000
)

// Memory region flags (jailhouse_memory.flags).
const (
	MemRead        = 0x0001
	MemWrite       = 0x0002
	MemExecute     = 0x0004
	MemDMA         = 0x0008
	MemIO          = 0x0010
	MemCommRegion  = 0x0020
	MemLoadable    = 0x0040
	MemRootShared  = 0x0080
	MemIOUnaligned = 0x0100
	MemIO8         = 1 << 16
	MemIO16        = 2 << 16
	MemIO32        = 4 << 16
	MemIO64        = 8 << 16
)

// PCI device types and shared-memory protocols (jailhouse_pci_device).
const (
	PCITypeDevice  = 0x01
	PCITypeBridge  = 0x02
	PCITypeIVSHMEM = 0x03

	ShmemProtoUndefined = 0x0000
	ShmemProtoVeth      = 0x0001
	ShmemProtoCustom    = 0x4000 // 0x4000..0x7fff
)

// PCI capability flags and the extended-capability marker.
const (
	PCIExtCap      = 0x8000
	PCICapsWrite   = 0x0001
	cacheRootShare = 0x0001
)

// Console types and flags (console.h).
const (
	ConTypeNone   = 0x0000
	ConTypeEFIFB  = 0x0001
	ConType8250   = 0x0002
	ConTypePL011  = 0x0003
	ConAccessPIO  = 0x0000
	ConAccessMMIO = 0x0001
	ConRegDist1   = 0x0000
	ConRegDist4   = 0x0002
)

// Errors of the cell config codec, for errors.Is.
var (
	// ErrFormat is a cell config that is not laid out as the pinned headers say.
	ErrFormat = errors.New("jailhouse: malformed cell config")
	// ErrSignature is a blob that does not start with "JHCELL".
	ErrSignature = errors.New("jailhouse: not a cell config (signature is not JHCELL)")
	// ErrRevision is a cell config of another JAILHOUSE_CONFIG_REVISION.
	ErrRevision = errors.New("jailhouse: cell config revision mismatch")
)

// Cell is struct jailhouse_cell_desc and the arrays that follow it.
type Cell struct {
	Name  string
	ID    uint32 // set by the driver; 0 in files
	Flags uint32
	// CPUs are the cell's CPU numbers; CPUSetSize is the bitmap's size in
	// bytes (0: the smallest multiple of 8 that holds them).
	CPUs       []int
	CPUSetSize uint32
	Memory     []Memory
	Caches     []Cache
	IRQChips   []IRQChip
	PIO        []PIO
	PCIDevices []PCIDevice
	PCICaps    []PCICap
	StreamIDs  []uint32

	VPCIIRQBase     uint32
	CPUResetAddress uint64
	MsgReplyTimeout uint64
	Console         Console
}

// Console is struct jailhouse_console.
type Console struct {
	Address  uint64
	Size     uint32
	Type     uint16
	Flags    uint16
	Divider  uint32
	GateNr   uint32
	ClockReg uint64
}

// Memory is struct jailhouse_memory.
type Memory struct {
	PhysStart, VirtStart, Size, Flags uint64
}

// Cache is struct jailhouse_cache.
type Cache struct {
	Start, Size uint32
	Type        uint8
	Flags       uint16
}

// IRQChip is struct jailhouse_irqchip.
type IRQChip struct {
	Address   uint64
	ID        uint32
	PinBase   uint32
	PinBitmap [4]uint32
}

// PIO is struct jailhouse_pio: a port I/O range the cell may access.
type PIO struct {
	Base, Length uint16
}

// PCIDevice is struct jailhouse_pci_device.
type PCIDevice struct {
	Type   uint8
	IOMMU  uint8
	Domain uint16
	// BDF is bus<<8 | device<<3 | function.
	BDF            uint16
	BARMask        [6]uint32
	CapsStart      uint16
	NumCaps        uint16
	NumMSIVectors  uint8
	MSI64Bits      bool
	MSIMaskable    bool
	NumMSIXVectors uint16
	MSIXRegionSize uint16
	MSIXAddress    uint64
	ShmemRegions   uint32 // shmem_regions_start
	ShmemDevID     uint8
	ShmemPeers     uint8
	ShmemProtocol  uint16
}

// PCICap is struct jailhouse_pci_capability.
type PCICap struct {
	ID, Start, Len, Flags uint16
}

// cpuSetSize is the bitmap size Encode writes.
func (c *Cell) cpuSetSize() uint32 {
	need := uint32(8)
	if m := slices.Max(append([]int{0}, c.CPUs...)); m >= 0 {
		need = uint32((m/64 + 1) * 8)
	}
	if c.CPUSetSize >= need {
		return c.CPUSetSize
	}
	return need
}

// Size is the encoded size (jailhouse_cell_config_size).
func (c *Cell) Size() int {
	return HeaderSize + int(c.cpuSetSize()) +
		len(c.Memory)*MemorySize + len(c.Caches)*CacheSize +
		len(c.IRQChips)*IRQChipSize + len(c.PIO)*PIOSize +
		len(c.PCIDevices)*PCIDeviceSize + len(c.PCICaps)*PCICapSize +
		len(c.StreamIDs)*StreamIDSize
}

// Encode lays the cell out as the pinned cell-config.h does: packed,
// little-endian, header then CPU bitmap, memory regions, cache regions,
// irqchips, PIO regions, PCI devices, PCI capabilities and stream ids.
func Encode(c *Cell) ([]byte, error) {
	if c.Name == "" || len(c.Name) > NameMaxLen || strings.IndexByte(c.Name, 0) >= 0 {
		return nil, fmt.Errorf("%w: cell name %q must be 1-%d bytes without NUL", ErrFormat, c.Name, NameMaxLen)
	}
	setSize := c.cpuSetSize()
	if setSize%8 != 0 {
		return nil, fmt.Errorf("%w: cpu_set_size %d is not a multiple of 8 (unsigned long)", ErrFormat, setSize)
	}
	for _, cpu := range c.CPUs {
		if cpu < 0 {
			return nil, fmt.Errorf("%w: negative CPU %d", ErrFormat, cpu)
		}
	}
	b := make([]byte, c.Size())
	le := binary.LittleEndian
	copy(b[offSignature:], Signature)
	le.PutUint16(b[offRevision:], Revision)
	copy(b[offName:offName+NameMaxLen], c.Name)
	le.PutUint32(b[offID:], c.ID)
	le.PutUint32(b[offFlags:], c.Flags)
	le.PutUint32(b[offCPUSetSize:], setSize)
	for i, n := range []int{len(c.Memory), len(c.Caches), len(c.IRQChips), len(c.PIO), len(c.PCIDevices), len(c.PCICaps), len(c.StreamIDs)} {
		le.PutUint32(b[offNumMemory+4*i:], uint32(n))
	}
	le.PutUint32(b[offVPCIIRQBase:], c.VPCIIRQBase)
	le.PutUint64(b[offCPUResetAddress:], c.CPUResetAddress)
	le.PutUint64(b[offMsgReplyTimeout:], c.MsgReplyTimeout)
	putConsole(b[offConsole:], c.Console)

	p := b[HeaderSize:]
	for _, cpu := range c.CPUs {
		p[cpu/8] |= 1 << (cpu % 8)
	}
	p = p[setSize:]
	for _, m := range c.Memory {
		le.PutUint64(p[0:], m.PhysStart)
		le.PutUint64(p[8:], m.VirtStart)
		le.PutUint64(p[16:], m.Size)
		le.PutUint64(p[24:], m.Flags)
		p = p[MemorySize:]
	}
	for _, k := range c.Caches {
		le.PutUint32(p[0:], k.Start)
		le.PutUint32(p[4:], k.Size)
		p[8] = k.Type
		le.PutUint16(p[10:], k.Flags)
		p = p[CacheSize:]
	}
	for _, q := range c.IRQChips {
		le.PutUint64(p[0:], q.Address)
		le.PutUint32(p[8:], q.ID)
		le.PutUint32(p[12:], q.PinBase)
		for i, w := range q.PinBitmap {
			le.PutUint32(p[16+4*i:], w)
		}
		p = p[IRQChipSize:]
	}
	for _, r := range c.PIO {
		le.PutUint16(p[0:], r.Base)
		le.PutUint16(p[2:], r.Length)
		p = p[PIOSize:]
	}
	for _, d := range c.PCIDevices {
		putPCIDevice(p, d)
		p = p[PCIDeviceSize:]
	}
	for _, k := range c.PCICaps {
		le.PutUint16(p[0:], k.ID)
		le.PutUint16(p[2:], k.Start)
		le.PutUint16(p[4:], k.Len)
		le.PutUint16(p[6:], k.Flags)
		p = p[PCICapSize:]
	}
	for _, s := range c.StreamIDs {
		le.PutUint32(p, s)
		p = p[StreamIDSize:]
	}
	return b, nil
}

func putConsole(b []byte, c Console) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], c.Address)
	le.PutUint32(b[8:], c.Size)
	le.PutUint16(b[12:], c.Type)
	le.PutUint16(b[14:], c.Flags)
	le.PutUint32(b[16:], c.Divider)
	le.PutUint32(b[20:], c.GateNr)
	le.PutUint64(b[24:], c.ClockReg)
}

func getConsole(b []byte) Console {
	le := binary.LittleEndian
	return Console{
		Address: le.Uint64(b[0:]), Size: le.Uint32(b[8:]), Type: le.Uint16(b[12:]), Flags: le.Uint16(b[14:]),
		Divider: le.Uint32(b[16:]), GateNr: le.Uint32(b[20:]), ClockReg: le.Uint64(b[24:]),
	}
}

// Offsets of the fields of struct jailhouse_pci_device.
const (
	pciOffType           = 0
	pciOffIOMMU          = 1
	pciOffDomain         = 2
	pciOffBDF            = 4
	pciOffBARMask        = 6
	pciOffCapsStart      = 30
	pciOffNumCaps        = 32
	pciOffNumMSIVectors  = 34
	pciOffMSIBits        = 35 // msi_64bits:1 (bit 0), msi_maskable:1 (bit 1)
	pciOffNumMSIXVectors = 36
	pciOffMSIXRegionSize = 38
	pciOffMSIXAddress    = 40
	pciOffShmemRegions   = 48
	pciOffShmemDevID     = 52
	pciOffShmemPeers     = 53
	pciOffShmemProtocol  = 54
)

func putPCIDevice(p []byte, d PCIDevice) {
	le := binary.LittleEndian
	p[pciOffType] = d.Type
	p[pciOffIOMMU] = d.IOMMU
	le.PutUint16(p[pciOffDomain:], d.Domain)
	le.PutUint16(p[pciOffBDF:], d.BDF)
	for i, m := range d.BARMask {
		le.PutUint32(p[pciOffBARMask+4*i:], m)
	}
	le.PutUint16(p[pciOffCapsStart:], d.CapsStart)
	le.PutUint16(p[pciOffNumCaps:], d.NumCaps)
	p[pciOffNumMSIVectors] = d.NumMSIVectors
	var bitsByte byte
	if d.MSI64Bits {
		bitsByte |= 1
	}
	if d.MSIMaskable {
		bitsByte |= 2
	}
	p[pciOffMSIBits] = bitsByte
	le.PutUint16(p[pciOffNumMSIXVectors:], d.NumMSIXVectors)
	le.PutUint16(p[pciOffMSIXRegionSize:], d.MSIXRegionSize)
	le.PutUint64(p[pciOffMSIXAddress:], d.MSIXAddress)
	le.PutUint32(p[pciOffShmemRegions:], d.ShmemRegions)
	p[pciOffShmemDevID] = d.ShmemDevID
	p[pciOffShmemPeers] = d.ShmemPeers
	le.PutUint16(p[pciOffShmemProtocol:], d.ShmemProtocol)
}

func getPCIDevice(p []byte) PCIDevice {
	le := binary.LittleEndian
	d := PCIDevice{
		Type: p[pciOffType], IOMMU: p[pciOffIOMMU], Domain: le.Uint16(p[pciOffDomain:]), BDF: le.Uint16(p[pciOffBDF:]),
		CapsStart: le.Uint16(p[pciOffCapsStart:]), NumCaps: le.Uint16(p[pciOffNumCaps:]),
		NumMSIVectors: p[pciOffNumMSIVectors], MSI64Bits: p[pciOffMSIBits]&1 != 0, MSIMaskable: p[pciOffMSIBits]&2 != 0,
		NumMSIXVectors: le.Uint16(p[pciOffNumMSIXVectors:]), MSIXRegionSize: le.Uint16(p[pciOffMSIXRegionSize:]),
		MSIXAddress: le.Uint64(p[pciOffMSIXAddress:]), ShmemRegions: le.Uint32(p[pciOffShmemRegions:]),
		ShmemDevID: p[pciOffShmemDevID], ShmemPeers: p[pciOffShmemPeers], ShmemProtocol: le.Uint16(p[pciOffShmemProtocol:]),
	}
	for i := range d.BARMask {
		d.BARMask[i] = le.Uint32(p[pciOffBARMask+4*i:])
	}
	return d
}

// Decode reads a cell config written for the pinned revision. It checks the
// signature, the revision, and that the counts in the header account for
// every byte; it never panics and allocates no more than the input's size
// justifies.
func Decode(b []byte) (*Cell, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrFormat, len(b), HeaderSize)
	}
	if string(b[offSignature:offSignature+6]) != Signature {
		return nil, fmt.Errorf("%w (got %q)", ErrSignature, b[offSignature:offSignature+6])
	}
	le := binary.LittleEndian
	if r := le.Uint16(b[offRevision:]); r != Revision {
		return nil, fmt.Errorf("%w: file has revision %d, mkrt writes and reads revision %d (Jailhouse %s)", ErrRevision, r, Revision, Release)
	}
	name := b[offName : offName+NameMaxLen+1]
	n := strings.IndexByte(string(name), 0)
	if n < 0 {
		return nil, fmt.Errorf("%w: cell name is not NUL-terminated", ErrFormat)
	}
	c := &Cell{
		Name:            string(name[:n]),
		ID:              le.Uint32(b[offID:]),
		Flags:           le.Uint32(b[offFlags:]),
		CPUSetSize:      le.Uint32(b[offCPUSetSize:]),
		VPCIIRQBase:     le.Uint32(b[offVPCIIRQBase:]),
		CPUResetAddress: le.Uint64(b[offCPUResetAddress:]),
		MsgReplyTimeout: le.Uint64(b[offMsgReplyTimeout:]),
		Console:         getConsole(b[offConsole:]),
	}
	var counts [7]uint64
	for i := range counts {
		counts[i] = uint64(le.Uint32(b[offNumMemory+4*i:]))
	}
	sizes := [7]uint64{MemorySize, CacheSize, IRQChipSize, PIOSize, PCIDeviceSize, PCICapSize, StreamIDSize}
	want := uint64(HeaderSize) + uint64(c.CPUSetSize)
	for i := range counts {
		want += counts[i] * sizes[i]
	}
	if want != uint64(len(b)) {
		return nil, fmt.Errorf("%w: header accounts for %d bytes, blob has %d", ErrFormat, want, len(b))
	}
	p := b[HeaderSize:]
	for i, by := range p[:c.CPUSetSize] {
		for by != 0 {
			bit := bits.TrailingZeros8(by)
			c.CPUs = append(c.CPUs, i*8+bit)
			by &^= 1 << bit
		}
	}
	p = p[c.CPUSetSize:]
	take := func(i int) []byte {
		n := int(counts[i] * sizes[i])
		s := p[:n]
		p = p[n:]
		return s
	}
	for s := take(0); len(s) > 0; s = s[MemorySize:] {
		c.Memory = append(c.Memory, Memory{PhysStart: le.Uint64(s[0:]), VirtStart: le.Uint64(s[8:]), Size: le.Uint64(s[16:]), Flags: le.Uint64(s[24:])})
	}
	for s := take(1); len(s) > 0; s = s[CacheSize:] {
		c.Caches = append(c.Caches, Cache{Start: le.Uint32(s[0:]), Size: le.Uint32(s[4:]), Type: s[8], Flags: le.Uint16(s[10:])})
	}
	for s := take(2); len(s) > 0; s = s[IRQChipSize:] {
		q := IRQChip{Address: le.Uint64(s[0:]), ID: le.Uint32(s[8:]), PinBase: le.Uint32(s[12:])}
		for i := range q.PinBitmap {
			q.PinBitmap[i] = le.Uint32(s[16+4*i:])
		}
		c.IRQChips = append(c.IRQChips, q)
	}
	for s := take(3); len(s) > 0; s = s[PIOSize:] {
		c.PIO = append(c.PIO, PIO{Base: le.Uint16(s[0:]), Length: le.Uint16(s[2:])})
	}
	for s := take(4); len(s) > 0; s = s[PCIDeviceSize:] {
		c.PCIDevices = append(c.PCIDevices, getPCIDevice(s))
	}
	for s := take(5); len(s) > 0; s = s[PCICapSize:] {
		c.PCICaps = append(c.PCICaps, PCICap{ID: le.Uint16(s[0:]), Start: le.Uint16(s[2:]), Len: le.Uint16(s[4:]), Flags: le.Uint16(s[6:])})
	}
	for s := take(6); len(s) > 0; s = s[StreamIDSize:] {
		c.StreamIDs = append(c.StreamIDs, le.Uint32(s))
	}
	return c, nil
}
