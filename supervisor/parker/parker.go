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
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

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
	// Kernel is the application kernel image; Initrd the mkrt initramfs
	// ("" loads none).
	Kernel, Initrd string
	// SharedMemory is the physical address of the region the host reserved
	// with memmap=<size>$<addr>; its size is partition.shared_memory.
	SharedMemory uint64
	// Halt asks the executive to stop and take its kernel offline.
	Halt func(ctx context.Context) error
	// Formatted says the caller formats the shared region before the start
	// (mkrt run: it outlives restarts and carries retained values): the
	// start maps it without clearing it.
	Formatted bool

	// Host is the kernel seams and waits; zero is the real host.
	kexec.Host
}

// Partition is a Parker secondary kernel; it implements supervisor.Partition.
type Partition struct {
	o   Options
	log *slog.Logger

	life supervisor.Lifecycle

	mu      sync.Mutex
	kernfs  kexec.Kernfs
	region  *shm.Region
	started bool
	cmdline string
	info    supervisor.Info
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
func (p *Partition) Cmdline() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmdline
}

func (p *Partition) dir(elems ...string) string {
	return path.Join(append([]string{p.o.Root, p.o.Config.Metadata.Name}, elems...)...)
}

// Steps returns host preparation for one start, in order.
func (p *Partition) Steps() []supervisor.Step {
	return []supervisor.Step{
		{Name: "check", Do: p.check},
		{Name: "mount", Do: p.mount, Undo: p.unmount},
		{Name: "mkdir", Do: p.mkdir, Undo: p.rmdir},
		{Name: "assign", Do: p.assign},
		{Name: "shared-memory", Do: p.mapShm, Undo: p.unmapShm},
		{Name: "load", Do: p.load, Undo: p.unload},
		{Name: "start", Do: p.online, Undo: p.offline},
	}
}

// Start brings the secondary up; on failure everything done is undone.
func (p *Partition) Start(ctx context.Context) error {
	return p.life.Start(ctx, func() []supervisor.Step {
		nics := make([]string, 0, len(p.o.Config.Partition.NICs))
		for _, n := range p.o.Config.Partition.NICs {
			nics = append(nics, n.PCI)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.info = supervisor.Info{Isolation: supervisor.Isolation{
			CPUs: p.o.Config.Partition.CPUs.String(), CPUSet: "parker (offlined)", NICs: nics,
			Degradations: []string{"console: Parker offers no host-side console of the secondary kernel"},
		}}
		return p.Steps()
	})
}

// Stop asks the executive to take its kernel offline and undoes the host
// preparation; ErrNoHalt when the secondary stays online.
func (p *Partition) Stop(ctx context.Context) error { return p.life.Stop(ctx) }

// Kill is not possible: Parker has no way to halt a secondary.
func (p *Partition) Kill() error { return ErrNoHalt }

// Wait returns when online reads 0 (exit status 0).
func (p *Partition) Wait(ctx context.Context) (supervisor.Exit, error) {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if !started {
		return supervisor.Exit{}, errors.New("parker: not started")
	}
	for {
		on, err := p.isOnline()
		if err != nil {
			return supervisor.Exit{}, err
		}
		if !on {
			return supervisor.Exit{Code: 0, Time: p.o.Clock.Now()}, nil
		}
		if err := p.sleep(ctx); err != nil {
			return supervisor.Exit{}, err
		}
	}
}

// Info reports the CPUs, the NICs and what could not be done.
func (p *Partition) Info() supervisor.Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info.Clone()
}

// Console returns nothing: Parker has no host-side console.
func (p *Partition) Console() []string { return nil }

