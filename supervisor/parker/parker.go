// Package parker is the Parker partition backend: the application kernel
// runs as a secondary kernel on CPUs, memory and PCI devices the boot
// kernel gives away, through ByteDance's partitioned-kernel RFC ("Parker",
// Fam Zheng and Thom Hughes, linux-kernel 2025-09-23,
// 20250923153146.365015-1-fam.zheng@bytedance.com).
//
// The file names and their semantics follow the RFC's
// arch/x86/parker/kernfs.c (patch 3/5): a kernfs of type "parker" mounted
// once at /sys/fs/parker; mkdir <name> makes a kernel entry with the files
// id, control_structure (the control page's physical address, "0x%llx"),
// cpus (a cpulist; the boot kernel offlines them), memory (a size taken
// from the CMA area the host reserved with parker_cma=; reads back as
// "<size>@0x<base>"), bind/unbind (a PCI name), online (writing starts the
// loaded kexec image on those CPUs; reads 0 or 1) and devices/. The image
// is loaded with the ordinary kexec_file_load (flags 0, or
// KEXEC_FILE_NO_INITRAMFS without an initramfs). rmdir returns the
// resources, and fails with EBUSY while the secondary is online.
//
// Assumptions where the RFC is silent: the secondary finds its control
// structure through parker=<control_structure address> on its command line
// (the address is read from the entry's control_structure file before the
// image is loaded); the RFC offers no way to halt a secondary from the boot
// kernel, so Stop asks the executive to halt (the Halt option) and waits
// for online to read 0; a secondary that stays online keeps its CPUs until
// the machine reboots, and Stop says so. Kill is not possible.
//
// Parker has no inter-kernel communication. The shared-memory channel is a
// range of physical memory the host keeps from both kernels with
// memmap=<size>$<addr> on the host's command line; Options.SharedMemory
// names it (the check step verifies /proc/iomem lists it as Reserved), both
// sides map it through /dev/mem, and the application kernel finds it
// through mkrt.shm=phys:<addr>,<size> (and also reserves it with memmap=).
//
// mkrt run (supervisor/deploy) picks the shared region among the host's
// memmap= reservations (kexec.Reservations), formats it before the start
// (Formatted, Locate), and for a hand-over starts a second secondary in an
// entry of another name over the next reservation. The kernfs mount is
// shared by the secondaries of one process (kexec.SharedMount).
//
// The bring-up runs as supervisor.Steps through a supervisor.Lifecycle;
// the steps multikernel has too (check, mount, shared-memory, load, start
// and their waits) are kexec.Secondary's, given this package's kernfs
// entry, command line and online file.
//
// Running for real needs root, a boot kernel built with the RFC
// (CONFIG_PARKER, parker_cma= on its command line) and /dev/mem access to
// the reserved range. No such kernel is on the development machines: every
// kernel interaction goes through seams (process.FS, kexec.Syscalls, the
// /dev/mem path) and has run only against parkertest's fake.
package parker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/image"
	"github.com/mkrt/mkrt/supervisor/kexec"
)

// DefaultRoot is where the parker kernfs is mounted.
const DefaultRoot = "/sys/fs/parker"

// Errors of the backend, for errors.Is.
var (
	// ErrUnsupported is a kernel without the Parker RFC.
	ErrUnsupported = errors.New("parker: the kernel has no parker support")
	// ErrNoHalt is a secondary that is still online: the RFC cannot halt it.
	ErrNoHalt = errors.New("parker: the secondary kernel is still online and Parker cannot halt it (reboot the host to reclaim its CPUs)")
	// ErrSharedMemory is a shared region the host did not reserve.
	ErrSharedMemory = errors.New("parker: shared region not reserved")
)

// Options configure a Parker partition.
type Options struct {
	// Config is the control config (metadata.name names the entry;
	// partition gives CPUs, memory, NICs by PCI address, kernel.cmdline).
	Config *configs.Config
	// SharedMemory is the physical address of the region the host reserved
	// with memmap=<size>$<addr>; its size is partition.shared_memory.
	SharedMemory uint64

	// Options are the kernel, the initramfs, the halt request (without
	// it, Stop cannot take the secondary offline), Formatted and the host
	// seams, as for multikernel.
	kexec.Options
}

// Partition is a Parker secondary kernel; it implements supervisor.Partition.
type Partition struct {
	o   Options
	log *slog.Logger

	life supervisor.Lifecycle
	// kern is the secondary kernel: the steps and waits parker shares
	// with multikernel.
	kern kexec.Secondary

	mu   sync.Mutex
	info supervisor.Info
}

var _ supervisor.Partition = (*Partition)(nil)

