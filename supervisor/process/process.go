// Package process is the process partition backend: the executive runs as
// a child process of the supervisor, in its own process group, confined to
// the partition's CPUs by a cpuset cgroup (v2 isolated partition when the
// kernel grants it, else v1 exclusive cpuset), with the IRQs moved off those
// CPUs and the dedicated NICs moved into the partition's own network
// namespace, where the child is started.
//
// Host preparation is a list of supervisor.Steps (check, isolate-cpus,
// move-irqs, assign-nics, shared-memory, load, start), undone in reverse
// on failure and on Stop. To isolate it needs root (CAP_SYS_ADMIN and
// CAP_NET_ADMIN) and a cpuset cgroup; without them it runs the child
// unisolated and lists every degradation in Info. Child exit code 125
// (supervisor.ExitDoNotRestart) means "do not restart". SCHED_FIFO is set
// by the executive itself; the priority and CPUs are passed in the
// environment (MKRT_PRIORITY, MKRT_CPUS, MKRT_PARTITION, MKRT_SHM_FD).
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/supervisor"
)

// ErrUnsupported is a host that lacks a kernel feature the step needs.
var ErrUnsupported = errors.New("not supported on this host")

// NIC is a dedicated NIC moved into the partition's namespace.
type NIC struct {
	// Interface is the host interface name; PCI (0000:03:00.0) is resolved
	// to it through /sys/bus/pci/devices/<pci>/net when Interface is empty.
	Interface string
	PCI       string
	Address   string // CIDR inside the partition, may be empty
	Gateway   string
}

// Config describes one process partition.
type Config struct {
	// Name is the partition name (letters, digits, '-', '_'); it names the
	// cgroup and the network namespace mkrt-<Name>.
	Name string
	// Command is the program and its arguments; Env is added to the
	// supervisor's environment; ExtraFiles become fds 3, 4, … (after the
	// shared-memory fd when SharedMemory is set).
	Command    []string
	Env        []string
	ExtraFiles []*os.File
	Dir        string
	// CPUs are the partition's CPUs; empty: no core isolation.
	CPUs []int
	// Priority is the SCHED_FIFO priority the executive is to use.
	Priority int
	NICs     []NIC
	// SharedMemory, when Path is set, is created (Size bytes reserved, mode
	// 0600; an existing file is refused unless shm.CreateFile finds it safe),
	// passed to the child as fd 3, and removed on stop.
	SharedMemory SharedMemory
	// KillGrace is how long Stop waits after SIGTERM before SIGKILL when its
	// context has no deadline sooner (default 5s).
	KillGrace time.Duration

	// Host seams; the zero values use the real host.
	FS         FS     // default OSFS
	Net        Net    // default NewLinuxNet(); nil and NoNet means no NIC support
	CgroupRoot string // default /sys/fs/cgroup
	ProcRoot   string // default /proc
	SysRoot    string // default /sys
	// Privileged overrides the euid check (nil: euid == 0).
	Privileged *bool

	Log   *slog.Logger
	Clock supervisor.Clock
	// ConsoleLines is how many output lines Console keeps (default 200).
	ConsoleLines int
	// ConsoleFile, when set, is where the program's stdout and stderr go
	// (appended): a file, not a pipe, so the program outlives the
	// supervisor (a pipe's reader dying would end it with SIGPIPE) and a
	// later supervisor that adopts it reads on. Console follows the file.
	ConsoleFile string
}

// SharedMemory is the file-backed shared-memory region.
type SharedMemory struct {
	Path string
	Size int64
}

// maxConsoleFile is the size at which a start moves the console file aside.
const maxConsoleFile = 4 << 20

// Partition is a process partition; it implements supervisor.Partition.
type Partition struct {
	cfg     Config
	log     *slog.Logger
	console *supervisor.Console

	life supervisor.Lifecycle

	mu   sync.Mutex
	info supervisor.Info
	run  *program // the program's current or last run; nil before the first
	cg   *cpuset
	irqs irqState
	nics []movedNIC
	shm  *os.File
}

var _ supervisor.Partition = (*Partition)(nil)

