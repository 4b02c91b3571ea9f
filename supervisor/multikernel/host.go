package multikernel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/u-root/u-root/pkg/dt"
)

// Paths read by ReadHost, relative to the root of the fs.FS it is given
// (os.DirFS("/") on a real host).
const (
	CPUInfoPath  = "proc/cpuinfo"
	IOMemPath    = "proc/iomem"
	BaselinePath = "sys/fs/multikernel/device_tree"
)

// Host is what the generator needs to know of the machine: how logical CPUs
// map to physical ids, the memory pool the host gave away and the devices
// of the baseline device tree.
type Host struct {
	// APICIDs maps a logical CPU number (what partition.cpus lists) to its
	// physical APIC id.
	APICIDs map[int]int
	// MemoryBase and MemoryBytes are the memory pool instances are carved
	// from (the baseline's memory-base/memory-bytes, or the "multikernel"
	// range of /proc/iomem when there is no baseline yet).
	MemoryBase, MemoryBytes uint64
	// Devices maps a PCI address (0000:01:00.0) in the baseline to its
	// label (eth0), the name an overlay's device-names uses.
	Devices map[string]string
	// Pool is the baseline's cpus: the physical ids the host gives away.
	// Empty when there is no baseline yet (no check is then possible).
	Pool []uint64
	// Baseline reports whether a baseline device tree was found.
	Baseline bool
	// Busy are memory ranges of the pool that instances this supervisor
	// runs already hold (a hand-over starts a second instance beside the
	// running one); Generate places an instance's memory clear of them.
	Busy []Range
}

// Range is a range of physical memory.
type Range = kexec.Range

// Errors of the generator, for errors.Is.
var (
	// ErrCPUNotInPool is a partition CPU the host did not give to the
	// multikernel pool (or that the host does not have).
	ErrCPUNotInPool = errors.New("multikernel: CPU not given to the multikernel pool")
	// ErrMemoryTooSmall is a partition memory size too small for the
	// kernel and the shared region, or larger than the pool.
	ErrMemoryTooSmall = errors.New("multikernel: memory too small")
	// ErrNICNotInBaseline is a dedicated NIC the baseline does not list.
	ErrNICNotInBaseline = errors.New("multikernel: NIC not in the baseline device tree")
	// ErrNoPool is a host with neither a baseline nor a multikernel range.
	ErrNoPool = errors.New("multikernel: no memory pool")
	// ErrBadDeviceTree is a device tree that does not have the pinned shape.
	ErrBadDeviceTree = errors.New("multikernel: bad device tree")
)

// ReadHost reads /proc/cpuinfo (apicid per processor), /proc/iomem (the
// reserved "multikernel" range) and the kernel's merged device tree
// (/sys/fs/multikernel/device_tree: the baseline's resources) from fsys.
// A missing or empty device tree is not an error (the pool then comes from
// /proc/iomem and Pool and Devices are empty); a missing /proc/cpuinfo is.
func ReadHost(fsys fs.FS) (Host, error) {
	var h Host
	ci, err := fs.ReadFile(fsys, CPUInfoPath)
	if err != nil {
		return h, fmt.Errorf("multikernel: reading /%s: %w", CPUInfoPath, err)
	}
	if h.APICIDs, err = ParseCPUInfo(ci); err != nil {
		return h, err
	}
	var iomemErr error
	if im, err := fs.ReadFile(fsys, IOMemPath); err == nil {
		h.MemoryBase, h.MemoryBytes, iomemErr = ParseIOMem(im)
	} else {
		iomemErr = fmt.Errorf("multikernel: reading /%s: %w", IOMemPath, err)
	}
	b, err := fs.ReadFile(fsys, BaselinePath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return h, fmt.Errorf("multikernel: reading /%s: %w", BaselinePath, err)
	}
	if len(b) == 0 {
		if h.MemoryBytes == 0 {
			return h, fmt.Errorf("%w: no baseline at /%s and %w", ErrNoPool, BaselinePath, iomemErr)
		}
		return h, nil
	}
	base, err := ParseBaseline(b)
	if err != nil {
		return h, err
	}
	if iomemErr == nil && h.MemoryBytes > 0 && (base.MemoryBase < h.MemoryBase || base.MemoryBase+base.MemoryBytes > h.MemoryBase+h.MemoryBytes) {
		return h, fmt.Errorf("%w: baseline memory %#x+%#x lies outside the multikernel range %#x+%#x of /proc/iomem",
			ErrBadDeviceTree, base.MemoryBase, base.MemoryBytes, h.MemoryBase, h.MemoryBytes)
	}
	base.APICIDs = h.APICIDs
	return base, nil
}