// New checks o and returns a stopped partition.
func New(o Options) (*Partition, error) {
	if o.Config == nil {
		return nil, errors.New("parker: no config")
	}
	if n := o.Config.Metadata.Name; n == "" || strings.ContainsAny(n, "/. \t\n") {
		return nil, fmt.Errorf("parker: bad partition name %q (letters, digits, '-', '_')", n)
	}
	if o.Kernel == "" {
		return nil, errors.New("parker: no application kernel (partition.kernel.image)")
	}
	if len(o.Config.Partition.CPUs) == 0 {
		return nil, errors.New("parker: partition.cpus is empty")
	}
	o.Host.Defaults(DefaultRoot)
	p := &Partition{o: o, log: o.Log.With("partition", o.Config.Metadata.Name, "backend", "parker")}
	p.life = supervisor.Lifecycle{Backend: "parker", Log: o.Log, Clock: o.Clock}
	p.kern = kexec.Secondary{Options: o.Options, Backend: "parker", Control: kexec.Control{Boot: p.online, State: p.state, Halt: p.halt}}
	p.kern.Log = p.log
	return p, nil
}

// Backend is "parker".
func (p *Partition) Backend() string { return string(configs.BackendParker) }

func (p *Partition) shmBytes() uint64 {
	if s := uint64(p.o.Config.Partition.SharedMemory); s > 0 {
		return s
	}
	return 4 << 20
}

func (p *Partition) memory() uint64 {
	if m := uint64(p.o.Config.Partition.Memory); m > 0 {
		return m
	}
	return 256 << 20
}

// SharedMemory is where the bridge maps the shared region.
func (p *Partition) SharedMemory() shm.Location {
	l := shm.Phys(p.o.SharedMemory, int64(p.shmBytes()))
	l.Path = p.o.DevMem
	return l
}

// Locate is where the shared region is, for a caller that formats it
// before the start (Formatted).
func (p *Partition) Locate() (shm.Location, error) {
	if p.o.SharedMemory == 0 {
		return shm.Location{}, fmt.Errorf("%w: no shared region address (reserve one with memmap=<size>$<addr> on the host's command line)", ErrSharedMemory)
	}
	return p.SharedMemory(), nil
}

// Cmdline is the secondary's command line of the current start.
func (p *Partition) Cmdline() string { return p.kern.Cmdline() }

func (p *Partition) dir(elems ...string) string {
	return path.Join(append([]string{p.o.Root, p.o.Config.Metadata.Name}, elems...)...)
}

// Steps returns host preparation for one start, in order.
//
//	check          the kernel has the parker kernfs; the shared region is reserved
//	mount          /sys/fs/parker (shared; undo: the last user unmounts)
//	mkdir          the kernel entry <name> (undo: rmdir, which returns its resources)
//	assign         cpus, memory, bind
//	shared-memory  map the reserved region through /dev/mem (undo: unmap)
//	load           kexec_file_load with parker=<control structure> (undo: unload)
//	start          write online, wait for it to read 1 (undo: ask the
//	               executive to halt, wait for online to read 0)
//
// mount, shared-memory, load and start are kexec.Secondary's.
func (p *Partition) Steps() []supervisor.Step {
	return []supervisor.Step{
		{Name: "check", Do: p.check},
		p.kern.MountStep(func() error {
			_, err := p.o.FS.ReadDir(p.o.Root)
			return err
		}),
		{Name: "mkdir", Do: p.mkdir, Undo: p.rmdir},
		{Name: "assign", Do: p.assign},
		p.kern.SharedMemoryStep(p.SharedMemory),
		p.kern.LoadStep(p.image),
		p.kern.StartStep(),
	}
}

// Start brings the secondary up; on failure everything done is undone.
func (p *Partition) Start(ctx context.Context) error {
	return p.life.Start(ctx, func() []supervisor.Step {
		p.restore()
		return p.Steps()
	})
}

// Stop asks the executive to take its kernel offline and undoes the host
// preparation; ErrNoHalt when the secondary stays online.
func (p *Partition) Stop(ctx context.Context) error { return p.life.Stop(ctx) }

// Kill is not possible: Parker has no way to halt a secondary.
func (p *Partition) Kill() error { return ErrNoHalt }

// Wait returns when online reads 0 (exit status 0).
func (p *Partition) Wait(ctx context.Context) (supervisor.Exit, error) { return p.kern.Wait(ctx) }

// Info reports the CPUs, the NICs and what could not be done.
func (p *Partition) Info() supervisor.Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info.Clone()
}

// Console returns nothing: Parker has no host-side console.
func (p *Partition) Console() []string { return nil }

// state reads the entry's online file: running while it reads 1.
func (p *Partition) state() (kexec.State, error) {
	b, err := p.o.FS.ReadFile(p.dir("online"))
	if err != nil {
		return kexec.State{}, fmt.Errorf("parker: %w", err)
	}
	st := strings.TrimSpace(string(b))
	return kexec.State{Status: st, Running: st == "1"}, nil
}

// online starts the loaded image on the entry's CPUs.
func (p *Partition) online() error {
	if err := p.o.FS.WriteFile(p.dir("online"), []byte("1")); err != nil {
		return fmt.Errorf("parker: starting the secondary: %w", err)
	}
	return nil
}

