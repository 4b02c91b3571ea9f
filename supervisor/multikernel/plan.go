package multikernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/u-root/u-root/pkg/dt"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor/image"
)

// Sizes and alignments of an instance's memory.
const (
	// DefaultMemory and DefaultSharedMemory are used when the partition
	// leaves memory and shared_memory out.
	DefaultMemory       = 256 << 20
	DefaultSharedMemory = 4 << 20
	// MinKernelMemory is the least memory left to the application kernel
	// once the shared region is carved off.
	MinKernelMemory = 64 << 20
	// MemoryAlign is the alignment of an instance's memory range (a huge
	// page, so the kernel maps it with large pages).
	MemoryAlign = 2 << 20
	// PageSize is the alignment of the shared region.
	PageSize = 4096
	// MaxID is the largest instance id (KEXEC_MK_ID has 11 bits; 0 is the host).
	MaxID = 511
)

// Plan is one instance as the overlay describes it, with the command line
// of its kernel.
type Plan struct {
	// Name is the instance name (the partition's metadata.name).
	Name string
	// ID is the instance id, 1-511.
	ID int
	// CPUs are physical APIC ids; the first is the boot CPU.
	CPUs []uint64
	// MemoryBase and MemoryBytes are the instance's memory range.
	MemoryBase, MemoryBytes uint64
	// ShmBase and ShmBytes are the shared region: the top of the range.
	ShmBase, ShmBytes uint64
	// Devices are the baseline labels of the dedicated NICs.
	Devices []string
	// Cmdline is the application kernel's command line.
	Cmdline string
}

// InstanceID is the id Generate gives a partition name: stable across runs
// (so a generated overlay can be reviewed and kept), 1-511.
func InstanceID(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return 1 + int(h.Sum32()%MaxID)
}

// Generate plans the instance of cfg's partition on host: each partition
// CPU must be in the host's pool, the memory must hold the kernel and the
// shared region and fit in the pool, and each dedicated NIC must be a
// device of the baseline (given by PCI address). It reports every problem
// at once.
func Generate(cfg *configs.Config, host Host) (*Plan, error) {
	if cfg == nil {
		return nil, errors.New("multikernel: no config")
	}
	part := cfg.Partition
	p := &Plan{Name: cfg.Metadata.Name, ID: InstanceID(cfg.Metadata.Name)}
	var errs []error
	if p.Name == "" || strings.ContainsAny(p.Name, "/. \t\n\x00") {
		errs = append(errs, fmt.Errorf("multikernel: bad instance name %q (metadata.name: letters, digits, '-', '_')", p.Name))
	}
	if len(part.CPUs) == 0 {
		errs = append(errs, fmt.Errorf("%w: partition.cpus is empty (list the host CPUs given to the instance)", ErrCPUNotInPool))
	}
	for _, cpu := range part.CPUs {
		apic, ok := host.APICIDs[cpu]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%w: CPU %d is not in /proc/cpuinfo", ErrCPUNotInPool, cpu))
		case host.Baseline && !slices.Contains(host.Pool, uint64(apic)):
			errs = append(errs, fmt.Errorf("%w: CPU %d (APIC id %d) is not in the baseline's cpus %v", ErrCPUNotInPool, cpu, apic, sortedPool(host.Pool)))
		case slices.Contains(p.CPUs, uint64(apic)):
			errs = append(errs, fmt.Errorf("%w: CPU %d is listed twice", ErrCPUNotInPool, cpu))
		default:
			p.CPUs = append(p.CPUs, uint64(apic))
		}
	}
	mem := uint64(part.Memory)
	if mem == 0 {
		mem = DefaultMemory
	}
	shmBytes := uint64(part.SharedMemory)
	if shmBytes == 0 {
		shmBytes = DefaultSharedMemory
	}
	p.ShmBytes = alignUp(shmBytes, PageSize)
	p.MemoryBytes = alignUp(mem, MemoryAlign)
	p.MemoryBase = place(alignUp(host.MemoryBase, MemoryAlign), p.MemoryBytes, host.Busy)
	switch {
	case p.MemoryBytes < p.ShmBytes+MinKernelMemory:
		errs = append(errs, fmt.Errorf("%w: partition.memory %d MiB does not hold the shared region (%d KiB) and %d MiB for the kernel",
			ErrMemoryTooSmall, mem>>20, p.ShmBytes>>10, MinKernelMemory>>20))
	case host.MemoryBytes == 0:
		errs = append(errs, fmt.Errorf("%w: the host gives no memory to the multikernel pool", ErrNoPool))
	case p.MemoryBase+p.MemoryBytes > host.MemoryBase+host.MemoryBytes:
		errs = append(errs, fmt.Errorf("%w: the pool has %d MiB at %#x, partition.memory wants %d MiB",
			ErrMemoryTooSmall, host.MemoryBytes>>20, host.MemoryBase, p.MemoryBytes>>20))
	}
	p.ShmBase = p.MemoryBase + p.MemoryBytes - p.ShmBytes
	for _, n := range part.NICs {
		if n.PCI == "" {
			errs = append(errs, fmt.Errorf("%w: NIC %q: the multikernel backend names NICs by PCI address (set pci)", ErrNICNotInBaseline, n.Interface))
			continue
		}
		bdf := NormalizeBDF(n.PCI)
		label, ok := host.Devices[bdf]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: NIC %s is not among the baseline's devices %v", ErrNICNotInBaseline, bdf, sortedKeys(host.Devices)))
			continue
		}
		p.Devices = append(p.Devices, label)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p.Cmdline = cmdline(p, part.Kernel.Cmdline)
	return p, nil
}

