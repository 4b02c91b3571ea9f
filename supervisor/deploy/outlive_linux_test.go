package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
)

// runProcess is `mkrt run` of the plant's config as a process of its own,
// so a test can kill it the way a crash or the OOM killer would.
type runProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it ended
}

func (p *testPlant) runProcess(env ...string) *runProcess {
	p.t.Helper()
	return startRun(p.t, p.log, env, p.cfgPath, "--state-dir", p.stateDir, "--socket", p.sock)
}

// startRun starts `mkrt run -v args...` with env added, its output to log.
func startRun(t *testing.T, log io.Writer, env []string, args ...string) *runProcess {
	t.Helper()
	cmd := exec.Command(mkrtBinary(t), append(append([]string{"run"}, args...), "-v")...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &runProcess{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-r.done
	})
	return r
}

// awaitRunning polls mkrt status until the partition runs.
func (p *testPlant) awaitRunning(r *runProcess) supervisor.Status {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := p.client.Status(ctx)
		cancel()
		if err == nil && st.State == supervisor.Running && st.Exec == wire.Running {
			return st
		}
		select {
		case <-r.done:
			p.t.Fatalf("mkrt run ended before the partition ran: %v", r.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("partition not running within 60s (status %+v, %v)", st, err)
		}
	}
}

// watchRegion attaches to the plant's region from outside any supervisor.
func (p *testPlant) watchRegion() *shm.Reader {
	p.t.Helper()
	return watchRegion(p.t, p.region)
}