// halt cannot halt a secondary: the RFC has no way. Only the executive's
// halt request (Options.Halt, asked first) takes its kernel offline; without
// one there is nothing to wait for.
func (p *Partition) halt(force bool) error {
	if force || p.o.Halt == nil {
		return ErrNoHalt
	}
	return nil
}

func (p *Partition) check(context.Context) error {
	if err := p.kern.Supported(ErrUnsupported, "boot a kernel with the Parker RFC and parker_cma="); err != nil {
		return err
	}
	if p.o.SharedMemory == 0 {
		return fmt.Errorf("%w: no shared region address (reserve one with memmap=<size>$<addr> on the host's command line)", ErrSharedMemory)
	}
	im, err := p.o.FS.ReadFile("/proc/iomem")
	if err != nil {
		return fmt.Errorf("parker: %w", err)
	}
	return reserved(im, p.o.SharedMemory, p.shmBytes())
}

// reserved checks that /proc/iomem lists [addr, addr+size) inside a
// Reserved range.
func reserved(iomem []byte, addr, size uint64) error {
	for _, l := range strings.Split(string(iomem), "\n") {
		rng, name, ok := strings.Cut(l, " : ")
		if !ok || strings.TrimSpace(name) != "Reserved" {
			continue
		}
		lo, hi, _ := strings.Cut(strings.TrimSpace(rng), "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		z, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && a == 0 && z == 0 {
			return fmt.Errorf("%w: /proc/iomem shows zero addresses (read it as root)", ErrSharedMemory)
		}
		if err1 == nil && err2 == nil && a <= addr && addr+size-1 <= z {
			return nil
		}
	}
	return fmt.Errorf("%w: %#x+%#x is not inside a Reserved range of /proc/iomem (add memmap=%#x$%#x to the host's command line)",
		ErrSharedMemory, addr, size, size, addr)
}

func (p *Partition) mkdir(context.Context) error {
	if err := p.o.FS.Mkdir(p.dir()); err != nil {
		return fmt.Errorf("parker: %w", err)
	}
	return nil
}

// rmdir returns the entry's CPUs, memory and devices to the boot kernel.
func (p *Partition) rmdir(context.Context) error {
	if err := p.o.FS.Rmdir(p.dir()); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%w: %w", ErrNoHalt, err)
		}
		return fmt.Errorf("parker: %w", err)
	}
	return nil
}

// assign gives the entry its CPUs, memory and NICs (rmdir takes them back).
func (p *Partition) assign(context.Context) error {
	part := p.o.Config.Partition
	if err := p.o.FS.WriteFile(p.dir("cpus"), []byte(part.CPUs.String())); err != nil {
		return fmt.Errorf("parker: giving CPUs %s: %w", part.CPUs, err)
	}
	if err := p.o.FS.WriteFile(p.dir("memory"), []byte(strconv.FormatUint(p.memory(), 10))); err != nil {
		return fmt.Errorf("parker: giving %d MiB of memory (CMA, parker_cma= on the host): %w", p.memory()>>20, err)
	}
	for _, n := range part.NICs {
		if n.PCI == "" {
			return fmt.Errorf("parker: NIC %q: Parker binds NICs by PCI address (set pci)", n.Interface)
		}
		bdf := n.PCI
		if strings.Count(bdf, ":") == 1 {
			bdf = "0000:" + bdf
		}
		if err := p.o.FS.WriteFile(p.dir("bind"), []byte(bdf)); err != nil {
			return fmt.Errorf("parker: binding NIC %s: %w", bdf, err)
		}
	}
	return nil
}

// image is the load's command line: parker=<control structure> (read
// from the entry), the shared region and the partition's own; flags 0 (an
// ordinary kexec image).
func (p *Partition) image() (string, uintptr, error) {
	b, err := p.o.FS.ReadFile(p.dir("control_structure"))
	if err != nil {
		return "", 0, fmt.Errorf("parker: %w", err)
	}
	control, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 64)
	if err != nil {
		return "", 0, fmt.Errorf("parker: control_structure reads %q: %w", strings.TrimSpace(string(b)), err)
	}
	n := len(p.o.Config.Partition.CPUs)
	var rt, hk []int
	if n > 1 {
		hk = []int{0}
		for i := 1; i < n; i++ {
			rt = append(rt, i)
		}
	}
	size := p.shmBytes()
	extra := fmt.Sprintf("parker=%#x memmap=%#x$%#x %s", control, size, p.o.SharedMemory, p.o.Config.Partition.Kernel.Cmdline)
	cmdline := image.Cmdline(image.CmdlineOptions{RTCPUs: rt, Housekeeping: hk, Idle: "poll", MaxCState: 1,
		Shm: fmt.Sprintf("phys:%#x,%#x", p.o.SharedMemory, size), Extra: extra})
	return cmdline, 0, nil
}
