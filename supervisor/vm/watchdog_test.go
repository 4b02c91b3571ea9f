package vm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/vm/vmtest"
)

// faultLoop is a control loop closed inside the partition (no NIC), whose
// guest injects the fault named on its command line (mkrt.test=, the
// tests' hook in mkrt-init) once its watchdog has been fed three times.
const faultLoop = `metadata:
  name: wd-%s
partition:
  backend: vm
  cpus: "1"
  memory: 256Mi
  kernel:
    cmdline: mkrt.%s=%s
tags:
  - {name: valve, unit: "%%", initial: 40}
  - {name: level, unit: "%%"}
tasks:
  - name: control
    period: 100ms
    priority: 80
    blocks:
      - name: tank
        type: lag
        inputs: {in: valve}
        params: {tau: 3s}
        outputs: {out: level}
watchdog:
  overruns: 10
`

// TestGuestWatchdogFires boots the vm backend's guest (FromConfig: the
// PREEMPT_RT kernel, the i6300esb watchdog fed by mkrt-init) under a
// supervisor, and makes it fail: "hang" takes every CPU at SCHED_FIFO 99
// (the kernel runs nothing but hard interrupts), "stall" only the
// executive's CPU (the rest of the guest runs, the feeder sees the cycle
// counter stand still). Either way the watchdog fires, QEMU pauses the
// guest and reports WATCHDOG, and the supervisor declares the partition
// faulted with the reason, long before its own heartbeat watchdog would
// (set to a minute here).
func TestGuestWatchdogFires(t *testing.T) {
	kernel := vmtest.Kernel(t)
	init := vmtest.Init(t)
	for _, fault := range []string{pid1.FaultHang, pid1.FaultStall} {
		t.Run(fault, func(t *testing.T) { guestFault(t, kernel, init, fault, SignalWatchdog) })
	}
}

// TestGuestPanicEndsThePartition crashes the guest's kernel (sysrq c):
// panic=-1 resets it, -no-reboot ends QEMU, and the SHUTDOWN event's
// reason makes that a fault the supervisor names, not a power-off.
func TestGuestPanicEndsThePartition(t *testing.T) {
	kernel := vmtest.Kernel(t)
	guestFault(t, kernel, vmtest.Init(t), pid1.FaultPanic, SignalGuestReset)
}

// guestFault runs one guest that injects fault and checks that the
// supervisor sees the partition end with signal; it prints how long that
// took after the executive's last cycle.
func guestFault(t *testing.T, kernel, init, fault, signal string) {
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "wd.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, faultLoop, fault, pid1.ParamTest, fault), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	_, l := regionLayout(t, cfg)
	shmPath, shmSize, r := hostRegion(t, l)
	t.Setenv("MKRT_ACCEL", "tcg")
	// The guest's console reaches the log line by line: the log notes when
	// the guest said it injects the fault.
	logBuf := &syncBuffer{mark: "mkrt-init: test: injecting " + fault}
	v, err := FromConfig(ctx, supervisor.Spec{Config: cfg, ConfigPath: cfgPath, Instance: cfg.Metadata.Name, Region: shmPath, RegionSize: shmSize,
		StateDir: dir, Kernel: kernel, Init: init, Log: slog.New(slog.NewTextHandler(logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.o.QEMU.Cmdline, fmt.Sprintf("mkrt.%s=%d", pid1.ParamWatchdog, GuestWatchdog(cfg)/time.Second)) {
		t.Fatalf("the guest's command line lacks its watchdog: %s", v.o.QEMU.Cmdline)
	}

	// The host's view: when the cycle counter last moved.
	var mu sync.Mutex
	var lastCycle uint64
	var lastBeat time.Time
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for wctx.Err() == nil {
			hb := r.Heartbeat()
			mu.Lock()
			if hb.Cycle != lastCycle {
				lastCycle, lastBeat = hb.Cycle, time.Now()
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()

	sup, err := supervisor.New(supervisor.Options{Name: cfg.Metadata.Name, Partition: v, Heartbeat: plant.NewRegion(r),
		Period: 100 * time.Millisecond, Missed: 600, StartTimeout: 120 * time.Second,
		Policy: supervisor.RestartPolicy{Initial: time.Hour, Max: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopSup := context.WithCancel(ctx)
	supDone := make(chan error, 1)
	go func() { supDone <- sup.Run(sctx) }()
	defer func() {
		stopSup()
		select {
		case err := <-supDone:
			if err != nil {
				t.Errorf("supervisor: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("the supervisor did not stop within 60s")
		}
		if pid := v.Info().PID; pid != 0 {
			t.Errorf("QEMU (pid %d) still runs after the stop", pid)
			_ = v.Kill()
		}
		stopWatch()
		<-watched
		if t.Failed() {
			t.Logf("log:\n%s\nconsole:\n%s", logBuf.String(), strings.Join(v.Console(), "\n"))
		}
	}()

	var f supervisor.Fault
	for {
		if st := sup.Status(); st.LastFault != nil {
			f = *st.LastFault
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the partition did not go down: %+v", sup.Status())
		case <-time.After(20 * time.Millisecond):
		}
	}
	downAt := f.Time
	stopWatch()
	<-watched
	if want := "exited: signal: " + signal; f.Reason != want {
		t.Fatalf("partition down: %q, want %q", f.Reason, want)
	}
	mu.Lock()
	defer mu.Unlock()
	injected := logBuf.marked()
	if injected.IsZero() || lastCycle < 10 {
		t.Fatalf("the guest did not inject %s after cycling (console marker seen %v, %d cycles)", fault, !injected.IsZero(), lastCycle)
	}
	timeout := GuestWatchdog(cfg)
	fmt.Printf("guest %s: partition down (%s) %v after the executive's last cycle (cycle %d), %v after the guest said it injects it (guest watchdog timeout %v)\n",
		fault, f.Reason, downAt.Sub(lastBeat).Round(time.Millisecond), lastCycle, downAt.Sub(injected).Round(time.Millisecond), timeout)
	if signal == SignalWatchdog && downAt.Sub(lastBeat) < timeout/2 {
		t.Errorf("down %v after the last cycle: sooner than the watchdog could fire (timeout %v)", downAt.Sub(lastBeat), timeout)
	}
}

// syncBuffer is a log sink for a test's goroutines; it notes when a line
// first holds mark.
type syncBuffer struct {
	mu   sync.Mutex
	b    strings.Builder
	mark string
	at   time.Time
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mark != "" && s.at.IsZero() && strings.Contains(string(p), s.mark) {
		s.at = time.Now()
	}
	return s.b.Write(p)
}

// marked is when mark was first written, zero before.
func (s *syncBuffer) marked() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
