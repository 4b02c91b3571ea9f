package vm

import (
	"context"
	"encoding/json"
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
	// Tap, when set, is created on start and deleted on stop; QEMU.NIC
	// then uses it (with QEMU.NIC.MAC, if set). The tap gets HostAddress
	// (CIDR), or joins the existing host bridge Bridge without an address
	// of the host's (the guest is then on the network the bridge carries).
	Tap         string
	HostAddress string
	Bridge      string
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
	// ConsoleFile, when set, is where QEMU's output (the guest's serial
	// console) goes, appended: a file, not a pipe, so QEMU outlives the
	// supervisor and a later one that adopts the guest reads on.
	ConsoleFile string
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
	pid  int    // QEMU's, 0 before the first start
	// start is QEMU's start time in /proc, which names it to a later
	// supervisor (Record).
	start uint64
	// proc is how this start's QEMU process ends, run how the partition's
	// run ends (Wait): with proc, or earlier, when the guest's watchdog
	// fires and QEMU holds the paused guest until it is stopped.
	proc, run *supervisor.Ending
	info      supervisor.Info
}

// Signals (supervisor.Exit.Signal) of a run that a guest event ended.
const (
	// SignalWatchdog: the guest's watchdog fired (the executive stopped
	// cycling, or the kernel hung); QEMU paused the guest.
	SignalWatchdog = "guest watchdog fired"
	// SignalGuestReset: the guest reset itself, which with panic=-1 is a
	// kernel panic (mkrt-init powers off, it never reboots); -no-reboot
	// ended QEMU.
	SignalGuestReset = "guest reset itself (kernel panic)"
)

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
	if o.QEMU.Events == "" {
		o.QEMU.Events = filepath.Join(o.RunDir, "mkrt-"+o.Name+".events")
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
//	tap         create the tap with HostAddress, or in Bridge (undo:
//	            delete it)
//	qemu        start QEMU, its serial console into the console ring, and
//	            listen to its events in the background (a failure to
//	            connect is a degradation: a fired watchdog then shows only
//	            as missed heartbeats, a guest reset as QEMU's plain exit)
//	            (undo: ask the executive to halt unless the guest ended
//	            already, QMP quit, kill when the stop's context ends;
//	            remove the sockets)
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
		v.qemu, v.pid, v.start, v.proc, v.run = v.o.QEMU, 0, 0, nil, nil
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
	if err := createTap(tap, v.o.HostAddress, v.o.Bridge); err != nil {
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
	_ = os.Remove(qemu.Events)
	cmd := exec.Command(bin, args...)
	// A session of its own and no parent-death signal: the guest (the
	// plant's controller) outlives the supervisor, and a later one adopts
	// it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout, cmd.Stderr = v.console, v.console
	var from int64
	if v.o.ConsoleFile != "" {
		f, err := os.OpenFile(v.o.ConsoleFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("vm: console file: %w", err)
		}
		defer f.Close() // QEMU has its own copy
		if fi, err := f.Stat(); err == nil {
			from = fi.Size()
		}
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vm: start %s: %w (install Debian qemu-system-x86)", bin, err)
	}
	start, _ := supervisor.ProcessStart("/proc", cmd.Process.Pid)
	// From here Kill ends this QEMU (proc is nil until it is reaped).
	v.mu.Lock()
	v.pid, v.start = cmd.Process.Pid, start
	v.info.PID = cmd.Process.Pid
	if qemu.Accel != "kvm" {
		v.info.Degradations = append(v.info.Degradations, "accel: tcg (software emulation; latency figures are not representative)")
	}
	v.mu.Unlock()
	v.log.Info("qemu started", "pid", cmd.Process.Pid, "accel", qemu.Accel)
	proc := v.life.Reap(cmd, func(e supervisor.Exit) {
		v.mu.Lock()
		v.info.PID = 0
		v.mu.Unlock()
		v.log.Info("qemu ended", "how", e.String())
	})
	v.running(proc, qemu.Events, from)
	return nil
}

// running makes proc (how QEMU ends) this start's, and the partition's run
// end with it or with a guest event (watch); the console file is followed
// from offset from.
func (v *VM) running(proc *supervisor.Ending, events string, from int64) {
	run := supervisor.NewEnding()
	v.life.Running(run)
	v.mu.Lock()
	v.proc, v.run = proc, run
	v.mu.Unlock()
	go v.watch(proc, run, events)
	if v.o.ConsoleFile != "" {
		go func() {
			if err := supervisor.FollowFile(proc, v.o.ConsoleFile, from, v.console); err != nil {
				v.log.Warn("console file unreadable", "err", err)
			}
		}()
	}
}

// dialEvents connects to QEMU's event socket, bounded by 10s and QEMU's
// end. QEMU creates the socket before the guest runs, and mkrt-init arms
// the watchdog only after the executive's first cycle, seconds later.
func (v *VM) dialEvents(path string, proc *supervisor.Ending) *QMP {
	if path == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		select {
		case <-proc.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	q, err := DialQMP(ctx, path)
	if err != nil {
		select {
		case <-proc.Done(): // QEMU ended first: nothing to listen to
		default:
			v.degrade("guest events: " + err.Error())
			v.log.Warn("not listening to QEMU's events: a fired watchdog shows as missed heartbeats, a guest reset as QEMU's plain exit", "err", err)
		}
		return nil
	}
	return q
}

// watch ends the partition's run: at once when the guest's watchdog fires
// (the guest is paused; QEMU runs on until the stop), else when QEMU
// ends — as its process ended, unless its last events said the guest reset
// itself. It listens on the event socket at path ("" for none).
func (v *VM) watch(proc, run *supervisor.Ending, path string) {
	events := v.dialEvents(path, proc)
	evc := make(chan Event)
	done := make(chan struct{})
	defer close(done)
	if events != nil {
		defer events.Close()
		go func() {
			defer close(evc)
			for {
				e, err := events.ReadEvent()
				if err != nil {
					return
				}
				select {
				case evc <- e:
				case <-done:
					return
				}
			}
		}()
	} else {
		close(evc)
	}
	reset := false
	seen := func(e Event) {
		switch e.Name {
		case "WATCHDOG":
			v.log.Error("guest watchdog fired; QEMU paused the guest", "data", string(e.Data))
			run.End(supervisor.Exit{Code: -1, Signal: SignalWatchdog, Time: v.o.Clock.Now()})
		case "SHUTDOWN":
			var d struct {
				Guest  bool   `json:"guest"`
				Reason string `json:"reason"`
			}
			if json.Unmarshal(e.Data, &d) == nil && d.Guest && d.Reason == "guest-reset" {
				reset = true
				v.log.Error("the guest reset itself (kernel panic)")
			}
		}
	}
	// Once QEMU ended, the events it wrote before are read until its
	// socket's end closes evc, bounded by drain.
	ended, drain := proc.Done(), (<-chan time.Time)(nil)
	for {
		select {
		case e, ok := <-evc:
			if ok {
				seen(e)
				continue
			}
			evc = nil
			if ended != nil {
				continue
			}
		case <-ended:
			ended = nil
			if evc != nil {
				t := time.NewTimer(2 * time.Second)
				defer t.Stop()
				drain = t.C
				continue
			}
		case <-drain:
		}
		x, _ := proc.Wait(context.Background())
		if reset {
			x.Code, x.Signal = -1, SignalGuestReset
		}
		run.End(x)
		return
	}
}

// stopQEMU asks the executive to halt (the guest powers off) unless the
// run ended already (a fired watchdog leaves the guest paused), then QEMU
// to quit (QMP), then kills it when ctx ends, and waits for it to be
// reaped.
func (v *VM) stopQEMU(ctx context.Context) error {
	defer os.Remove(v.o.QEMU.QMP)
	defer os.Remove(v.o.QEMU.Events)
	v.mu.Lock()
	proc, run := v.proc, v.run
	v.mu.Unlock()
	if proc == nil {
		return nil
	}
	done := proc.Done()
	guestGone := false
	select {
	case <-run.Done():
		guestGone = true
	default:
	}
	if v.o.Halt != nil && !guestGone {
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
	if !proc.EndsWithin(10 * time.Second) {
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

// Wait returns how the partition's run ended: how QEMU ended (the guest
// powering off is exit status 0), or SignalWatchdog as soon as the guest's
// watchdog fires, or SignalGuestReset when the guest reset itself.
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
	pid, e := v.pid, v.proc
	v.mu.Unlock()
	if pid == 0 {
		return fmt.Errorf("vm: partition %w", supervisor.ErrNotStarted)
	}
	if e != nil {
		select {
		case <-e.Done():
			return nil
		default:
		}
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("vm: kill(-%d, SIGKILL): %w", pid, err)
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