func (p *Partition) sleep(ctx context.Context) error {
	t := p.o.Clock.NewTimer(p.o.Poll)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Partition) isOnline() (bool, error) {
	b, err := p.o.FS.ReadFile(p.dir("online"))
	if err != nil {
		return false, fmt.Errorf("parker: %w", err)
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

// waitOnline polls online until it reads want, bounded by ctx and timeout.
func (p *Partition) waitOnline(ctx context.Context, want bool, timeout time.Duration) error {
	deadline := p.o.Clock.Now().Add(timeout)
	for {
		on, err := p.isOnline()
		if err == nil && on == want {
			return nil
		}
		if !p.o.Clock.Now().Before(deadline) {
			return fmt.Errorf("parker: online did not read %v within %v (%v)", want, timeout, err)
		}
		if err := p.sleep(ctx); err != nil {
			return fmt.Errorf("parker: waiting for online: %w", err)
		}
	}
}

func (p *Partition) check(context.Context) error {
	b, err := p.o.FS.ReadFile("/proc/filesystems")
	if err != nil {
		return fmt.Errorf("parker: %w", err)
	}
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == "parker" {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%w: /proc/filesystems lists no parker (boot a kernel with the Parker RFC and parker_cma=)", ErrUnsupported)
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

func (p *Partition) mount(context.Context) error {
	return p.kernfs.Mount(p.o.Sys, "parker", p.o.Root, func() error {
		_, err := p.o.FS.ReadDir(p.o.Root)
		return err
	})
}

func (p *Partition) unmount(context.Context) error { return p.kernfs.Unmount(p.o.Sys, p.o.Root) }

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

func (p *Partition) mapShm(context.Context) error {
	r, err := shm.Open(p.SharedMemory())
	if err != nil {
		return fmt.Errorf("parker: mapping the shared region: %w", err)
	}
	if !p.o.Formatted {
		clear(r.Bytes()) // no stale header from an earlier run
	}
	p.mu.Lock()
	p.region = r
	p.mu.Unlock()
	return nil
}

func (p *Partition) unmapShm(context.Context) error {
	p.mu.Lock()
	r := p.region
	p.region = nil
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Close()
}

func (p *Partition) load(context.Context) error {
	b, err := p.o.FS.ReadFile(p.dir("control_structure"))
	if err != nil {
		return fmt.Errorf("parker: %w", err)
	}
	control, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 64)
	if err != nil {
		return fmt.Errorf("parker: control_structure reads %q: %w", strings.TrimSpace(string(b)), err)
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
	k, err := kexec.OpenVmlinux(p.o.Kernel, p.o.TempDir)
	if err != nil {
		return fmt.Errorf("parker: %w", err)
	}
	defer k.Close()
	var initrd *os.File
	if p.o.Initrd != "" {
		if initrd, err = os.Open(p.o.Initrd); err != nil {
			return fmt.Errorf("parker: initramfs: %w", err)
		}
		defer initrd.Close()
	}
	if err := kexec.Load(p.o.Sys, k, initrd, cmdline, 0); err != nil {
		return err
	}
	p.mu.Lock()
	p.cmdline = cmdline
	p.mu.Unlock()
	p.log.Info("kernel loaded", "kernel", p.o.Kernel, "cmdline", cmdline)
	return nil
}

func (p *Partition) unload(context.Context) error {
	if err := kexec.Unload(p.o.Sys, 0); err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

func (p *Partition) online(ctx context.Context) error {
	if err := p.o.FS.WriteFile(p.dir("online"), []byte("1")); err != nil {
		return fmt.Errorf("parker: starting the secondary: %w", err)
	}
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	return p.waitOnline(ctx, true, p.o.BootTimeout)
}

// offline asks the executive to halt and waits for online to read 0.
func (p *Partition) offline(ctx context.Context) error {
	p.mu.Lock()
	p.started = false
	p.mu.Unlock()
	if on, err := p.isOnline(); err == nil && !on {
		return nil
	}
	if p.o.Halt == nil {
		return ErrNoHalt
	}
	if err := p.o.Halt(ctx); err != nil {
		p.log.Warn("halt request to the executive failed", "err", err)
	}
	if err := p.waitOnline(ctx, false, p.o.HaltTimeout); err != nil {
		return fmt.Errorf("%w: %w", ErrNoHalt, err)
	}
	return nil
}
