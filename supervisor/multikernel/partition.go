package multikernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

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
	// Baseline is written to device_tree when the kernel has none yet
	// (kerf init's job; nil: a missing baseline is an error).
	Baseline []byte
	// Name is the instance name; default metadata.name. A hand-over runs
	// the new generation as a second instance beside the running one.
	Name string
	// Beside are the memory ranges of instances this supervisor runs; the
	// instance's memory is placed clear of them.
	Beside []Range

	// Options are the kernel, the initramfs, the halt request, Formatted
	// and the host seams, as for parker.
	kexec.Options
}

// Partition is a multikernel instance; it implements supervisor.Partition.
type Partition struct {
	o   Options
	log *slog.Logger

	life supervisor.Lifecycle
	// kern is the instance's kernel: the steps and waits multikernel
	// shares with parker.
	kern kexec.Secondary
	// located is the plan Locate returned (nil without Locate).
	located *Plan

	mu   sync.Mutex
	plan *Plan
	tx   string // overlays/tx_<n> of the instance
	info supervisor.Info
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
	p.kern = kexec.Secondary{Options: o.Options, Backend: "multikernel", Control: kexec.Control{Boot: p.boot, State: p.state, Halt: p.halt}}
	p.kern.Log = p.log
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
//
//	check            the kernel has the multikernel kernfs
//	mount            /sys/fs/multikernel (shared; undo: the last user unmounts)
//	baseline         check (or write) the baseline device tree; plan the instance
//	create-instance  the overlay written to overlays/new; wait for ready
//	                 (undo: rmdir overlays/tx_<n>)
//	shared-memory    map the region through /dev/mem (undo: unmap)
//	load             kexec_file_load with KEXEC_MULTIKERNEL|KEXEC_MK_ID(id) (undo: unload)
//	start            reboot(2) start, wait for active (undo: halt, force-halt)
//
// Everything but baseline and create-instance is kexec.Secondary's.
func (p *Partition) Steps() []supervisor.Step {
	return []supervisor.Step{
		{Name: "check", Do: func(context.Context) error {
			return p.kern.Supported(ErrUnsupported, "boot a kernel built from github.com/multikernel/linux; interface pinned to "+Pin)
		}},
		p.kern.MountStep(func() error {
			_, err := p.o.FS.ReadFile(p.path("device_tree"))
			return err
		}),
		{Name: "baseline", Do: p.baseline},
		{Name: "create-instance", Do: p.create, Undo: p.remove},
		p.kern.SharedMemoryStep(p.SharedMemory),
		p.kern.LoadStep(func() (string, uintptr, error) {
			plan := p.Plan()
			return plan.Cmdline, kexec.Multikernel | kexec.MKID(plan.ID), nil
		}),
		p.kern.StartStep(),
	}
}

// Start brings the instance up; on failure everything done is undone.
func (p *Partition) Start(ctx context.Context) error {
	return p.life.Start(ctx, func() []supervisor.Step {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.info = p.startInfo()
		return p.Steps()
	})
}

// startInfo is what a start reports before its steps run.
func (p *Partition) startInfo() supervisor.Info {
	return supervisor.Info{Isolation: supervisor.Isolation{
		CPUs: p.o.Config.Partition.CPUs.String(), CPUSet: "multikernel instance",
		Degradations: []string{"console: the multikernel interface offers no host-side console of the instance"},
	}}
}

// Stop halts the instance (politely, then by force when ctx ends or the
// halt timeout passes) and undoes the host preparation.
func (p *Partition) Stop(ctx context.Context) error { return p.life.Stop(ctx) }

// Kill force-halts the instance without undoing anything.
func (p *Partition) Kill() error { return p.halt(true) }

// Wait returns when the instance leaves active: exit status 0 when it
// halted, -1 ("failed") when the kernel reports failure.
func (p *Partition) Wait(ctx context.Context) (supervisor.Exit, error) { return p.kern.Wait(ctx) }

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

// state reads the instance's status (instances/<name>/status); an
// instance that is gone is not running.
func (p *Partition) state() (kexec.State, error) {
	plan := p.Plan()
	if plan == nil {
		return kexec.State{}, fmt.Errorf("multikernel: partition %w", supervisor.ErrNotStarted)
	}
	b, err := p.o.FS.ReadFile(p.path("instances", plan.Name, "status"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return kexec.State{}, nil
	case err != nil:
		return kexec.State{}, fmt.Errorf("multikernel: %w", err)
	}
	st := strings.TrimSpace(string(b))
	return kexec.State{Status: st, Running: st == StatusActive, Failed: st == StatusFailed}, nil
}

// boot starts the loaded instance: reboot(2) MKLI.
func (p *Partition) boot() error { return kexec.Reboot(p.o.Sys, kexec.CmdStart, p.Plan().ID) }

// halt halts the instance with reboot(2) MKLH, or with force MKLF; an
// instance that is not running (ESRCH) is no error.
func (p *Partition) halt(force bool) error {
	plan := p.Plan()
	if plan == nil {
		return fmt.Errorf("multikernel: partition %w", supervisor.ErrNotStarted)
	}
	cmd := uint32(kexec.CmdHalt)
	if force {
		cmd = kexec.CmdForceHalt
	}
	if err := kexec.Reboot(p.o.Sys, cmd, plan.ID); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

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
	err = p.kern.Await(ctx, p.o.BootTimeout, "status "+StatusReady, func(st kexec.State) bool { return st.Status == StatusReady })
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
