package deploy_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/supervisor"
)

// watcher is an independent Modbus client (pymodbus) polling the tank
// simulator every few milliseconds for its safe outputs: inflow valve 0 %
// (holding 0-1, float32 0.0) and pump off (coil 0).
type watcher struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	marked time.Time
}

func (p *testPlant) watchSafe() *watcher {
	t := p.t
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import pymodbus.client").Run(); err != nil {
		t.Skipf("skipping: no pymodbus for %s (apt-get install python3-pymodbus python3-serial-asyncio): %v", py, err)
	}
	script, _ := filepath.Abs("../../io/modbus/testdata/pyclient.py")
	host, port, _ := strings.Cut(p.sim.Addr(), ":")
	cmd := exec.Command(py, script, host, port, "socket", "watch", "5", "holding:0:2=0,0", "coil:0:1=0")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	w := &watcher{t: t, cmd: cmd, stdin: stdin, lines: bufio.NewScanner(out)}
	if !w.lines.Scan() || !strings.HasPrefix(w.lines.Text(), "ready") {
		t.Fatalf("pymodbus watcher: %q", w.lines.Text())
	}
	t.Logf("outputs before the fault: %s", strings.TrimPrefix(w.lines.Text(), "ready "))
	return w
}

// mark starts the watcher's clock: the fault happens now.
func (w *watcher) mark() {
	w.marked = time.Now()
	fmt.Fprintln(w.stdin)
}

// safe waits for the watcher to see the safe outputs and returns the time
// from mark to the poll that saw them.
func (w *watcher) safe() time.Duration {
	w.t.Helper()
	if !w.lines.Scan() {
		w.t.Fatal("pymodbus watcher ended without an answer")
	}
	f := strings.Fields(w.lines.Text())
	if len(f) < 3 || f[0] != "safe" {
		w.t.Fatalf("outputs not safe at the device within 10s: %s", w.lines.Text())
	}
	ms, _ := strconv.ParseFloat(f[1], 64)
	return time.Duration(ms * float64(time.Millisecond))
}

// withoutDeviceWatchdog removes the tank's own comm-loss watchdog from the
// config, so what drives the outputs safe is the supervisor alone.
func withoutDeviceWatchdog(cfg string) string {
	var keep []string
	skip := false
	for _, l := range strings.SplitAfter(cfg, "\n") {
		t := strings.TrimSpace(l)
		if t == "watchdog:" && strings.HasPrefix(l, "    watchdog:") {
			skip = true
			continue
		}
		if skip && strings.HasPrefix(l, "      ") {
			continue
		}
		skip = false
		keep = append(keep, l)
	}
	return strings.Join(keep, "")
}

// When the partition dies, the supervisor fences it and drives every
// watchdog.safe_state output to its safe value at the device itself
// (the device's own watchdog is off here): after kill -9 of the executive
// within milliseconds, after SIGSTOP within the heartbeat window; mkrt
// status says the supervisor holds the outputs while it restarts.
func TestPartitionLossDrivesOutputsSafe(t *testing.T) {
	p := newPlant(t, plantOptions{level: 2.5, sp: 2.5, edit: withoutDeviceWatchdog})
	for _, c := range []struct {
		name  string
		sig   syscall.Signal
		bound time.Duration
	}{
		{"kill -9", syscall.SIGKILL, time.Second},
		// 10 missed 20 ms periods, then the kill and the writes.
		{"SIGSTOP", syscall.SIGSTOP, 200*time.Millisecond + time.Second},
	} {
		st := p.status()
		if st.State != supervisor.Running || st.PID == 0 {
			t.Fatalf("%s: partition %s (pid %d), want running", c.name, st.State, st.PID)
		}
		waitFor(t, "the valve open", func() bool { return p.simValve() > 1 })
		w := p.watchSafe()
		w.mark()
		if err := syscall.Kill(st.PID, c.sig); err != nil {
			t.Fatal(err)
		}
		took := w.safe()
		t.Logf("%s of the executive: outputs safe at the device %v after the fault", c.name, took.Round(time.Millisecond))
		if took > c.bound {
			t.Errorf("%s: outputs safe only after %v (bound %v)", c.name, took, c.bound)
		}
		waitFor(t, "the supervisor to report the outputs it holds", func() bool {
			o := p.status().Outputs
			return o.Driver == "supervisor" && o.Safe
		})
		waitFor(t, "the restart", func() bool {
			s := p.status()
			return s.State == supervisor.Running && s.PID != st.PID && s.Outputs.Driver == "partition"
		})
	}
}

// With the supervisor and the executive both gone, nothing on the general
// side can reach the device: the tank's own comm-loss watchdog drives its
// outputs safe within its timeout (1 s in the example).
func TestDeviceWatchdogWhenEverythingDies(t *testing.T) {
	p := newPlant(t, plantOptions{level: 2.5, sp: 2.5, noRun: true})
	run := p.runProcess()
	st := p.awaitRunning(run)
	waitFor(t, "the valve open", func() bool { return p.simValve() > 1 })
	w := p.watchSafe()
	w.mark()
	run.cmd.Process.Signal(syscall.SIGKILL)
	syscall.Kill(st.PID, syscall.SIGKILL)
	took := w.safe()
	t.Logf("supervisor and executive killed: outputs safe at the device %v later (device watchdog 1s)", took.Round(time.Millisecond))
	if took < 500*time.Millisecond || took > 2*time.Second {
		t.Errorf("outputs safe after %v, want about the device's 1s timeout", took)
	}
	// Nothing is left to stop; mkrt stop reclaims what both left behind
	// (cpuset, region, record).
	if out, err := exec.Command(mkrtBinary(t), "stop", p.name, "--state-dir", p.stateDir, "--socket", p.sock).CombinedOutput(); err != nil {
		t.Fatalf("mkrt stop: %v\n%s", err, out)
	}
	if _, err := os.Stat(p.region); err == nil {
		t.Error("region left after mkrt stop")
	}
}

// simValve is the tank's inflow valve position, read from the simulator.
func (p *testPlant) simValve() float64 {
	m := p.sim.Bank().Snapshot()
	return sim.Float32(m.Holding, 0)
}

// waitFor is eventually, within 30s, for conditions without a state to show.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventually(t, 30*time.Second, what, func() (bool, string) { return cond(), "" })
}