// New checks cfg and returns a stopped partition.
func New(cfg Config) (*Partition, error) {
	if cfg.Name == "" || strings.ContainsAny(cfg.Name, "/. \t\n") {
		return nil, fmt.Errorf("process: bad partition name %q (letters, digits, '-', '_')", cfg.Name)
	}
	if len(cfg.Command) == 0 {
		return nil, errors.New("process: no command to run")
	}
	if cfg.FS == nil {
		cfg.FS = OSFS{}
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/sys/fs/cgroup"
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.SysRoot == "" {
		cfg.SysRoot = "/sys"
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 5 * time.Second
	}
	if cfg.ConsoleLines <= 0 {
		cfg.ConsoleLines = 200
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = supervisor.RealClock{}
	}
	p := &Partition{cfg: cfg, log: cfg.Log.With("partition", cfg.Name, "backend", "process")}
	p.life = supervisor.Lifecycle{Backend: "process", Log: p.log, Clock: cfg.Clock}
	p.console = supervisor.NewConsole(cfg.ConsoleLines)
	p.console.OnLine = func(line string) { p.log.Info("partition console", "line", line) }
	return p, nil
}

// Backend returns "process".
func (p *Partition) Backend() string { return string(configs.BackendProcess) }

// Console returns the child's last output lines.
func (p *Partition) Console() []string { return p.console.Lines() }

// Info returns the pid, isolation and degradations of the current run.
func (p *Partition) Info() supervisor.Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info.Clone()
}

func (p *Partition) degrade(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.log.Warn("partition degraded", "what", msg)
	p.mu.Lock()
	p.info.Degradations = append(p.info.Degradations, msg)
	p.mu.Unlock()
}

func (p *Partition) privileged() bool {
	if p.cfg.Privileged != nil {
		return *p.cfg.Privileged
	}
	return os.Geteuid() == 0
}

// Steps returns host preparation for one start, in order.
func (p *Partition) Steps() []supervisor.Step {
	return []supervisor.Step{
		{Name: "check", Do: p.check},
		{Name: "isolate-cpus", Do: p.isolateCPUs, Undo: p.releaseCPUs},
		{Name: "move-irqs", Do: p.moveIRQs, Undo: p.restoreIRQs},
		{Name: "assign-nics", Do: p.assignNICs, Undo: p.returnNICs},
		{Name: "shared-memory", Do: p.createSHM, Undo: p.removeSHM},
		{Name: "load", Do: p.load},
		{Name: "start", Do: p.startChild, Undo: p.stopChild},
	}
}

// Start prepares the host and starts the child. On failure everything done
// is undone.
func (p *Partition) Start(ctx context.Context) error {
	return p.life.Start(ctx, func() []supervisor.Step {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.info = supervisor.Info{Isolation: supervisor.Isolation{CPUs: configs.CPUList(p.cfg.CPUs).String(), CPUSet: "none"}}
		return p.Steps()
	})
}

// Stop ends the child (SIGTERM to its group, SIGKILL after KillGrace or
// when ctx ends) and undoes host preparation in reverse.
func (p *Partition) Stop(ctx context.Context) error { return p.life.Stop(ctx) }

// Records is what the last start and stop ran.
func (p *Partition) Records() []supervisor.StepRecord { return p.life.Records() }

func (p *Partition) check(ctx context.Context) error {
	if !p.privileged() {
		p.degrade("not root: running unisolated (cpuset, IRQ affinity and NICs need root)")
	}
	if len(p.cfg.NICs) > 0 && p.cfg.Net == nil {
		n, err := NewLinuxNet()
		if err != nil {
			return err
		}
		p.cfg.Net = n
	}
	return nil
}

func (p *Partition) isolateCPUs(ctx context.Context) error {
	if len(p.cfg.CPUs) == 0 {
		p.degrade("cpuset: no partition cpus configured; running on every CPU")
		return nil
	}
	if !p.privileged() {
		p.degrade("cpuset: permission denied (run as root)")
		return nil
	}
	cg, err := setupCPUSet(p.cfg.FS, p.cfg.CgroupRoot, p.cfg.Name, configs.CPUList(p.cfg.CPUs).String())
	if err != nil {
		if cg != nil {
			// Leave no half-made cgroup behind.
			_ = cg.remove(ctx)
		}
		if permission(err) || errors.Is(err, ErrUnsupported) {
			p.degrade("%v", err)
			return nil
		}
		return err
	}
	p.mu.Lock()
	p.cg = cg
	p.info.CPUSet = cg.mode
	p.mu.Unlock()
	for _, n := range cg.notes {
		p.degrade("%s", n)
	}
	return nil
}

func (p *Partition) releaseCPUs(ctx context.Context) error {
	p.mu.Lock()
	cg := p.cg
	p.cg = nil
	p.mu.Unlock()
	if cg == nil {
		return nil
	}
	return cg.remove(ctx)
}

// irqState is what move-irqs did, for its undo.
type irqState struct{ moved []irqMove }

