package multikernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/process"
)

// DefaultRoot is where the multikernel kernfs is mounted.
const DefaultRoot = "/sys/fs/multikernel"

// Instance statuses of the pinned interface.
const (
	StatusEmpty  = "empty"
	StatusReady  = "ready"
	StatusLoaded = "loaded"
	StatusActive = "active"
	StatusFailed = "failed"
)

// ErrUnsupported is a kernel without the multikernel patch set.
var ErrUnsupported = errors.New("multikernel: the kernel has no multikernel support")

// Options configure a multikernel partition.
type Options struct {
	// Config is the control config: metadata.name names the instance,
	// partition gives CPUs, memory, shared_memory, NICs and kernel.cmdline.
	Config *configs.Config
	// Kernel is the application kernel (ELF vmlinux or bzImage); Initrd the
	// mkrt initramfs ("" loads none).
	Kernel, Initrd string
	// Baseline is written to device_tree when the kernel has none yet
	// (kerf init's job; nil: a missing baseline is an error).
	Baseline []byte
	// Halt, when set, asks the executive to stop (through the shared
	// region's command ring) before the instance is halted.
	Halt func(ctx context.Context) error
	// Name is the instance name; default metadata.name. A hand-over runs
	// the new generation as a second instance beside the running one.
	Name string
	// Beside are the memory ranges of instances this supervisor runs; the
	// instance's memory is placed clear of them.
	Beside []Range
	// Formatted says the caller formats the shared region before the start
	// (mkrt run: it outlives restarts and carries retained values): the
	// start maps it without clearing it.
	Formatted bool

	// Host is the kernel seams and waits; zero is the real host.
	kexec.Host
}

// Partition is a multikernel instance; it implements supervisor.Partition.
type Partition struct {
	o   Options
	log *slog.Logger

	life supervisor.Lifecycle
	// located is the plan Locate returned (nil without Locate).
	located *Plan

	mu      sync.Mutex
	plan    *Plan
	tx      string // overlays/tx_<n> of the instance
	kernfs  kexec.Kernfs
	region  *shm.Region
	started bool
	info    supervisor.Info
}

var _ supervisor.Partition = (*Partition)(nil)

// New checks o and returns a stopped partition.
func New(o Options) (*Partition, error) {
	if o.Config == nil {
		return nil, errors.New("multikernel: no config")
	}
	if o.Kernel == "" {
		return nil, errors.New("multikernel: no application kernel (partition.kernel.image)")
	}
	o.Host.Defaults(DefaultRoot)
	p := &Partition{o: o, log: o.Log.With("partition", o.Config.Metadata.Name, "backend", "multikernel")}
	p.life = supervisor.Lifecycle{Backend: "multikernel", Log: o.Log, Clock: o.Clock}
	return p, nil
}

// Backend is "multikernel".
func (p *Partition) Backend() string { return string(configs.BackendMultikernel) }

// Plan returns the instance plan of the current start (nil before).
func (p *Partition) Plan() *Plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.plan
}

// SharedMemory is where the bridge maps the shared region (valid once the
// partition started).
func (p *Partition) SharedMemory() shm.Location {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.plan == nil {
		return shm.Location{}
	}
	l := shm.Phys(p.plan.ShmBase, int64(p.plan.ShmBytes))
	l.Path = p.o.DevMem
	return l
}

// Steps returns host preparation for one start, in order.
func (p *Partition) Steps() []supervisor.Step {
	return []supervisor.Step{
		{Name: "check", Do: p.check},
		{Name: "mount", Do: p.mount, Undo: p.unmount},
		{Name: "baseline", Do: p.baseline},
		{Name: "create-instance", Do: p.create, Undo: p.remove},
		{Name: "shared-memory", Do: p.mapShm, Undo: p.unmapShm},
		{Name: "load", Do: p.load, Undo: p.unload},
		{Name: "start", Do: p.start, Undo: p.halt},
	}
}

// Start brings the instance up; on failure everything done is undone.
func (p *Partition) Start(ctx context.Context) error {
	return p.life.Start(ctx, func() []supervisor.Step {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.info = supervisor.Info{Isolation: supervisor.Isolation{
			CPUs: p.o.Config.Partition.CPUs.String(), CPUSet: "multikernel instance",
			Degradations: []string{"console: the multikernel interface offers no host-side console of the instance"},
		}}
		return p.Steps()
	})
}