func watchRegion(t *testing.T, path string) *shm.Reader {
	t.Helper()
	region, err := shm.Open(shm.File(path, 0, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { region.Close() })
	r, err := shm.AttachReader(region, nil, shm.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// alive reports whether pid runs (a zombie nobody reaped has ended).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// The control program outlives the general side: kill -9 of `mkrt run`
// costs no control cycle — the executive keeps cycling, read through its
// region, and keeps the level controlled — and the next `mkrt run` adopts
// it (same pid, the cycle counter continuing) instead of starting another.
func TestRunKilledPartitionKeepsControlAndIsAdopted(t *testing.T) {
	p := newPlant(t, plantOptions{level: 2.5, sp: 2.5, noRun: true})
	first := p.runProcess()
	st := p.awaitRunning(first)
	pid := st.PID
	t.Cleanup(func() {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	hb := p.watchRegion()
	levelID := tag.ID(0)
	for i, in := range hb.Tags() {
		if in.Name == "level" {
			levelID = tag.ID(i)
		}
	}

	killed := time.Now()
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	// For two seconds nothing on the general side runs: the executive must.
	period := 20 * time.Millisecond
	c0 := hb.Heartbeat().Cycle
	var img shm.Image
	worstGap, last, lastAt := time.Duration(0), c0, time.Now()
	for time.Since(killed) < 2*time.Second {
		time.Sleep(period)
		c := hb.Heartbeat().Cycle
		if c != last {
			last, lastAt = c, time.Now()
		} else if gap := time.Since(lastAt); gap > worstGap {
			worstGap = gap
		}
	}
	if err := hb.Snapshot(context.Background(), &img); err != nil {
		t.Fatal(err)
	}
	c1 := hb.Heartbeat().Cycle
	cycles := c1 - c0
	want := uint64(time.Since(killed) / period)
	t.Logf("after kill -9 of mkrt run: %d cycles in %v (%d expected), longest heartbeat stand-still %v, level %.3f m (%v)",
		cycles, time.Since(killed).Round(time.Millisecond), want, worstGap.Round(time.Millisecond), img.Samples[levelID].Value, img.Samples[levelID].Quality)
	if !alive(pid) {
		t.Fatalf("the executive (pid %d) died with mkrt run", pid)
	}
	if cycles < want*8/10 || worstGap > 10*period {
		t.Fatalf("the executive stopped cycling without its supervisor: %d cycles, stand-still %v", cycles, worstGap)
	}
	if s := img.Samples[levelID]; s.Quality != tag.Good || s.Value < 2.0 || s.Value > 3.0 {
		t.Fatalf("level %+v: the tank is not under control any more", s)
	}

	second := p.runProcess()
	st2 := p.awaitRunning(second)
	if st2.PID != pid {
		t.Fatalf("after mkrt run again: executive pid %d, want the adopted %d", st2.PID, pid)
	}
	if st2.Cycle < c1 {
		t.Fatalf("cycle %d after adoption, before %d: the executive restarted", st2.Cycle, c1)
	}
	if !strings.Contains(p.log.String(), "adopted "+p.name) {
		t.Errorf("mkrt run did not say it adopted the partition:\n%s", p.log.String())
	}
	// A clean stop of the adopting supervisor stops the partition.
	second.cmd.Process.Signal(os.Interrupt)
	select {
	case <-second.done:
	case <-time.After(30 * time.Second):
		t.Fatal("mkrt run did not stop within 30s of Ctrl-C")
	}
	if alive(pid) {
		t.Fatalf("executive %d still runs after a clean stop", pid)
	}
	if _, err := os.Stat(filepath.Join(p.stateDir, "partition.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partition record left after a clean stop: %v", err)
	}
}

// mkrt stop stops a partition that runs without its supervisor: the
// executive stops (driving its outputs safe) and nothing is left behind.
func TestStopPartitionWithoutSupervisor(t *testing.T) {
	p := newPlant(t, plantOptions{level: 2.5, sp: 2.5, noRun: true})
	first := p.runProcess()
	pid := p.awaitRunning(first).PID
	t.Cleanup(func() {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.done
	if !alive(pid) {
		t.Fatal("the executive died with mkrt run")
	}
	out, err := exec.Command(mkrtBinary(t), "stop", p.name, "--state-dir", p.stateDir, "--socket", p.sock).CombinedOutput()
	if err != nil {
		t.Fatalf("mkrt stop: %v\n%s", err, out)
	}
	t.Logf("mkrt stop: %s", strings.TrimSpace(string(out)))
	if alive(pid) {
		t.Fatalf("executive %d runs after mkrt stop", pid)
	}
	for _, f := range []string{p.region, filepath.Join(p.stateDir, "partition.json")} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after mkrt stop: %v", f, err)
		}
	}
}

// Under systemd (a Type=notify unit with WatchdogSec), mkrt run says
// READY=1 once the partition is up and pings the watchdog while its
// control socket answers.
func TestRunNotifiesSystemd(t *testing.T) {
	p := newPlant(t, plantOptions{level: 2.5, sp: 2.5, noRun: true})
	sock := filepath.Join(p.dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	run := p.runProcess("NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	p.awaitRunning(run)
	var got []string
	buf := make([]byte, 512)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && strings.Count(strings.Join(got, " "), "WATCHDOG=1") < 3 {
		conn.SetReadDeadline(deadline)
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		got = append(got, string(buf[:n]))
	}
	if len(got) == 0 || got[0] != "READY=1" || strings.Count(strings.Join(got, " "), "WATCHDOG=1") < 3 {
		t.Fatalf("notifications %q, want READY=1 then WATCHDOG=1 every 200ms", got)
	}
	run.cmd.Process.Signal(os.Interrupt)
	<-run.done
}

// The guest outlives mkrt run too: after kill -9 of mkrt run the PREEMPT_RT
// guest keeps cycling (QEMU is not killed with its supervisor), and the
// next mkrt run adopts it — the same QEMU, the cycle counter continuing.
func TestRunVMKilledGuestIsAdopted(t *testing.T) {
	init := vmInit(t)
	dir := t.TempDir()
	name := "vmad-" + randHex(t, 3)
	cfgPath := filepath.Join(dir, name+".yaml")
	mqtt := fmt.Sprintf("127.0.0.1:%d", bridgetest.FreePort(t))
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(vmLoop, name, "", "", mqtt)), 0o644); err != nil {
		t.Fatal(err)
	}
	stateDir, sock := filepath.Join(dir, "state"), filepath.Join(dir, "ctl.sock")
	log := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mkrt run log:\n%s", log.String())
		}
		exec.Command(mkrtBinary(t), "stop", name, "--state-dir", stateDir, "--socket", sock, "--init", init).Run()
	})
	args := []string{cfgPath, "--state-dir", stateDir, "--socket", sock, "--init", init}
	client := control.NewClient(sock)
	awaitRunning := func(r *runProcess) supervisor.Status {
		var st supervisor.Status
		eventually(t, 240*time.Second, "the guest running", func() (bool, string) {
			select {
			case <-r.done:
				t.Fatalf("mkrt run ended: %v", r.cmd.ProcessState)
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var err error
			st, err = client.Status(ctx)
			return err == nil && st.State == supervisor.Running && st.Exec == wire.Running, fmt.Sprintf("%s %v", st.State, err)
		})
		return st
	}
	first := startRun(t, log, nil, args...)
	st := awaitRunning(first)
	qemu := st.PID
	hb := watchRegion(t, "/dev/shm/mkrt-"+name)
	first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.done
	c0 := hb.Heartbeat().Cycle
	time.Sleep(3 * time.Second)
	c1 := hb.Heartbeat().Cycle
	t.Logf("after kill -9 of mkrt run: the guest ran %d cycles in 3s (100 ms period)", c1-c0)
	if !alive(qemu) || c1-c0 < 20 {
		t.Fatalf("the guest stopped with its supervisor: qemu alive %v, %d cycles", alive(qemu), c1-c0)
	}
	second := startRun(t, log, nil, args...)
	st2 := awaitRunning(second)
	if st2.PID != qemu || st2.Cycle < c1 {
		t.Fatalf("after mkrt run again: qemu %d at cycle %d, want the adopted %d past cycle %d", st2.PID, st2.Cycle, qemu, c1)
	}
	if !strings.Contains(log.String(), "adopted "+name) {
		t.Errorf("mkrt run did not say it adopted the guest")
	}
	second.cmd.Process.Signal(os.Interrupt)
	select {
	case <-second.done:
	case <-time.After(60 * time.Second):
		t.Fatal("mkrt run did not stop within 60s of Ctrl-C")
	}
	if alive(qemu) {
		t.Fatalf("qemu %d still runs after a clean stop", qemu)
	}
}