func (p *Partition) moveIRQs(ctx context.Context) error {
	if len(p.cfg.CPUs) == 0 {
		return nil
	}
	if !p.privileged() {
		p.degrade("irq: permission denied (run as root); IRQs stay on the partition's CPUs")
		return nil
	}
	b, err := p.cfg.FS.ReadFile(p.cfg.SysRoot + "/devices/system/cpu/online")
	if err != nil {
		return fmt.Errorf("process: irq: %w", err)
	}
	online, err := configs.ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("process: irq: online cpus: %w", err)
	}
	moved, skipped, err := moveIRQs(p.cfg.FS, p.cfg.ProcRoot, p.cfg.CPUs, online)
	p.mu.Lock()
	p.irqs = irqState{moved: moved}
	p.info.IRQsMoved, p.info.IRQsSkipped = len(moved), skipped
	p.mu.Unlock()
	if err != nil {
		if permission(err) {
			p.degrade("%v", err)
			return nil
		}
		return errors.Join(err, p.restoreIRQs(ctx))
	}
	p.log.Info("IRQs moved off partition cpus", "moved", len(moved), "skipped", skipped)
	return nil
}

func (p *Partition) restoreIRQs(context.Context) error {
	p.mu.Lock()
	moved := p.irqs.moved
	p.irqs = irqState{}
	p.mu.Unlock()
	return restoreIRQs(p.cfg.FS, p.cfg.ProcRoot, moved)
}

// InNetwork runs fn inside the partition's network namespace while it has
// one (its dedicated NICs were assigned), else directly
// (supervisor.Networked).
func (p *Partition) InNetwork(fn func() error) error {
	p.mu.Lock()
	ns, net := p.info.NetNS, p.cfg.Net
	p.mu.Unlock()
	if ns == "" || net == nil {
		return fn()
	}
	return net.Do(ns, fn)
}

// NetNS is the name of the partition's network namespace.
func (p *Partition) NetNS() string { return "mkrt-" + p.cfg.Name }

func (p *Partition) assignNICs(ctx context.Context) error {
	if len(p.cfg.NICs) == 0 {
		return nil
	}
	if !p.privileged() {
		p.degrade("nics: permission denied (run as root); the partition shares the host network")
		return nil
	}
	ns := p.NetNS()
	if err := p.cfg.Net.NewNS(ns); err != nil {
		return err
	}
	p.mu.Lock()
	p.info.NetNS = ns
	p.mu.Unlock()
	for _, nic := range p.cfg.NICs {
		name, err := p.resolveNIC(nic)
		if err != nil {
			return errors.Join(err, p.returnNICs(ctx))
		}
		st, err := p.cfg.Net.LinkState(name)
		if err != nil {
			return errors.Join(err, p.returnNICs(ctx))
		}
		if err := p.cfg.Net.MoveLink(name, ns, nic.Address, nic.Gateway); err != nil {
			// The link may have moved before configuration failed: return it.
			p.mu.Lock()
			p.nics = append(p.nics, movedNIC{name: name, st: st})
			p.mu.Unlock()
			return errors.Join(err, p.returnNICs(ctx))
		}
		p.mu.Lock()
		p.nics = append(p.nics, movedNIC{name: name, st: st})
		p.info.NICs = append(p.info.NICs, name)
		p.mu.Unlock()
	}
	return nil
}

type movedNIC struct {
	name string
	st   LinkState
}

func (p *Partition) resolveNIC(nic NIC) (string, error) {
	if nic.Interface != "" {
		return nic.Interface, nil
	}
	names, err := p.cfg.FS.ReadDir(p.cfg.SysRoot + "/bus/pci/devices/" + nic.PCI + "/net")
	if err != nil || len(names) == 0 {
		return "", fmt.Errorf("process: nic %s: no network interface for this PCI device (is it bound to a network driver?): %w", nic.PCI, errors.Join(err, os.ErrNotExist))
	}
	return names[0], nil
}

