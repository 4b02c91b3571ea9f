package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
)

// Options configure a VM partition.
type Options struct {
	Name string
	QEMU Config
	// HostCPUs are the host cores the vCPUs are pinned to, vCPU i to
	// HostCPUs[i % len]; empty leaves them unpinned.
	HostCPUs []int
	// Tap, when set, is created on start with HostAddress (CIDR) and
	// deleted on stop; QEMU.NIC then uses it.
	Tap         string
	HostAddress string
	// Halt asks the executive to stop and power off (through the shared
	// region's command ring). Without it Stop goes straight to QMP quit.
	Halt func(ctx context.Context) error
	// RunDir holds the QMP socket; default os.TempDir().
	RunDir string
	Log    *slog.Logger
	// ConsoleLines is the size of the console ring; default 500.
	ConsoleLines int
	// ConsoleLog, if set, also receives every console line.
	ConsoleLog io.Writer
	// Clock times the steps and the exit; default the real clock.
	Clock supervisor.Clock
}

// VM is a partition in a QEMU guest; it implements supervisor.Partition.
type VM struct {
	o       Options
	log     *slog.Logger
	console *supervisor.Console

	life supervisor.Lifecycle

	mu   sync.Mutex
	qemu Config // this start's invocation (the tap's NIC filled in)
	cmd  *exec.Cmd
	info supervisor.Info
}

var _ supervisor.Partition = (*VM)(nil)

// New returns a VM partition; nothing runs until Start.
func New(o Options) *VM {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ConsoleLines == 0 {
		o.ConsoleLines = 500
	}
	if o.RunDir == "" {
		o.RunDir = os.TempDir()
	}
	if o.QEMU.QMP == "" {
		o.QEMU.QMP = filepath.Join(o.RunDir, "mkrt-"+o.Name+".qmp")
	}
	if o.Clock == nil {
		o.Clock = supervisor.RealClock{}
	}
	v := &VM{o: o, log: o.Log.With("partition", o.Name, "backend", "vm"), console: supervisor.NewConsole(o.ConsoleLines)}
	v.life = supervisor.Lifecycle{Backend: "vm", Log: v.log, Clock: o.Clock}
	if w := o.ConsoleLog; w != nil {
		v.console.OnLine = func(line string) { fmt.Fprintln(w, line) }
	}
	return v
}

// Backend is "vm".
func (v *VM) Backend() string { return string(configs.BackendVM) }

// Steps returns the bring-up of one start, in order:
//
//	tap         create the tap with HostAddress (undo: delete it)
//	qemu        start QEMU, its serial console into the console ring
//	            (undo: ask the executive to halt, QMP quit, kill when the
//	            stop's context ends; remove the QMP socket)
//	pin-vcpus   pin the vCPU threads to HostCPUs through QMP (a failure is
//	            a degradation, not an error)
func (v *VM) Steps() []supervisor.Step {
	return []supervisor.Step{
		{Name: "tap", Do: v.createTap, Undo: v.deleteTap},
		{Name: "qemu", Do: v.startQEMU, Undo: v.stopQEMU},
		{Name: "pin-vcpus", Do: v.pinVCPUs},
	}
}

// Start creates the tap, starts QEMU and pins its vCPU threads; on failure
// everything done is undone.
func (v *VM) Start(ctx context.Context) error {
	return v.life.Start(ctx, func() []supervisor.Step {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.qemu, v.cmd = v.o.QEMU, nil
		v.info = supervisor.Info{Isolation: supervisor.Isolation{CPUSet: "none", CPUs: configs.CPUList(v.o.HostCPUs).String()}}
		return v.Steps()
	})
}

// Stop asks the executive to halt (the guest powers off), then QMP quit,
// then kills QEMU when ctx ends; it undoes the host preparation.
func (v *VM) Stop(ctx context.Context) error { return v.life.Stop(ctx) }

// Records is what the last start and stop ran.
func (v *VM) Records() []supervisor.StepRecord { return v.life.Records() }

func (v *VM) degrade(msg string) {
	v.mu.Lock()
	v.info.Degradations = append(v.info.Degradations, msg)
	v.mu.Unlock()
}

func (v *VM) createTap(context.Context) error {
	tap := v.o.Tap
	if tap == "" {
		return nil
	}
	if err := createTap(tap, v.o.HostAddress); err != nil {
		return err
	}
	v.mu.Lock()
	v.qemu.NIC = NIC{Kind: "tap", Tap: tap, MAC: v.o.QEMU.NIC.MAC}
	v.info.NICs = []string{tap}
	v.mu.Unlock()
	return nil
}

