package multikernel_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/u-root/u-root/pkg/dt"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/supervisor/multikernel"
	"github.com/mkrt/mkrt/supervisor/multikernel/multikerneltest"
)

const cpuinfo = `processor	: 0
vendor_id	: GenuineIntel
apicid		: 0
initial apicid	: 0

processor	: 1
apicid		: 2

processor	: 2
apicid		: 4

processor	: 3
apicid		: 6
`

const iomem = `00000000-00000fff : Reserved
00100000-7fffffff : System RAM
80000000-bfffffff : multikernel
  80000000-8fffffff : mk-instance
`

func host(t testing.TB) multikernel.Host {
	t.Helper()
	fsys := fstest.MapFS{
		"proc/cpuinfo": {Data: []byte(cpuinfo)},
		"proc/iomem":   {Data: []byte(iomem)},
		"sys/fs/multikernel/device_tree": {Data: multikerneltest.Baseline(multikerneltest.BaselineSpec{
			CPUs: []uint64{4, 6}, MemoryBase: 0x80000000, MemoryBytes: 0x40000000,
			Devices: []multikerneltest.Device{{Label: "eth0", PCI: "0000:01:00.0"}, {Label: "nvme0", PCI: "0000:02:00.0"}},
		})},
	}
	h, err := multikernel.ReadHost(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func config() *configs.Config {
	return &configs.Config{
		Metadata: configs.Metadata{Name: "tank"},
		Partition: configs.Partition{
			Backend: configs.BackendMultikernel, CPUs: configs.CPUList{2, 3}, Memory: 256 << 20, SharedMemory: 4 << 20,
			NICs:   []configs.NIC{{PCI: "01:00.0"}},
			Kernel: configs.Kernel{Cmdline: "ip=10.0.0.2::10.0.0.1:255.255.255.0"},
		},
	}
}

func TestReadHost(t *testing.T) {
	h := host(t)
	if h.APICIDs[3] != 6 || h.APICIDs[0] != 0 || len(h.APICIDs) != 4 {
		t.Errorf("APIC ids %v", h.APICIDs)
	}
	if h.MemoryBase != 0x80000000 || h.MemoryBytes != 0x40000000 {
		t.Errorf("pool %#x+%#x", h.MemoryBase, h.MemoryBytes)
	}
	if h.Devices["0000:01:00.0"] != "eth0" || h.Devices["0000:02:00.0"] != "nvme0" {
		t.Errorf("devices %v", h.Devices)
	}
	if len(h.Pool) != 2 || h.Pool[0] != 4 || h.Pool[1] != 6 {
		t.Errorf("pool cpus %v", h.Pool)
	}
}

func TestReadHostWithoutBaseline(t *testing.T) {
	h, err := multikernel.ReadHost(fstest.MapFS{"proc/cpuinfo": {Data: []byte(cpuinfo)}, "proc/iomem": {Data: []byte(iomem)}})
	if err != nil {
		t.Fatal(err)
	}
	if h.Baseline || h.MemoryBase != 0x80000000 || h.MemoryBytes != 0x40000000 {
		t.Errorf("host %+v", h)
	}
	_, err = multikernel.ReadHost(fstest.MapFS{"proc/cpuinfo": {Data: []byte(cpuinfo)},
		"proc/iomem": {Data: []byte("00000000-00000000 : multikernel\n")}})
	if !errors.Is(err, multikernel.ErrNoPool) || !strings.Contains(err.Error(), "root") {
		t.Errorf("unprivileged iomem: %v", err)
	}
}

func TestReadHost32BitCells(t *testing.T) {
	// The reference accepts 32-bit cpus cells when reading.
	root := dt.NewNode("", dt.WithChildren(dt.NewNode("resources", dt.WithProperty(
		dt.PropertyU32Array("cpus", []uint32{4, 5, 6}),
		dt.PropertyU32("memory-base", 0x40000000),
		dt.PropertyU64("memory-bytes", 0x1c0000000)))))
	var b bytes.Buffer
	if _, err := (&dt.FDT{Header: dt.Header{Magic: dt.Magic, Version: 17, LastCompVersion: 16}, RootNode: root}).Write(&b); err != nil {
		t.Fatal(err)
	}
	h, err := multikernel.ParseBaseline(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Pool) != 3 || h.Pool[2] != 6 || h.MemoryBase != 0x40000000 || h.MemoryBytes != 0x1c0000000 {
		t.Errorf("baseline %+v", h)
	}
}

func TestGenerate(t *testing.T) {
	p, err := multikernel.Generate(config(), host(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "tank" || p.ID != multikernel.InstanceID("tank") || p.ID < 1 || p.ID > 511 {
		t.Errorf("name/id %q %d", p.Name, p.ID)
	}
	if len(p.CPUs) != 2 || p.CPUs[0] != 4 || p.CPUs[1] != 6 {
		t.Errorf("cpus (APIC ids) %v", p.CPUs)
	}
	if p.MemoryBase != 0x80000000 || p.MemoryBytes != 256<<20 {
		t.Errorf("memory %#x+%#x", p.MemoryBase, p.MemoryBytes)
	}
	if p.ShmBytes != 4<<20 || p.ShmBase != 0x80000000+256<<20-4<<20 {
		t.Errorf("shm %#x+%#x", p.ShmBase, p.ShmBytes)
	}
	if len(p.Devices) != 1 || p.Devices[0] != "eth0" {
		t.Errorf("devices %v", p.Devices)
	}
	for _, want := range []string{"memmap=0x400000$0x8fc00000", "mkrt.shm=phys:0x8fc00000,0x400000", "nohz_full=1", "irqaffinity=0", "ip=10.0.0.2"} {
		if !strings.Contains(p.Cmdline, want) {
			t.Errorf("cmdline %q lacks %q", p.Cmdline, want)
		}
	}
	// What mkrt-init parses out of the command line is the plan's region.
	loc, err := pid1.FindShm(fstest.MapFS{}, pid1.ParseCmdline(p.Cmdline)["shm"])
	if err != nil || loc.Phys != p.ShmBase || loc.Size != p.ShmBytes {
		t.Errorf("FindShm = %+v, %v", loc, err)
	}
}

func TestGenerateErrors(t *testing.T) {
	h := host(t)
	for name, tc := range map[string]struct {
		edit func(c *configs.Config)
		want error
		text string
	}{
		"cpu not in pool":     {func(c *configs.Config) { c.Partition.CPUs = configs.CPUList{1, 2} }, multikernel.ErrCPUNotInPool, "CPU 1 (APIC id 2)"},
		"cpu not on host":     {func(c *configs.Config) { c.Partition.CPUs = configs.CPUList{9} }, multikernel.ErrCPUNotInPool, "CPU 9"},
		"no cpus":             {func(c *configs.Config) { c.Partition.CPUs = nil }, multikernel.ErrCPUNotInPool, "empty"},
		"memory too small":    {func(c *configs.Config) { c.Partition.Memory = 32 << 20 }, multikernel.ErrMemoryTooSmall, "32 MiB"},
		"memory beyond pool":  {func(c *configs.Config) { c.Partition.Memory = 2 << 30 }, multikernel.ErrMemoryTooSmall, "pool has 1024 MiB"},
		"nic not in baseline": {func(c *configs.Config) { c.Partition.NICs = []configs.NIC{{PCI: "0000:05:00.0"}} }, multikernel.ErrNICNotInBaseline, "0000:05:00.0"},
		"nic by name":         {func(c *configs.Config) { c.Partition.NICs = []configs.NIC{{Interface: "eth1"}} }, multikernel.ErrNICNotInBaseline, "set pci"},
	} {
		t.Run(name, func(t *testing.T) {
			c := config()
			tc.edit(c)
			_, err := multikernel.Generate(c, h)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
}

// TestOverlayLayout checks the DTBO byte for byte where the layout was
// computed by hand from the devicetree specification (v0.4 §5): the
// header, the memory reservation block, the struct block's tokens and
// property name offsets, and the 64-bit CPU cells.
func TestOverlayLayout(t *testing.T) {
	p := &multikernel.Plan{Name: "tank", ID: 7, CPUs: []uint64{2, 3}, MemoryBase: 0x80000000, MemoryBytes: 0x10000000, Devices: []string{"eth0"}}
	b, err := p.Overlay()
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	u32 := func(off int) uint32 { return be.Uint32(b[off:]) }
	header := []struct {
		off  int
		want uint32
		what string
	}{
		{0x00, 0xd00dfeed, "magic"},
		{0x04, 399, "totalsize"},
		{0x08, 64, "off_dt_struct"},
		{0x0c, 328, "off_dt_strings"},
		{0x10, 48, "off_mem_rsvmap"},
		{0x14, 17, "version"},
		{0x18, 16, "last_comp_version"},
		{0x20, 71, "size_dt_strings"},
		{0x24, 264, "size_dt_struct"},
	}
	for _, h := range header {
		if got := u32(h.off); got != h.want {
			t.Errorf("%s at %#x = %d, want %d", h.what, h.off, got, h.want)
		}
	}
	if len(b) != 399 {
		t.Fatalf("len = %d, want 399", len(b))
	}
	if !bytes.Equal(b[48:64], make([]byte, 16)) {
		t.Errorf("memory reservation block is not one terminating zero entry: % x", b[48:64])
	}
	const begin, end, prop, fdtEnd = 1, 2, 3, 9
	tokens := []struct {
		off  int
		want uint32
	}{
		{64, begin}, {68, 0}, // root, empty name
		{72, prop}, {76, 26}, {80, 0}, // compatible, nameoff 0
		{112, begin}, {128, begin}, {144, begin}, // fragment@0, __overlay__, instance-create
		{164, prop}, {168, 5}, {172, 11}, // instance-name "tank\0", nameoff 11
		{184, prop}, {188, 4}, {192, 25}, {196, 7}, // id = <7>, nameoff 25
		{200, begin},                      // resources
		{216, prop}, {220, 16}, {224, 28}, // cpus: 2 cells of 64 bits, nameoff 28
		{244, prop}, {248, 8}, {252, 33}, // memory-base, nameoff 33
		{264, prop}, {268, 8}, {272, 45}, // memory-bytes, nameoff 45
		{284, prop}, {288, 5}, {292, 58}, // device-names "eth0\0", nameoff 58
		{304, end}, {308, end}, {312, end}, {316, end}, {320, end}, {324, fdtEnd},
	}
	for _, tk := range tokens {
		if got := u32(tk.off); got != tk.want {
			t.Errorf("struct word at %d = %d, want %d", tk.off, got, tk.want)
		}
	}
	if want := []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3}; !bytes.Equal(b[228:244], want) {
		t.Errorf("cpus cells % x, want % x", b[228:244], want)
	}
	if want := []byte{0, 0, 0, 0, 0x80, 0, 0, 0}; !bytes.Equal(b[256:264], want) {
		t.Errorf("memory-base % x", b[256:264])
	}
	if got := string(b[84:110]); got != "linux,multikernel-overlay\x00" {
		t.Errorf("compatible %q", got)
	}
	wantStrings := "compatible\x00instance-name\x00id\x00cpus\x00memory-base\x00memory-bytes\x00device-names\x00"
	if got := string(b[328:]); got != wantStrings {
		t.Errorf("strings block %q, want %q", got, wantStrings)
	}
}

// TestOverlayRoundTrip reads the overlay back with u-root's FDT reader.
func TestOverlayRoundTrip(t *testing.T) {
	p, err := multikernel.Generate(config(), host(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Overlay()
	if err != nil {
		t.Fatal(err)
	}
	f, err := dt.ReadFDT(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	create, ok := f.RootNode.NodeByName("instance-create")
	if !ok {
		t.Fatal("no instance-create node")
	}
	name, _ := create.LookProperty("instance-name")
	id, _ := create.LookProperty("id")
	if s, _ := name.AsString(); s != "tank" {
		t.Errorf("instance-name %q", s)
	}
	if v, _ := id.AsU32(); int(v) != p.ID {
		t.Errorf("id %d, want %d", v, p.ID)
	}
	res, _ := create.LookupChildByName("resources")
	mb, _ := res.LookProperty("memory-bytes")
	if v, _ := mb.AsU64(); v != p.MemoryBytes {
		t.Errorf("memory-bytes %#x", v)
	}
	got, err := multikerneltest.ParseOverlay(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "tank" || got.ID != p.ID || len(got.CPUs) != 2 || got.CPUs[1] != 6 || got.Devices[0] != "eth0" {
		t.Errorf("fake kernel read %+v", got)
	}
}

// TestDTSCompiles compiles the source form with dtc (when installed) and
// compares the structure with Overlay's.
func TestDTSCompiles(t *testing.T) {
	dtc, err := exec.LookPath("dtc")
	if err != nil {
		t.Skip("dtc not installed (Debian device-tree-compiler): DTS not compiled")
	}
	p, err := multikernel.Generate(config(), host(t))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "o.dtbo")
	cmd := exec.Command(dtc, "-I", "dts", "-O", "dtb", "-o", out, "-")
	cmd.Stdin = strings.NewReader(p.DTS())
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dtc: %v\n%s\n%s", err, msg, p.DTS())
	}
	f, err := dt.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Overlay()
	g, err := dt.ReadFDT(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.RootNode.String() != g.RootNode.String() {
		t.Errorf("dtc tree\n%s\ndiffers from Overlay's\n%s", f.RootNode, g.RootNode)
	}
}

func BenchmarkGenerateOverlay(b *testing.B) {
	h := host(b)
	c := config()
	for b.Loop() {
		p, err := multikernel.Generate(c, h)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Overlay(); err != nil {
			b.Fatal(err)
		}
	}
}