// Stop halts the instance (politely, then by force when ctx ends or the
// halt timeout passes) and undoes the host preparation.
func (p *Partition) Stop(ctx context.Context) error { return p.life.Stop(ctx) }

// Kill force-halts the instance without undoing anything.
func (p *Partition) Kill() error {
	p.mu.Lock()
	plan := p.plan
	p.mu.Unlock()
	if plan == nil {
		return errors.New("multikernel: not started")
	}
	if err := kexec.Reboot(p.o.Sys, kexec.CmdForceHalt, plan.ID); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Wait returns when the instance leaves active: exit status 0 when it
// halted, -1 ("failed") when the kernel reports failure.
func (p *Partition) Wait(ctx context.Context) (supervisor.Exit, error) {
	p.mu.Lock()
	plan, started := p.plan, p.started
	p.mu.Unlock()
	if plan == nil || !started {
		return supervisor.Exit{}, errors.New("multikernel: not started")
	}
	for {
		st, err := p.status(plan.Name)
		switch {
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return supervisor.Exit{}, err
		case errors.Is(err, fs.ErrNotExist) || st != StatusActive:
			p.log.Info("instance left active", "status", st)
			if st == StatusFailed {
				return supervisor.Exit{Code: -1, Signal: "failed", Time: p.o.Clock.Now()}, nil
			}
			return supervisor.Exit{Code: 0, Time: p.o.Clock.Now()}, nil
		}
		if err := p.sleep(ctx, p.o.Poll); err != nil {
			return supervisor.Exit{}, err
		}
	}
}

// Info reports the instance's CPUs and what could not be done.
func (p *Partition) Info() supervisor.Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info.Clone()
}

// Console returns nothing: the interface has no host-side console.
func (p *Partition) Console() []string { return nil }

func (p *Partition) path(elems ...string) string {
	return path.Join(append([]string{p.o.Root}, elems...)...)
}