func (v *VM) deleteTap(context.Context) error {
	if v.o.Tap == "" {
		return nil
	}
	return deleteLink(v.o.Tap)
}

func (v *VM) startQEMU(context.Context) error {
	v.mu.Lock()
	qemu := v.qemu
	v.mu.Unlock()
	args, err := qemu.Args()
	if err != nil {
		return err
	}
	bin := qemu.QEMU
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	_ = os.Remove(qemu.QMP)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = v.console, v.console
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vm: start %s: %w (install Debian qemu-system-x86)", bin, err)
	}
	// cmd first: until Running, Kill sees the last run ended and sends
	// nothing.
	v.mu.Lock()
	v.cmd = cmd
	v.info.PID = cmd.Process.Pid
	if qemu.Accel != "kvm" {
		v.info.Degradations = append(v.info.Degradations, "accel: tcg (software emulation; latency figures are not representative)")
	}
	v.mu.Unlock()
	v.log.Info("qemu started", "pid", cmd.Process.Pid, "accel", qemu.Accel)
	v.life.Reap(cmd, func(e supervisor.Exit) {
		v.mu.Lock()
		v.info.PID = 0
		v.mu.Unlock()
		v.log.Info("qemu ended", "how", e.String())
	})
	return nil
}

// stopQEMU asks the executive to halt (the guest powers off), then QEMU to
// quit (QMP), then kills it when ctx ends, and waits for it to be reaped.
func (v *VM) stopQEMU(ctx context.Context) error {
	defer os.Remove(v.o.QEMU.QMP)
	ended := v.life.Ending()
	if ended == nil {
		return nil
	}
	done := ended.Done()
	if v.o.Halt != nil {
		if err := v.o.Halt(ctx); err != nil {
			v.log.Warn("halt request failed", "err", err)
		}
		t := time.NewTimer(remaining(ctx, 5*time.Second))
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	select {
	case <-done:
		return nil
	default:
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if q, err := DialQMP(qctx, v.o.QEMU.QMP); err == nil {
		_, _ = q.Execute("quit", nil)
		q.Close()
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	v.log.Warn("qemu did not quit; killing it")
	if err := v.Kill(); err != nil {
		return err
	}
	if !ended.EndsWithin(10 * time.Second) {
		return errors.New("vm: qemu did not die after SIGKILL (uninterruptible sleep?)")
	}
	return nil
}

// pinVCPUs pins vCPU i to HostCPUs[i % len] through QMP, bounded by 10s;
// a failure is a degradation.
func (v *VM) pinVCPUs(ctx context.Context) error {
	if len(v.o.HostCPUs) == 0 {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := v.pin(qctx); err != nil {
		v.degrade("vcpu pinning: " + err.Error())
		v.log.Warn("vCPU threads not pinned", "err", err)
	}
	return nil
}

func (v *VM) pin(ctx context.Context) error {
	q, err := DialQMP(ctx, v.o.QEMU.QMP)
	if err != nil {
		return err
	}
	defer q.Close()
	threads, err := q.VCPUThreads()
	if err != nil {
		return err
	}
	for idx, tid := range threads {
		cpu := v.o.HostCPUs[idx%len(v.o.HostCPUs)]
		if err := pinThread(tid, cpu); err != nil {
			return fmt.Errorf("vCPU %d (thread %d) to CPU %d: %w", idx, tid, cpu, err)
		}
		v.log.Info("vCPU pinned", "vcpu", idx, "thread", tid, "cpu", cpu)
	}
	return nil
}

// Wait returns how QEMU ended (the guest powering off is exit status 0).
func (v *VM) Wait(ctx context.Context) (supervisor.Exit, error) { return v.life.Wait(ctx) }

func remaining(ctx context.Context, max time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl) / 2; d < max {
			return d
		}
	}
	return max
}

// Kill ends QEMU at once (SIGKILL to its process group); nothing when it
// has ended already (its group id may be another's by now).
func (v *VM) Kill() error {
	v.mu.Lock()
	cmd := v.cmd
	v.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("vm: partition %w", supervisor.ErrNotStarted)
	}
	if e := v.life.Ending(); e != nil {
		select {
		case <-e.Done():
			return nil
		default:
		}
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("vm: kill(-%d, SIGKILL): %w", cmd.Process.Pid, err)
	}
	return nil
}

// Info reports the QEMU pid, the accelerator and the isolation outcome.
func (v *VM) Info() supervisor.Info {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.info.Clone()
}

// Console returns the latest serial console lines.
func (v *VM) Console() []string { return v.console.Lines() }
