package vm

import (
	"bufio"
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
}

// VM is a partition in a QEMU guest.
type VM struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd
	ended   *supervisor.Ending // of QEMU's current run
	console *ring
	info    supervisor.Info
	undo    []func()
}

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
	return &VM{o: o, log: o.Log.With("partition", o.Name, "backend", "vm"), console: newRing(o.ConsoleLines)}
}

// Backend is "vm".
func (v *VM) Backend() string { return "vm" }

// Start creates the tap, starts QEMU and pins its vCPU threads.
func (v *VM) Start(ctx context.Context) (err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd != nil && v.ended != nil {
		select {
		case <-v.ended.Done():
		default:
			return errors.New("vm: already running")
		}
	}
	v.info = supervisor.Info{Isolation: supervisor.Isolation{CPUSet: "none", CPUs: cpulist(v.o.HostCPUs)}}
	defer func() {
		if err != nil {
			v.undoAll()
		}
	}()
	if v.o.Tap != "" {
		if err := createTap(v.o.Tap, v.o.HostAddress); err != nil {
			return err
		}
		tap := v.o.Tap
		v.undo = append(v.undo, func() { _ = deleteLink(tap) })
		v.o.QEMU.NIC = NIC{Kind: "tap", Tap: tap, MAC: v.o.QEMU.NIC.MAC}
		v.info.NICs = []string{tap}
	}
	args, err := v.o.QEMU.Args()
	if err != nil {
		return err
	}
	bin := v.o.QEMU.QEMU
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	_ = os.Remove(v.o.QEMU.QMP)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vm: start %s: %w (install Debian qemu-system-x86)", bin, err)
	}
	v.cmd, v.ended = cmd, supervisor.NewEnding()
	v.info.PID = cmd.Process.Pid
	v.log.Info("qemu started", "pid", cmd.Process.Pid, "accel", v.o.QEMU.Accel)
	go v.capture(out)
	go func(cmd *exec.Cmd, ended *supervisor.Ending) {
		ended.End(exitOf(cmd, cmd.Wait()))
	}(cmd, v.ended)
	v.undo = append(v.undo, func() { _ = os.Remove(v.o.QEMU.QMP) })
	if v.o.QEMU.Accel != "kvm" {
		v.info.Degradations = append(v.info.Degradations, "accel: tcg (software emulation; latency figures are not representative)")
	}
	if len(v.o.HostCPUs) > 0 {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := v.pin(qctx); err != nil {
			v.info.Degradations = append(v.info.Degradations, "vcpu pinning: "+err.Error())
			v.log.Warn("vCPU threads not pinned", "err", err)
		}
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

func (v *VM) capture(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		v.console.add(line)
		if v.o.ConsoleLog != nil {
			fmt.Fprintln(v.o.ConsoleLog, line)
		}
	}
}

// Wait returns how QEMU ended (the guest powering off is exit status 0).
func (v *VM) Wait(ctx context.Context) (supervisor.Exit, error) {
	v.mu.Lock()
	ended := v.ended
	v.mu.Unlock()
	if ended == nil {
		return supervisor.Exit{}, errors.New("vm: not started")
	}
	return ended.Wait(ctx)
}

// Stop asks the executive to halt (the guest powers off), then QMP quit,
// then kills QEMU when ctx ends; it undoes the host preparation.
func (v *VM) Stop(ctx context.Context) error {
	v.mu.Lock()
	ended := v.ended
	v.mu.Unlock()
	if ended != nil {
		done := ended.Done()
		if v.o.Halt != nil {
			if err := v.o.Halt(ctx); err != nil {
				v.log.Warn("halt request failed", "err", err)
			}
			select {
			case <-done:
			case <-time.After(remaining(ctx, 5*time.Second)):
			}
		}
		select {
		case <-done:
		default:
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if q, err := DialQMP(qctx, v.o.QEMU.QMP); err == nil {
				_, _ = q.Execute("quit", nil)
				q.Close()
			}
			cancel()
			select {
			case <-done:
			case <-ctx.Done():
				_ = v.Kill()
				<-done
			}
		}
	}
	v.mu.Lock()
	v.undoAll()
	v.mu.Unlock()
	return nil
}

func remaining(ctx context.Context, max time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl) / 2; d < max {
			return d
		}
	}
	return max
}

// Kill ends QEMU at once.
func (v *VM) Kill() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd == nil || v.cmd.Process == nil {
		return errors.New("vm: not started")
	}
	if err := syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("vm: kill qemu group %d: %w", v.cmd.Process.Pid, err)
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
func (v *VM) Console() []string { return v.console.lines() }

func (v *VM) undoAll() {
	for i := len(v.undo) - 1; i >= 0; i-- {
		v.undo[i]()
	}
	v.undo = nil
}

func exitOf(cmd *exec.Cmd, err error) supervisor.Exit {
	e := supervisor.Exit{Time: time.Now(), Code: -1}
	if cmd.ProcessState == nil {
		return e
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal().String()
		return e
	}
	e.Code = cmd.ProcessState.ExitCode()
	return e
}

func cpulist(cpus []int) string {
	s := ""
	for i, c := range cpus {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprint(c)
	}
	return s
}

// ring keeps the last n lines.
type ring struct {
	mu   sync.Mutex
	buf  []string
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]string, n)} }

func (r *ring) add(s string) {
	r.mu.Lock()
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
}

func (r *ring) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.buf[:r.next]...)
	}
	return append(append([]string(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