func (p *Partition) status(name string) (string, error) {
	b, err := p.o.FS.ReadFile(p.path("instances", name, "status"))
	if err != nil {
		return "", fmt.Errorf("multikernel: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (p *Partition) sleep(ctx context.Context, d time.Duration) error {
	t := p.o.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitStatus polls until the instance's status satisfies ok, bounded by
// ctx and timeout.
func (p *Partition) waitStatus(ctx context.Context, name string, timeout time.Duration, what string, ok func(string) bool) (string, error) {
	deadline := p.o.Clock.Now().Add(timeout)
	for {
		st, err := p.status(name)
		if err == nil && ok(st) {
			return st, nil
		}
		if err == nil && st == StatusFailed {
			return st, fmt.Errorf("multikernel: instance %s failed while waiting for %s", name, what)
		}
		if !p.o.Clock.Now().Before(deadline) {
			return st, fmt.Errorf("multikernel: instance %s: no %s within %v (status %q, %v)", name, what, timeout, st, err)
		}
		if err := p.sleep(ctx, p.o.Poll); err != nil {
			return st, fmt.Errorf("multikernel: waiting for %s of %s: %w", what, name, err)
		}
	}
}

func (p *Partition) check(context.Context) error {
	b, err := p.o.FS.ReadFile("/proc/filesystems")
	if err != nil {
		return fmt.Errorf("multikernel: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == "multikernel" {
			return nil
		}
	}
	return fmt.Errorf("%w: /proc/filesystems lists no multikernel (boot a kernel built from github.com/multikernel/linux; interface pinned to %s)", ErrUnsupported, Pin)
}

func (p *Partition) mount(context.Context) error {
	return p.kernfs.Mount(p.o.Sys, "multikernel", p.o.Root, func() error {
		_, err := p.o.FS.ReadFile(p.path("device_tree"))
		return err
	})
}

func (p *Partition) unmount(context.Context) error { return p.kernfs.Unmount(p.o.Sys, p.o.Root) }

// hostFS reads absolute paths through the FS seam for ReadHost.
type hostFS struct{ fs process.FS }

func (h hostFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
}

func (h hostFS) ReadFile(name string) ([]byte, error) { return h.fs.ReadFile("/" + name) }

func (p *Partition) baseline(context.Context) error {
	b, err := p.o.FS.ReadFile(p.path("device_tree"))
	if err != nil {
		return fmt.Errorf("multikernel: %w", err)
	}
	if len(b) == 0 {
		if p.o.Baseline == nil {
			return fmt.Errorf("%w: the kernel has no baseline device tree (write one with kerf init, or give the partition one)", ErrNoPool)
		}
		if err := p.o.FS.WriteFile(p.path("device_tree"), p.o.Baseline); err != nil {
			return fmt.Errorf("multikernel: writing the baseline: %w", err)
		}
		p.log.Info("baseline device tree written", "bytes", len(p.o.Baseline))
	}
	plan, err := p.generate(true)
	if err != nil {
		return err
	}
	if loc := p.located; loc != nil && (loc.ShmBase != plan.ShmBase || loc.ShmBytes != plan.ShmBytes) {
		return fmt.Errorf("%w: the shared region moved from %#x+%#x (where it was formatted) to %#x+%#x: the pool changed since", ErrNoPool,
			loc.ShmBase, loc.ShmBytes, plan.ShmBase, plan.ShmBytes)
	}
	p.mu.Lock()
	p.plan = plan
	p.info.NICs = slices.Clone(plan.Devices)
	p.mu.Unlock()
	return nil
}

// generate plans the instance on the host as it is now. Without NICs it
// plans only the placement: before the start the kernfs may not be
// mounted, and the baseline that names the devices with it.
func (p *Partition) generate(nics bool) (*Plan, error) {
	host, err := ReadHost(hostFS{rootedFS{p.o.FS, p.o.Root}})
	if err != nil {
		return nil, err
	}
	host.Busy = p.o.Beside
	cfg := *p.o.Config
	if p.o.Name != "" {
		cfg.Metadata.Name = p.o.Name
	}
	if !nics {
		cfg.Partition.NICs = nil
	}
	return Generate(&cfg, host)
}

// Locate plans the instance before it starts and returns where its shared
// region will be, for a caller that formats the region first (Formatted).
// The start plans again and fails if the region would move.
func (p *Partition) Locate() (shm.Location, error) {
	plan, err := p.generate(false)
	if err != nil {
		return shm.Location{}, err
	}
	p.located = plan
	l := shm.Phys(plan.ShmBase, int64(plan.ShmBytes))
	l.Path = p.o.DevMem
	return l, nil
}

// rootedFS serves the baseline from a kernfs mounted elsewhere than
// DefaultRoot.
type rootedFS struct {
	process.FS
	root string
}

func (r rootedFS) ReadFile(name string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(name, DefaultRoot+"/"); ok {
		name = path.Join(r.root, rest)
	}
	return r.FS.ReadFile(name)
}

func txDirs(names []string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, "tx_") {
			out = append(out, n)
		}
	}
	return out
}

func (p *Partition) create(ctx context.Context) error {
	plan := p.Plan()
	dtbo, err := plan.Overlay()
	if err != nil {
		return err
	}
	before, err := p.o.FS.ReadDir(p.path("overlays"))
	if err != nil {
		return fmt.Errorf("multikernel: %w", err)
	}
	if err := p.o.FS.WriteFile(p.path("overlays", "new"), dtbo); err != nil {
		return fmt.Errorf("multikernel: creating instance %s (overlay of %d bytes): %w", plan.Name, len(dtbo), err)
	}
	after, err := p.o.FS.ReadDir(p.path("overlays"))
	if err != nil {
		return fmt.Errorf("multikernel: %w", err)
	}
	var added []string
	for _, n := range txDirs(after) {
		if !slices.Contains(before, n) {
			added = append(added, n)
		}
	}
	if len(added) != 1 {
		return fmt.Errorf("multikernel: instance %s created but its overlay transaction is not identifiable (new: %v)", plan.Name, added)
	}
	p.mu.Lock()
	p.tx = added[0]
	p.mu.Unlock()
	b, err := p.o.FS.ReadFile(p.path("instances", plan.Name, "id"))
	if err != nil {
		return fmt.Errorf("multikernel: %w", err)
	}
	if id, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || id != plan.ID {
		return fmt.Errorf("multikernel: instance %s has id %q, the overlay asked for %d", plan.Name, strings.TrimSpace(string(b)), plan.ID)
	}
	_, err = p.waitStatus(ctx, plan.Name, p.o.BootTimeout, "status ready", func(s string) bool { return s == StatusReady })
	if err == nil {
		p.log.Info("instance created", "instance", plan.Name, "id", plan.ID, "tx", added[0], "cpus", plan.CPUs,
			"memory", fmt.Sprintf("%#x+%#x", plan.MemoryBase, plan.MemoryBytes))
	}
	return err
}

func (p *Partition) remove(context.Context) error {
	p.mu.Lock()
	tx := p.tx
	p.tx = ""
	p.mu.Unlock()
	if tx == "" {
		return nil
	}
	if err := p.o.FS.Rmdir(p.path("overlays", tx)); err != nil {
		return fmt.Errorf("multikernel: removing the instance: %w", err)
	}
	return nil
}

func (p *Partition) mapShm(context.Context) error {
	loc := p.SharedMemory()
	r, err := shm.Open(loc)
	if err != nil {
		return fmt.Errorf("multikernel: mapping the shared region: %w", err)
	}
	if !p.o.Formatted {
		// A header left by an earlier run must not look valid to the bridge.
		clear(r.Bytes())
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

func (p *Partition) flags() uintptr { return kexec.Multikernel | kexec.MKID(p.Plan().ID) }

func (p *Partition) load(context.Context) error {
	plan := p.Plan()
	k, err := kexec.OpenVmlinux(p.o.Kernel, p.o.TempDir)
	if err != nil {
		return fmt.Errorf("multikernel: %w", err)
	}
	defer k.Close()
	var initrd *os.File
	if p.o.Initrd != "" {
		if initrd, err = os.Open(p.o.Initrd); err != nil {
			return fmt.Errorf("multikernel: initramfs: %w", err)
		}
		defer initrd.Close()
	}
	if err := kexec.Load(p.o.Sys, k, initrd, plan.Cmdline, p.flags()); err != nil {
		return err
	}
	p.log.Info("kernel loaded", "instance", plan.Name, "kernel", p.o.Kernel, "cmdline", plan.Cmdline)
	return nil
}

func (p *Partition) unload(context.Context) error {
	// After a halt the image is spent: nothing left to unload.
	if err := kexec.Unload(p.o.Sys, p.flags()); err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

func (p *Partition) start(ctx context.Context) error {
	plan := p.Plan()
	if err := kexec.Reboot(p.o.Sys, kexec.CmdStart, plan.ID); err != nil {
		return err
	}
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	_, err := p.waitStatus(ctx, plan.Name, p.o.BootTimeout, "status active", func(s string) bool { return s == StatusActive })
	return err
}

// halt asks the executive to stop, halts the instance, and force-halts it
// when it is still active after the halt timeout or ctx ends.
func (p *Partition) halt(ctx context.Context) error {
	plan := p.Plan()
	p.mu.Lock()
	p.started = false
	p.mu.Unlock()
	if st, err := p.status(plan.Name); err == nil && st != StatusActive && st != StatusLoaded {
		return nil // it ended on its own
	}
	if p.o.Halt != nil {
		if err := p.o.Halt(ctx); err != nil {
			p.log.Warn("halt request to the executive failed", "err", err)
		}
	}
	err := kexec.Reboot(p.o.Sys, kexec.CmdHalt, plan.ID)
	if err == nil || errors.Is(err, syscall.ESRCH) {
		_, err = p.waitStatus(ctx, plan.Name, p.o.HaltTimeout, "halt", func(s string) bool { return s != StatusActive })
		if err == nil {
			return nil
		}
	}
	p.log.Warn("instance did not halt; forcing", "err", err)
	if ferr := kexec.Reboot(p.o.Sys, kexec.CmdForceHalt, plan.ID); ferr != nil && !errors.Is(ferr, syscall.ESRCH) {
		return errors.Join(err, ferr)
	}
	return nil
}
