package jailhouse_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor/jailhouse"
)

const nicAddr = "0000:03:00.0"

// e1000eSysfs is an Intel 82574L as sysfs shows it to root: BAR0 128 KiB
// of registers, BAR2 32 bytes of I/O ports, BAR3 16 KiB holding the MSI-X
// table; capabilities PM, MSI (64-bit), PCIe v1, MSI-X (5 vectors, table
// at BAR3 + 0), and the extended AER and serial-number capabilities.
func e1000eSysfs() fstest.MapFS {
	cfg := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint16(cfg[0:], 0x8086)
	le.PutUint16(cfg[2:], 0x10d3)
	le.PutUint16(cfg[6:], 0x0010) // status: capability list
	cfg[0x34] = 0xc8
	cfg[0xc8], cfg[0xc9] = 0x01, 0xd0 // PM -> MSI
	cfg[0xd0], cfg[0xd1] = 0x05, 0xe0 // MSI -> PCIe
	le.PutUint16(cfg[0xd2:], 0x0080)  // 64-bit, 1 vector
	cfg[0xe0], cfg[0xe1] = 0x10, 0xa0 // PCIe -> MSI-X
	le.PutUint16(cfg[0xe2:], 0x0001)  // version 1
	cfg[0xa0], cfg[0xa1] = 0x11, 0x00 // MSI-X, end
	le.PutUint16(cfg[0xa2:], 0x0004)  // 5 vectors
	le.PutUint32(cfg[0xa4:], 0x3)     // table at BAR3 + 0
	le.PutUint32(cfg[0x100:], 0x00010001|0x140<<20)
	le.PutUint32(cfg[0x140:], 0x00010003) // DSN, end
	res := strings.Join([]string{
		"0x00000000febc0000 0x00000000febdffff 0x0000000000040200",
		"0x0000000000000000 0x0000000000000000 0x0000000000000000",
		"0x000000000000c000 0x000000000000c01f 0x0000000000040101",
		"0x00000000febe0000 0x00000000febe3fff 0x0000000000040200",
		"0x0000000000000000 0x0000000000000000 0x0000000000000000",
		"0x0000000000000000 0x0000000000000000 0x0000000000000000",
		"0x0000000000000000 0x0000000000000000 0x0000000000000000",
	}, "\n") + "\n"
	return fstest.MapFS{
		"bus/pci/devices/" + nicAddr + "/config":   {Data: cfg},
		"bus/pci/devices/" + nicAddr + "/resource": {Data: []byte(res)},
	}
}

func nicConfig(t testing.TB) *configs.Config {
	cfg := loadExample(t, "tank-level.yaml")
	cfg.Partition.Backend = configs.BackendJailhouse
	cfg.Partition.CPUs = configs.CPUList{2, 3}
	cfg.Partition.NICs = []configs.NIC{{PCI: nicAddr, Address: "10.10.0.2/24"}}
	return cfg
}