func (p *Partition) returnNICs(context.Context) error {
	p.mu.Lock()
	nics := p.nics
	p.nics = nil
	ns := p.info.NetNS
	p.info.NetNS, p.info.NICs = "", nil
	p.mu.Unlock()
	if ns == "" {
		return nil
	}
	var errs []error
	for i := len(nics) - 1; i >= 0; i-- {
		if err := p.cfg.Net.ReturnLink(nics[i].name, ns, nics[i].st); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.cfg.Net.DeleteNS(ns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (p *Partition) createSHM(context.Context) error {
	sm := p.cfg.SharedMemory
	if sm.Path == "" {
		return nil
	}
	f, err := shm.CreateFile(sm.Path, sm.Size)
	if err != nil {
		return fmt.Errorf("process: shared memory: %w", err)
	}
	p.mu.Lock()
	p.shm = f
	p.mu.Unlock()
	return nil
}

func (p *Partition) removeSHM(context.Context) error {
	p.mu.Lock()
	f := p.shm
	p.shm = nil
	p.mu.Unlock()
	if f == nil {
		return nil
	}
	cerr := f.Close()
	if err := os.Remove(p.cfg.SharedMemory.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("process: shared memory: %w", err)
	}
	return cerr
}

func (p *Partition) load(context.Context) error {
	if _, err := exec.LookPath(p.cfg.Command[0]); err != nil {
		return fmt.Errorf("process: load %s: %w", p.cfg.Command[0], err)
	}
	return nil
}

func (p *Partition) startChild(ctx context.Context) error {
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = append(os.Environ(), p.cfg.Env...)
	cmd.Env = append(cmd.Env, "MKRT_PARTITION="+p.cfg.Name, "MKRT_CPUS="+configs.CPUList(p.cfg.CPUs).String(),
		"MKRT_PRIORITY="+strconv.Itoa(p.cfg.Priority))
	p.mu.Lock()
	if p.shm != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, p.shm)
		cmd.Env = append(cmd.Env, "MKRT_SHM_FD=3", "MKRT_SHM="+p.cfg.SharedMemory.Path)
	}
	ns, cg := p.info.NetNS, p.cg
	p.mu.Unlock()
	cmd.ExtraFiles = append(cmd.ExtraFiles, p.cfg.ExtraFiles...)
	cmd.Stdout, cmd.Stderr = p.console, p.console
	var logFile *os.File
	var logFrom int64
	if p.cfg.ConsoleFile != "" {
		if fi, err := os.Stat(p.cfg.ConsoleFile); err == nil && fi.Size() > maxConsoleFile {
			_ = os.Rename(p.cfg.ConsoleFile, p.cfg.ConsoleFile+".1") // keep one older file
		}
		f, err := os.OpenFile(p.cfg.ConsoleFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("process: console file: %w", err)
		}
		defer f.Close() // the child has its own copy
		if fi, err := f.Stat(); err == nil {
			logFrom = fi.Size()
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = sysProcAttr()
	start := func() error { return cmd.Start() }
	var err error
	if ns != "" {
		err = p.cfg.Net.Do(ns, start)
	} else {
		err = start()
	}
	if err != nil {
		return fmt.Errorf("process: start %s: %w", p.cfg.Command[0], err)
	}
	// The run first: until Running, a signal sees the last run ended and
	// sends nothing.
	run := &program{pid: cmd.Process.Pid}
	run.start, _ = supervisor.ProcessStart(p.cfg.ProcRoot, run.pid)
	p.mu.Lock()
	p.run = run
	p.info.PID = cmd.Process.Pid
	p.info.RT = p.privileged()
	p.info.RTWhy = ""
	if !p.info.RT {
		p.info.RTWhy = "not root: the executive cannot get SCHED_FIFO"
	}
	p.mu.Unlock()
	ended := p.life.Reap(cmd, func(e supervisor.Exit) {
		p.mu.Lock()
		p.info.PID = 0
		p.mu.Unlock()
		p.log.Info("partition program ended", "how", e.String())
	})
	if logFile != nil {
		go p.follow(ended, logFrom)
	}
	if cg != nil {
		if err := cg.attach(cmd.Process.Pid); err != nil {
			// The child runs unconfined; that is worse than not running.
			if kerr := p.kill(ended); kerr != nil {
				return errors.Join(err, kerr)
			}
			return err
		}
	}
	p.log.Info("partition program started", "pid", cmd.Process.Pid, "netns", ns)
	return nil
}

// stopChild sends SIGTERM to the child's group, then SIGKILL after
// KillGrace or when ctx ends, and waits for the child to be reaped.
func (p *Partition) stopChild(ctx context.Context) error {
	ended := p.life.Ending()
	done := ended.Done()
	select {
	case <-done:
		return nil
	default:
	}
	p.signal(termSignal)
	grace := p.cfg.Clock.NewTimer(p.cfg.KillGrace)
	defer grace.Stop()
	select {
	case <-done:
		return nil
	case <-grace.C():
	case <-ctx.Done():
	}
	p.log.Warn("partition program ignored SIGTERM; killing its process group")
	return p.kill(ended)
}

// kill sends SIGKILL to the child's group and waits for the child to be
// reaped, bounded (see Ending.EndsWithin).
func (p *Partition) kill(ended *supervisor.Ending) error {
	p.signal(killSignal)
	if !ended.EndsWithin(10 * time.Second) {
		return errors.New("process: child did not die after SIGKILL (uninterruptible sleep?)")
	}
	return nil
}

// Kill sends SIGKILL to the child's process group.
func (p *Partition) Kill() error { return p.signal(killSignal) }

// Wait waits for the child to end.
func (p *Partition) Wait(ctx context.Context) (supervisor.Exit, error) { return p.life.Wait(ctx) }

// signal sends sig to the program's process group (the program is its
// leader); nothing when it has ended (its group id may be another's by
// now).
func (p *Partition) signal(sig signal) error {
	p.mu.Lock()
	run := p.run
	p.mu.Unlock()
	ended := p.life.Ending()
	if run == nil || ended == nil {
		return nil
	}
	select {
	case <-ended.Done():
		return nil
	default:
	}
	return signalGroup(run.pid, sig)
}

var _ io.Writer = (*supervisor.Console)(nil)
