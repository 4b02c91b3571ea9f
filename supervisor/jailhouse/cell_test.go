package jailhouse_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor/jailhouse"
)

const tankBase = 0x3a000000

func loadExample(t testing.TB, name string) *configs.Config {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	cfg, err := configs.Load(filepath.Join(filepath.Dir(file), "../../configs/examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func tankPlan(t testing.TB) *jailhouse.Plan {
	t.Helper()
	p, err := jailhouse.Generate(loadExample(t, "tank-level.yaml"), jailhouse.Options{MemoryBase: tankBase})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// layout is a blob built by hand, field by field at offsets computed from
// the pinned headers, to compare the encoder with.
type layout []byte

func (l layout) u8(off int, v uint8)   { l[off] = v }
func (l layout) u16(off int, v uint16) { binary.LittleEndian.PutUint16(l[off:], v) }
func (l layout) u32(off int, v uint32) { binary.LittleEndian.PutUint32(l[off:], v) }
func (l layout) u64(off int, v uint64) { binary.LittleEndian.PutUint64(l[off:], v) }

func TestStructSizes(t *testing.T) {
	// Sums of the packed fields of cell-config.h / console.h / jailhouse.h (v0.12).
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"jailhouse_cell_desc", jailhouse.HeaderSize, 6 + 2 + 32 + 4 + 4 + 9*4 + 8 + 8 + 32},
		{"jailhouse_console", jailhouse.ConsoleSize, 8 + 4 + 2 + 2 + 4 + 4 + 8},
		{"jailhouse_memory", jailhouse.MemorySize, 4 * 8},
		{"jailhouse_cache", jailhouse.CacheSize, 4 + 4 + 1 + 1 + 2},
		{"jailhouse_irqchip", jailhouse.IRQChipSize, 8 + 4 + 4 + 4*4},
		{"jailhouse_pio", jailhouse.PIOSize, 2 + 2},
		{"jailhouse_pci_device", jailhouse.PCIDeviceSize, 1 + 1 + 2 + 2 + 6*4 + 2 + 2 + 1 + 1 + 2 + 2 + 8 + 4 + 1 + 1 + 2},
		{"jailhouse_pci_capability", jailhouse.PCICapSize, 4 * 2},
		{"jailhouse_cell_create", jailhouse.CellCreateSize, 8 + 4 + 4},
		{"jailhouse_cell_id", jailhouse.CellIDSize, 4 + 4 + 32},
		{"jailhouse_cell_load", jailhouse.CellLoadSize, 40 + 4 + 4},
		{"jailhouse_preload_image", jailhouse.PreloadImageSize, 4 * 8},
	} {
		if c.got != c.want {
			t.Errorf("sizeof(struct %s) = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestTankCellBytes checks the cell config of the tank demo against a blob
// laid out by hand.
func TestTankCellBytes(t *testing.T) {
	p := tankPlan(t)
	got, err := jailhouse.Encode(p.Cell)
	if err != nil {
		t.Fatal(err)
	}
	// 132 header + 8 cpu set + 7 regions*32 + 1 pio*4 + 1 pci*56
	want := make(layout, 132+8+7*32+4+56)
	copy(want[0:], "JHCELL")
	want.u16(6, 12)
	copy(want[8:], "tank-level")
	want.u32(40, 0)          // id
	want.u32(44, 0x40000001) // PASSIVE_COMMREG | VIRTUAL_CONSOLE_PERMITTED
	want.u32(48, 8)          // cpu_set_size
	want.u32(52, 7)          // num_memory_regions
	want.u32(56, 0)          // num_cache_regions
	want.u32(60, 0)          // num_irqchips
	want.u32(64, 1)          // num_pio_regions
	want.u32(68, 1)          // num_pci_devices
	want.u32(72, 0)          // num_pci_caps
	want.u32(76, 0)          // num_stream_ids
	want.u32(80, 0)          // vpci_irq_base
	want.u64(84, 0)          // cpu_reset_address
	want.u64(92, 0)          // msg_reply_timeout
	want.u64(100, 0x3f8)     // console.address
	want.u32(108, 0)         // console.size
	want.u16(112, 2)         // console.type = 8250
	want.u16(114, 0)         // console.flags = PIO | REGDIST_1
	want.u8(132, 0x02)       // cpus: CPU 1
	region := func(i int, phys, virt, size, flags uint64) {
		o := 140 + 32*i
		want.u64(o, phys)
		want.u64(o+8, virt)
		want.u64(o+16, size)
		want.u64(o+24, flags)
	}
	region(0, 0x3a000000, 0, 0x100000, 0x4f)          // low RAM: R W X DMA LOADABLE
	region(1, 0, 0x100000, 0x1000, 0x23)              // comm region: R W COMM_REGION
	region(2, 0x3a100000, 0x200000, 0x0ff00000, 0x4f) // high RAM: 256Mi - 1Mi
	region(3, 0x4a000000, 0x4a000000, 0x1000, 0x81)   // state table: R ROOTSHARED
	region(4, 0x4a001000, 0x4a001000, 0x400000, 0x83) // read-write: R W ROOTSHARED, 4Mi
	// regions 5 and 6: empty output sections
	want.u16(364, 0x3f8) // pio base
	want.u16(366, 8)     // pio length
	d := 368
	want.u8(d+0, 3)           // type IVSHMEM
	want.u8(d+1, 0)           // iommu
	want.u16(d+2, 0)          // domain
	want.u16(d+4, 0x0e<<3)    // bdf 00:0e.0
	want.u32(d+6, 0xfffff000) // bar_mask[0]
	want.u32(d+10, 0xfffffe00)
	want.u16(d+36, 1)      // num_msix_vectors
	want.u32(d+48, 3)      // shmem_regions_start
	want.u8(d+52, 1)       // shmem_dev_id
	want.u8(d+53, 2)       // shmem_peers
	want.u16(d+54, 0x4d4b) // shmem_protocol
	if !bytes.Equal(got, want) {
		for i := range got {
			if i >= len(want) || got[i] != want[i] {
				t.Fatalf("first difference at byte %d: got %#x want %#x (len %d vs %d)", i, got[i], want[i], len(got), len(want))
			}
		}
		t.Fatalf("length %d, want %d", len(got), len(want))
	}
	if p.WindowSize != 0x10000000+0x1000+0x400000 || p.HostCmdline() != "memmap=0x10401000$0x3a000000" {
		t.Errorf("window %#x, cmdline %s", p.WindowSize, p.HostCmdline())
	}
	if l := p.ShmLocation(); l.Addr != 0x4a001000 || l.Size != 4<<20 || l.Kind != "mem" {
		t.Errorf("shm location %+v", l)
	}
}

func TestRoundTrip(t *testing.T) {
	cells := []*jailhouse.Cell{tankPlan(t).Cell, nicPlan(t).Cell, {
		Name: "all-arrays", ID: 7, Flags: jailhouse.CellTestDevice, CPUs: []int{2, 3, 64, 130}, CPUSetSize: 24,
		Memory:          []jailhouse.Memory{{PhysStart: 1, VirtStart: 2, Size: 3, Flags: 4}},
		Caches:          []jailhouse.Cache{{Start: 1, Size: 2, Type: 3, Flags: 1}},
		IRQChips:        []jailhouse.IRQChip{{Address: 0xfec00000, ID: 0xff00, PinBase: 0, PinBitmap: [4]uint32{1, 2, 3, 4}}},
		PIO:             []jailhouse.PIO{{Base: 0x2f8, Length: 8}},
		PCIDevices:      []jailhouse.PCIDevice{{Type: 1, MSI64Bits: true, MSIMaskable: true, BARMask: [6]uint32{1, 2, 3, 4, 5, 6}}},
		PCICaps:         []jailhouse.PCICap{{ID: 0x8001, Start: 0x100, Len: 0x48}},
		StreamIDs:       []uint32{9, 10},
		VPCIIRQBase:     123,
		CPUResetAddress: 0xfffffff0,
		MsgReplyTimeout: 100,
		Console:         jailhouse.Console{Address: 1, Size: 2, Type: 3, Flags: 4, Divider: 5, GateNr: 6, ClockReg: 7},
	}}
	for _, c := range cells {
		b, err := jailhouse.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != c.Size() {
			t.Errorf("%s: %d bytes, Size says %d", c.Name, len(b), c.Size())
		}
		d, err := jailhouse.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d, c) {
			t.Errorf("%s: Decode(Encode(x)) != x\n got %+v\nwant %+v", c.Name, d, c)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good, _ := jailhouse.Encode(tankPlan(t).Cell)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, jailhouse.ErrFormat},
		{"signature", mut(func(b []byte) []byte { b[0] = 'X'; return b }), jailhouse.ErrSignature},
		{"system config", mut(func(b []byte) []byte { copy(b, "JHSYST"); return b }), jailhouse.ErrSignature},
		{"revision", mut(func(b []byte) []byte { b[6] = 13; return b }), jailhouse.ErrRevision},
		{"truncated", good[:len(good)-1], jailhouse.ErrFormat},
		{"trailing", append(bytes.Clone(good), 0), jailhouse.ErrFormat},
		{"huge count", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[52:], 0xffffffff); return b }), jailhouse.ErrFormat},
		{"name without NUL", mut(func(b []byte) []byte { copy(b[8:40], strings.Repeat("x", 32)); return b }), jailhouse.ErrFormat},
	} {
		if _, err := jailhouse.Decode(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := jailhouse.Encode(tankPlan(f).Cell)
	f.Add(good)
	f.Add(good[:jailhouse.HeaderSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := jailhouse.Decode(b)
		if err != nil {
			return
		}
		again, err := jailhouse.Encode(c)
		if err != nil {
			return // e.g. an empty name: decodable, not encodable
		}
		c2, err := jailhouse.Decode(again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-encoded cell differs: %v", err)
		}
	})
}

func TestEncodeRefuses(t *testing.T) {
	for _, c := range []*jailhouse.Cell{
		{Name: ""},
		{Name: strings.Repeat("n", 32)},
		{Name: "x", CPUs: []int{-1}},
		{Name: "x", CPUs: []int{1}, CPUSetSize: 12},
	} {
		if _, err := jailhouse.Encode(c); !errors.Is(err, jailhouse.ErrFormat) {
			t.Errorf("%+v: err %v", c, err)
		}
	}
}

func TestCellText(t *testing.T) {
	var b strings.Builder
	if err := tankPlan(t).Cell.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`cell "tank-level" (Jailhouse v0.12, config revision 12, 424 bytes)`,
		"PASSIVE_COMMREG|VIRTUAL_CONSOLE_PERMITTED",
		"cpus            1 (cpu_set_size 8)",
		"8250 pio 0x3f8",
		"READ|WRITE|EXECUTE|DMA|LOADABLE",
		"comm region",
		"ivshmem 0000:00:0e.0 read-write section",
		"ivshmem 0000:00:0e.0 state table",
		"shmem regions from 3, dev id 1 of 2 peers, protocol 0x4d4b",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}

func TestBDF(t *testing.T) {
	d, bdf, err := jailhouse.ParseBDF("0000:03:1f.7")
	if err != nil || d != 0 || bdf != 3<<8|0x1f<<3|7 || jailhouse.FormatBDF(d, bdf) != "0000:03:1f.7" {
		t.Fatalf("%x %x %v", d, bdf, err)
	}
	for _, bad := range []string{"", "03:00", "0000:03:20.0", "0000:03:00.8", "0000:100:00.0", "zz:00.0"} {
		if _, _, err := jailhouse.ParseBDF(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	c := nicPlan(b).Cell
	b.ReportAllocs()
	for b.Loop() {
		raw, err := jailhouse.Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jailhouse.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}