// cmdline is the application kernel's command line: the instance's own CPU
// 0 (its boot CPU) does housekeeping, the others run control tasks; the
// shared region is reserved (memmap) and announced (mkrt.shm).
func cmdline(p *Plan, extra string) string {
	var rt, hk []int
	if len(p.CPUs) > 1 {
		hk = []int{0}
		for i := 1; i < len(p.CPUs); i++ {
			rt = append(rt, i)
		}
	}
	x := fmt.Sprintf("memmap=%#x$%#x", p.ShmBytes, p.ShmBase)
	if e := strings.TrimSpace(extra); e != "" {
		x += " " + e
	}
	return image.Cmdline(image.CmdlineOptions{
		RTCPUs:       rt,
		Housekeeping: hk,
		// The instance's console is the multikernel tty (/dev/mktty).
		Console:   "mktty",
		Idle:      "poll",
		MaxCState: 1,
		Shm:       fmt.Sprintf("phys:%#x,%#x", p.ShmBase, p.ShmBytes),
		Extra:     x,
	})
}

// NormalizeBDF gives a PCI address its domain: "03:00.0" -> "0000:03:00.0".
func NormalizeBDF(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if strings.Count(s, ":") == 1 {
		s = "0000:" + s
	}
	return s
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// place is the lowest MemoryAlign-aligned base from base on where bytes
// bytes overlap none of busy (the pool's end is checked by the caller).
func place(base, bytes uint64, busy []Range) uint64 {
	for moved := true; moved; {
		moved = false
		for _, b := range busy {
			if (Range{Base: base, Bytes: bytes}).Overlaps(b) {
				base, moved = alignUp(b.Base+b.Bytes, MemoryAlign), true
			}
		}
	}
	return base
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

// tree is the overlay as a u-root device tree.
func (p *Plan) tree() *dt.Node {
	res := []dt.Property{
		{Name: "cpus", Value: u64cells(p.CPUs)},
		dt.PropertyU64("memory-base", p.MemoryBase),
		dt.PropertyU64("memory-bytes", p.MemoryBytes),
	}
	if len(p.Devices) > 0 {
		res = append(res, dt.Property{Name: "device-names", Value: stringList(p.Devices)})
	}
	create := dt.NewNode("instance-create",
		dt.WithProperty(dt.PropertyString("instance-name", p.Name), dt.PropertyU32("id", uint32(p.ID))),
		dt.WithChildren(dt.NewNode("resources", dt.WithProperty(res...))))
	return dt.NewNode("",
		dt.WithProperty(dt.PropertyString("compatible", "linux,multikernel-overlay")),
		dt.WithChildren(dt.NewNode("fragment@0", dt.WithChildren(dt.NewNode("__overlay__", dt.WithChildren(create))))))
}

// Overlay returns the DTBO written to /sys/fs/multikernel/overlays/new to
// create the instance (FDT version 17).
func (p *Plan) Overlay() ([]byte, error) {
	if p.ID < 1 || p.ID > MaxID {
		return nil, fmt.Errorf("multikernel: instance id %d out of range 1-%d", p.ID, MaxID)
	}
	if len(p.CPUs) == 0 {
		return nil, fmt.Errorf("multikernel: instance %q has no CPUs", p.Name)
	}
	f := &dt.FDT{Header: dt.Header{Magic: dt.Magic, Version: 17, LastCompVersion: 16}, RootNode: p.tree()}
	var b bytes.Buffer
	if _, err := f.Write(&b); err != nil {
		return nil, fmt.Errorf("multikernel: encoding the overlay: %w", err)
	}
	return b.Bytes(), nil
}

// DTS returns the overlay in device-tree source form, for review (dtc
// compiles it to the same structure Overlay writes).
func (p *Plan) DTS() string {
	var b strings.Builder
	fmt.Fprintf(&b, "/* multikernel instance %q; interface: %s */\n", p.Name, Pin)
	b.WriteString("/dts-v1/;\n\n/ {\n\tcompatible = \"linux,multikernel-overlay\";\n")
	b.WriteString("\tfragment@0 {\n\t\t__overlay__ {\n\t\t\tinstance-create {\n")
	fmt.Fprintf(&b, "\t\t\t\tinstance-name = %q;\n\t\t\t\tid = <%d>;\n\t\t\t\tresources {\n", p.Name, p.ID)
	cpus := make([]string, len(p.CPUs))
	for i, c := range p.CPUs {
		cpus[i] = fmt.Sprint(c)
	}
	fmt.Fprintf(&b, "\t\t\t\t\tcpus = /bits/ 64 <%s>;\n", strings.Join(cpus, " "))
	fmt.Fprintf(&b, "\t\t\t\t\tmemory-base = /bits/ 64 <%#x>;\n", p.MemoryBase)
	fmt.Fprintf(&b, "\t\t\t\t\tmemory-bytes = /bits/ 64 <%#x>;\n", p.MemoryBytes)
	if len(p.Devices) > 0 {
		q := make([]string, len(p.Devices))
		for i, d := range p.Devices {
			q[i] = fmt.Sprintf("%q", d)
		}
		fmt.Fprintf(&b, "\t\t\t\t\tdevice-names = %s;\n", strings.Join(q, ", "))
	}
	fmt.Fprintf(&b, "\t\t\t\t\t/* shared region %#x+%#x, kernel cmdline: %s */\n", p.ShmBase, p.ShmBytes, strings.ReplaceAll(p.Cmdline, "*/", "* /"))
	b.WriteString("\t\t\t\t};\n\t\t\t};\n\t\t};\n\t};\n};\n")
	return b.String()
}

func u64cells(v []uint64) []byte {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		b = binary.BigEndian.AppendUint64(b, x)
	}
	return b
}

func stringList(s []string) []byte {
	var b []byte
	for _, x := range s {
		b = append(append(b, x...), 0)
	}
	return b
}