// ParseCPUInfo maps each "processor" of /proc/cpuinfo to its "apicid".
func ParseCPUInfo(b []byte) (map[int]int, error) {
	out := map[int]int{}
	cpu := -1
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("multikernel: /proc/cpuinfo: bad processor %q", v)
			}
			cpu = n
		case "apicid":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || cpu < 0 {
				return nil, fmt.Errorf("multikernel: /proc/cpuinfo: bad apicid %q for processor %d", v, cpu)
			}
			out[cpu] = n
		}
	}
	if len(out) == 0 {
		return nil, errors.New("multikernel: /proc/cpuinfo lists no apicid (not an x86 host?)")
	}
	return out, nil
}

// ParseIOMem finds the "multikernel" range of /proc/iomem (at any nesting
// depth) and returns its base and size.
func ParseIOMem(b []byte) (base, size uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rng, name, ok := strings.Cut(sc.Text(), " : ")
		if !ok || strings.TrimSpace(name) != "multikernel" {
			continue
		}
		lo, hi, ok := strings.Cut(strings.TrimSpace(rng), "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		z, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || z < a {
			return 0, 0, fmt.Errorf("multikernel: /proc/iomem: bad range %q", rng)
		}
		if a == 0 && z == 0 {
			return 0, 0, errors.New("multikernel: /proc/iomem shows zero addresses (read it as root)")
		}
		return a, z - a + 1, nil
	}
	return 0, 0, errors.New("multikernel: /proc/iomem has no \"multikernel\" range (boot the host with the multikernel memory reservation)")
}

// ParseBaseline reads a baseline (or merged) device tree blob: the
// resources node's cpus, memory-base, memory-bytes and devices. Device
// labels come from the __symbols__ node (dtc -@), else a device's "label"
// property, else its node name.
func ParseBaseline(b []byte) (Host, error) {
	var h Host
	f, err := dt.ReadFDT(bytes.NewReader(b))
	if err != nil {
		return h, fmt.Errorf("%w: %w", ErrBadDeviceTree, err)
	}
	res, ok := f.RootNode.LookupChildByName("resources")
	if !ok {
		return h, fmt.Errorf("%w: no /resources node", ErrBadDeviceTree)
	}
	h.Baseline = true
	if p, ok := res.LookProperty("cpus"); ok {
		if h.Pool, err = cells(p.Value); err != nil {
			return h, fmt.Errorf("%w: /resources/cpus: %w", ErrBadDeviceTree, err)
		}
	}
	if h.MemoryBase, err = number(res, "memory-base"); err != nil {
		return h, err
	}
	if h.MemoryBytes, err = number(res, "memory-bytes"); err != nil {
		return h, err
	}
	labels := map[string]string{} // node path -> label
	if sym, ok := f.RootNode.LookupChildByName("__symbols__"); ok {
		for _, p := range sym.Properties {
			labels[strings.TrimRight(string(p.Value), "\x00")] = p.Name
		}
	}
	h.Devices = map[string]string{}
	if devs, ok := res.LookupChildByName("devices"); ok {
		for _, d := range devs.Children {
			p, ok := d.LookProperty("pci-id")
			if !ok {
				continue
			}
			bdf := strings.TrimRight(string(p.Value), "\x00")
			label := labels["/resources/devices/"+d.Name]
			if l, ok := d.LookProperty("label"); label == "" && ok {
				label = strings.TrimRight(string(l.Value), "\x00")
			}
			if label == "" {
				label = d.Name
			}
			h.Devices[bdf] = label
		}
	}
	return h, nil
}

// cells decodes a cpus property: 64-bit cells in the pinned binary form,
// 32-bit cells still accepted. A value is read as 64-bit cells when its
// length allows it and every high word is zero (32-bit cells read that way
// would give ids of 2^32 and more, which no APIC has).
func cells(v []byte) ([]uint64, error) {
	if len(v)%8 == 0 {
		out := make([]uint64, 0, len(v)/8)
		ok := true
		for i := 0; i < len(v); i += 8 {
			x := binary.BigEndian.Uint64(v[i:])
			if x>>32 != 0 {
				ok = false
				break
			}
			out = append(out, x)
		}
		if ok {
			return out, nil
		}
	}
	if len(v)%4 != 0 {
		return nil, fmt.Errorf("length %d is not a whole number of cells", len(v))
	}
	out := make([]uint64, 0, len(v)/4)
	for i := 0; i < len(v); i += 4 {
		out = append(out, uint64(binary.BigEndian.Uint32(v[i:])))
	}
	return out, nil
}

// number reads a one- or two-cell number property.
func number(n *dt.Node, name string) (uint64, error) {
	p, ok := n.LookProperty(name)
	if !ok {
		return 0, fmt.Errorf("%w: /resources has no %s", ErrBadDeviceTree, name)
	}
	switch len(p.Value) {
	case 4:
		return uint64(binary.BigEndian.Uint32(p.Value)), nil
	case 8:
		return binary.BigEndian.Uint64(p.Value), nil
	}
	return 0, fmt.Errorf("%w: /resources/%s is %d bytes, want 4 or 8", ErrBadDeviceTree, name, len(p.Value))
}

func sortedPool(p []uint64) []uint64 {
	s := append([]uint64(nil), p...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}