func nicPlan(t testing.TB) *jailhouse.Plan {
	t.Helper()
	p, err := jailhouse.Generate(nicConfig(t), jailhouse.Options{MemoryBase: tankBase, Sys: e1000eSysfs(), IOMMU: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGenerateNIC(t *testing.T) {
	c := nicPlan(t).Cell
	if len(c.PCIDevices) != 2 {
		t.Fatalf("%d PCI devices", len(c.PCIDevices))
	}
	d := c.PCIDevices[1]
	want := jailhouse.PCIDevice{
		Type: jailhouse.PCITypeDevice, IOMMU: 1, BDF: 3 << 8,
		BARMask:   [6]uint32{0xfffe0000, 0, 0xffffffe0, 0xffffc000, 0, 0},
		CapsStart: 0, NumCaps: 6, NumMSIVectors: 1, MSI64Bits: true,
		NumMSIXVectors: 5, MSIXRegionSize: 0x1000, MSIXAddress: 0xfebe0000,
	}
	if d != want {
		t.Errorf("NIC device\n got %+v\nwant %+v", d, want)
	}
	caps := []jailhouse.PCICap{
		{ID: 0x01, Start: 0xc8, Len: 8, Flags: jailhouse.PCICapsWrite},
		{ID: 0x05, Start: 0xd0, Len: 14, Flags: jailhouse.PCICapsWrite},
		{ID: 0x10, Start: 0xe0, Len: 0x14},
		{ID: 0x11, Start: 0xa0, Len: 12, Flags: jailhouse.PCICapsWrite},
		{ID: 0x8001, Start: 0x100, Len: 0x48},
		{ID: 0x8003, Start: 0x140, Len: 12},
	}
	if len(c.PCICaps) != len(caps) {
		t.Fatalf("caps %+v", c.PCICaps)
	}
	for i := range caps {
		if c.PCICaps[i] != caps[i] {
			t.Errorf("cap %d: %+v, want %+v", i, c.PCICaps[i], caps[i])
		}
	}
	io := uint64(jailhouse.MemRead | jailhouse.MemWrite | jailhouse.MemIO)
	mmio := c.Memory[7:]
	wantMMIO := []jailhouse.Memory{
		{PhysStart: 0xfebc0000, VirtStart: 0xfebc0000, Size: 0x20000, Flags: io},
		{PhysStart: 0xfebe1000, VirtStart: 0xfebe1000, Size: 0x3000, Flags: io}, // MSI-X table page left out
	}
	if len(mmio) != 2 || mmio[0] != wantMMIO[0] || mmio[1] != wantMMIO[1] {
		t.Errorf("device memory %+v", mmio)
	}
	if len(c.PIO) != 2 || c.PIO[1] != (jailhouse.PIO{Base: 0xc000, Length: 0x20}) {
		t.Errorf("pio %+v", c.PIO)
	}
	if c.CPUs[0] != 2 || c.CPUs[1] != 3 {
		t.Errorf("cpus %v", c.CPUs)
	}
}

func TestGenerateRefuses(t *testing.T) {
	cases := map[string]func(*configs.Config, *jailhouse.Options){
		"cpu 0":         func(c *configs.Config, _ *jailhouse.Options) { c.Partition.CPUs = configs.CPUList{0, 1} },
		"no cpus":       func(c *configs.Config, _ *jailhouse.Options) { c.Partition.CPUs = nil },
		"tiny memory":   func(c *configs.Config, _ *jailhouse.Options) { c.Partition.Memory = 16 << 20 },
		"odd memory":    func(c *configs.Config, _ *jailhouse.Options) { c.Partition.Memory = 64<<20 + 4096 },
		"no base":       func(_ *configs.Config, o *jailhouse.Options) { o.MemoryBase = 0 },
		"unaligned":     func(_ *configs.Config, o *jailhouse.Options) { o.MemoryBase = tankBase + 1 },
		"no sysfs":      func(_ *configs.Config, o *jailhouse.Options) { o.Sys = nil },
		"missing nic":   func(c *configs.Config, _ *jailhouse.Options) { c.Partition.NICs[0].PCI = "0000:04:00.0" },
		"bad address":   func(c *configs.Config, _ *jailhouse.Options) { c.Partition.NICs[0].PCI = "eth0" },
		"overlap":       func(_ *configs.Config, o *jailhouse.Options) { o.MemoryBase = 0xfeb00000 },
		"long name":     func(c *configs.Config, _ *jailhouse.Options) { c.Metadata.Name = strings.Repeat("n", 32) },
		"interface nic": func(c *configs.Config, _ *jailhouse.Options) { c.Partition.NICs[0] = configs.NIC{Interface: "eth1"} },
	}
	for name, f := range cases {
		cfg := nicConfig(t)
		o := jailhouse.Options{MemoryBase: tankBase, Sys: e1000eSysfs()}
		f(cfg, &o)
		if _, err := jailhouse.Generate(cfg, o); !errors.Is(err, jailhouse.ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", name, err)
		}
	}
}

func TestShortConfigSpace(t *testing.T) {
	sys := e1000eSysfs()
	sys["bus/pci/devices/"+nicAddr+"/config"].Data = make([]byte, 64)
	_, err := jailhouse.ReadHostDevice(sys, nicAddr)
	if !errors.Is(err, jailhouse.ErrDevice) || !strings.Contains(err.Error(), "as root") {
		t.Fatalf("err %v", err)
	}
}

func TestCorruptCapabilityList(t *testing.T) {
	sys := e1000eSysfs()
	cfg := sys["bus/pci/devices/"+nicAddr+"/config"].Data
	cfg[0xa1] = 0xc8 // MSI-X points back to PM: a loop
	if _, err := jailhouse.ReadHostDevice(sys, nicAddr); !errors.Is(err, jailhouse.ErrDevice) {
		t.Fatalf("loop: err %v", err)
	}
}

func TestRootCellSnippet(t *testing.T) {
	s := tankPlan(t).RootCellSnippet()
	for _, want := range []string{
		".phys_start = 0x4a000000", ".size = 0x1000", "JAILHOUSE_MEM_READ | JAILHOUSE_MEM_ROOTSHARED",
		".phys_start = 0x4a001000", ".size = 0x400000", "JAILHOUSE_MEM_READ | JAILHOUSE_MEM_WRITE | JAILHOUSE_MEM_ROOTSHARED",
		"{ 0 },", ".shmem_dev_id = 0", ".shmem_protocol = 0x4d4b", ".bdf = 0x70",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
}
