package process_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/process"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

var yes = true

// v1Host is a fake host with a cgroup v1 cpuset hierarchy, four CPUs and
// five IRQs: 1 and 2 on every CPU, 3 only on CPU 3, 4 on CPU 0, and 9 a
// per-CPU IRQ the kernel refuses to move (EIO).
func v1Host() *supervisortest.FS {
	fs := supervisortest.NewFS(map[string]string{
		"/sys/fs/cgroup/cpuset/cpuset.cpus":        "0-3\n",
		"/sys/fs/cgroup/cpuset/cpuset.mems":        "0\n",
		"/sys/devices/system/cpu/online":           "0-3\n",
		"/proc/irq/1/smp_affinity_list":            "0-3\n",
		"/proc/irq/2/smp_affinity_list":            "0-3\n",
		"/proc/irq/3/smp_affinity_list":            "3\n",
		"/proc/irq/4/smp_affinity_list":            "0\n",
		"/proc/irq/9/smp_affinity_list":            "0-3\n",
		"/proc/irq/default_smp_affinity":           "f\n",
		"/sys/bus/pci/devices/0000:03:00.0/net/x":  "",
		"/sys/bus/pci/devices/0000:03:00.0/vendor": "0x8086\n",
	})
	fs.Fail("write", "/proc/irq/9/smp_affinity_list", syscall.EIO)
	return fs
}

func v2Host() *supervisortest.FS {
	return supervisortest.NewFS(map[string]string{
		"/sys/fs/cgroup/cgroup.controllers":     "cpuset cpu io memory pids\n",
		"/sys/fs/cgroup/cgroup.subtree_control": "",
		"/sys/fs/cgroup/cpuset.mems.effective":  "0\n",
		"/sys/devices/system/cpu/online":        "0-3\n",
		"/proc/irq/1/smp_affinity_list":         "0-3\n",
	})
}

// snapshot is the host state that must be the same before start and after stop.
func snapshot(fs *supervisortest.FS, net *supervisortest.Net) string {
	var b strings.Builder
	for _, irq := range []string{"1", "2", "3", "4", "9"} {
		c, _ := fs.File("/proc/irq/" + irq + "/smp_affinity_list")
		b.WriteString(irq + "=" + strings.TrimSpace(c) + " ")
	}
	for _, d := range []string{"/sys/fs/cgroup/cpuset/mkrt", "/sys/fs/cgroup/mkrt.slice"} {
		if fs.Dir(d) {
			b.WriteString("dir " + d + " ")
		}
	}
	ns, addrs, up, _ := net.Where("eth1")
	b.WriteString("eth1 ns=" + ns + " " + strings.Join(addrs, ",") + " up=" + strconv.FormatBool(up))
	b.WriteString(" namespaces=" + strings.Join(net.Namespaces(), ","))
	return b.String()
}

func newPartition(t *testing.T, fs *supervisortest.FS, net *supervisortest.Net, mode string, mod func(*process.Config)) (*process.Partition, fileHeartbeat) {
	t.Helper()
	argv, env, hb := fakeCommand(t, mode)
	cfg := process.Config{Name: "p1", Command: argv, Env: env, CPUs: []int{2, 3}, Priority: 80,
		NICs:         []process.NIC{{Interface: "eth1", Address: "10.10.0.2/24"}},
		SharedMemory: process.SharedMemory{Path: t.TempDir() + "/shm", Size: 1 << 20},
		FS:           fs, Net: net, Privileged: &yes, KillGrace: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	p, err := process.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); p.Stop(context.Background()) })
	return p, hb
}

func ctx(t *testing.T) context.Context { return supervisortest.Context(t, 20*time.Second) }

func TestProcessIsolatesOnV1HostAndUndoesOnStop(t *testing.T) {
	fs, net := v1Host(), supervisortest.NewNet(map[string]string{"eth1": "192.168.7.1/24"})
	before := snapshot(fs, net)
	p, hb := newPartition(t, fs, net, "run", nil)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	in := p.Info()
	dir := "/sys/fs/cgroup/cpuset/mkrt/p1"
	if cpus, _ := fs.File(dir + "/cpuset.cpus"); cpus != "2-3" {
		t.Errorf("cpuset.cpus = %q", cpus)
	}
	if excl, _ := fs.File(dir + "/cpuset.cpu_exclusive"); excl != "1" || in.CPUSet != "v1 exclusive" {
		t.Errorf("cpu_exclusive %q, mode %q", excl, in.CPUSet)
	}
	if procs, _ := fs.File(dir + "/cgroup.procs"); procs != strconv.Itoa(in.PID) || in.PID == 0 {
		t.Errorf("cgroup.procs %q, pid %d", procs, in.PID)
	}
	want := map[string]string{"1": "0-1", "2": "0-1", "3": "0-1", "4": "0\n", "9": "0-3\n"}
	for irq, w := range want {
		if got, _ := fs.File("/proc/irq/" + irq + "/smp_affinity_list"); got != w {
			t.Errorf("irq %s affinity %q, want %q", irq, got, w)
		}
	}
	if in.IRQsMoved != 3 || in.IRQsSkipped != 1 {
		t.Errorf("irqs moved %d skipped %d", in.IRQsMoved, in.IRQsSkipped)
	}
	if ns, addrs, up, _ := net.Where("eth1"); ns != "mkrt-p1" || !reflect.DeepEqual(addrs, []string{"10.10.0.2/24"}) || !up {
		t.Errorf("eth1 in %q with %v up=%v", ns, addrs, up)
	}
	if in.NetNS != "mkrt-p1" || !reflect.DeepEqual(in.NICs, []string{"eth1"}) || len(in.Degradations) != 0 || !in.RT {
		t.Errorf("info %+v", in)
	}
	if !slices.Contains(net.Log(), "do mkrt-p1") {
		t.Errorf("child not started inside the namespace: %q", net.Log())
	}
	if st, err := os.Stat(t.TempDir()); err != nil || !st.IsDir() {
		t.Fatal(err)
	}
	waitBeat(t, hb)
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e, err := p.Wait(ctx(t))
	if err != nil || e.Code != 0 {
		t.Fatalf("graceful stop: exit %v err %v (console %q)", e, err, p.Console())
	}
	if after := snapshot(fs, net); after != before {
		t.Fatalf("host not restored:\nbefore %s\nafter  %s", before, after)
	}
	var order []string
	for _, r := range p.Records() {
		order = append(order, r.Action+" "+r.Name)
	}
	wantOrder := []string{"do check", "do isolate-cpus", "do move-irqs", "do assign-nics", "do shared-memory", "do load", "do start",
		"undo start", "undo shared-memory", "undo assign-nics", "undo move-irqs", "undo isolate-cpus"}
	if !reflect.DeepEqual(order, wantOrder) {
		t.Fatalf("steps %q", order)
	}
	if lines := p.Console(); len(lines) == 0 || !strings.Contains(lines[0], "fake executive run") || !strings.Contains(lines[0], "cpus 2-3") {
		t.Fatalf("console %q", lines)
	}
}

func waitBeat(t *testing.T, hb fileHeartbeat) {
	t.Helper()
	c := ctx(t)
	for {
		if n, _, err := hb.Read(); err == nil && n > 0 {
			return
		}
		select {
		case <-c.Done():
			t.Fatal("no heartbeat from the child")
		case <-time.After(time.Millisecond):
		}
	}
}

func TestProcessV2PartitionModes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse []string
		mode   string
	}{
		{"isolated", nil, "v2 isolated"},
		{"member", []string{"/sys/fs/cgroup/mkrt.slice/p1/cpuset.cpus.partition"}, "v2 member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := v2Host()
			for _, f := range tc.refuse {
				fs.Fail("write", f, syscall.EINVAL)
			}
			p, _ := newPartition(t, fs, supervisortest.NewNet(map[string]string{"eth1": ""}), "run", func(c *process.Config) { c.NICs = nil })
			if err := p.Start(ctx(t)); err != nil {
				t.Fatal(err)
			}
			if got := p.Info().CPUSet; got != tc.mode {
				t.Errorf("mode %q, want %q", got, tc.mode)
			}
			if sc, _ := fs.File("/sys/fs/cgroup/cgroup.subtree_control"); sc != "+cpuset" {
				t.Errorf("root subtree_control %q", sc)
			}
			if c, _ := fs.File("/sys/fs/cgroup/mkrt.slice/p1/cpuset.cpus"); c != "2-3" {
				t.Errorf("cpuset.cpus %q", c)
			}
			if tc.mode != "v2 isolated" && len(p.Info().Degradations) == 0 {
				t.Error("fallback not reported as a degradation")
			}
			if err := p.Stop(ctx(t)); err != nil {
				t.Fatal(err)
			}
			if fs.Dir("/sys/fs/cgroup/mkrt.slice") {
				t.Error("cgroup left behind")
			}
		})
	}
}

// TestProcessStartFailureLeavesHostClean injects a failure into every step
// and checks that the host is exactly as before.
func TestProcessStartFailureLeavesHostClean(t *testing.T) {
	cases := []struct {
		name string
		step string
		set  func(*supervisortest.FS, *supervisortest.Net, *process.Config)
	}{
		{"cgroup-mkdir", "isolate-cpus", func(fs *supervisortest.FS, _ *supervisortest.Net, _ *process.Config) {
			fs.Fail("mkdir", "/sys/fs/cgroup/cpuset/mkrt/p1", syscall.ENOSPC)
		}},
		{"cpuset-cpus", "isolate-cpus", func(fs *supervisortest.FS, _ *supervisortest.Net, _ *process.Config) {
			fs.Fail("write", "/sys/fs/cgroup/cpuset/mkrt/p1/cpuset.cpus", syscall.EINVAL)
		}},
		{"irq-list", "move-irqs", func(fs *supervisortest.FS, _ *supervisortest.Net, _ *process.Config) {
			fs.Fail("readdir", "/proc/irq", syscall.EIO)
		}},
		{"cpu-online", "move-irqs", func(fs *supervisortest.FS, _ *supervisortest.Net, _ *process.Config) {
			fs.Fail("read", "/sys/devices/system/cpu/online", syscall.EIO)
		}},
		{"netns", "assign-nics", func(_ *supervisortest.FS, n *supervisortest.Net, _ *process.Config) {
			n.Fail("newns", syscall.EEXIST)
		}},
		{"link-move", "assign-nics", func(_ *supervisortest.FS, n *supervisortest.Net, _ *process.Config) {
			n.Fail("movelink", syscall.EBUSY)
		}},
		{"no-such-nic", "assign-nics", func(_ *supervisortest.FS, _ *supervisortest.Net, c *process.Config) {
			c.NICs = append(c.NICs, process.NIC{PCI: "0000:09:00.0"})
		}},
		{"shm", "shared-memory", func(_ *supervisortest.FS, _ *supervisortest.Net, c *process.Config) {
			c.SharedMemory.Path = "/nonexistent/dir/shm"
		}},
		{"load", "load", func(_ *supervisortest.FS, _ *supervisortest.Net, c *process.Config) {
			c.Command = []string{"/nonexistent/mkrt-executive"}
		}},
		{"netns-enter", "start", func(_ *supervisortest.FS, n *supervisortest.Net, _ *process.Config) {
			n.Fail("do", syscall.EPERM)
		}},
		{"cgroup-attach", "start", func(fs *supervisortest.FS, _ *supervisortest.Net, _ *process.Config) {
			fs.Fail("write", "/sys/fs/cgroup/cpuset/mkrt/p1/cgroup.procs", syscall.ESRCH)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs, net := v1Host(), supervisortest.NewNet(map[string]string{"eth1": "192.168.7.1/24"})
			before := snapshot(fs, net)
			var shm string
			p, _ := newPartition(t, fs, net, "run", func(c *process.Config) { tc.set(fs, net, c); shm = c.SharedMemory.Path })
			err := p.Start(ctx(t))
			var se *supervisor.StepError
			if !errors.As(err, &se) || se.Step != tc.step {
				t.Fatalf("Start = %v, want a failure of step %s", err, tc.step)
			}
			if after := snapshot(fs, net); after != before {
				t.Fatalf("host not restored:\nbefore %s\nafter  %s", before, after)
			}
			if _, err := os.Stat(shm); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("shared memory file left behind: %v", err)
			}
			if pid := p.Info().PID; pid != 0 {
				t.Fatalf("child %d still recorded", pid)
			}
		})
	}
}

func TestProcessUnprivilegedRunsUnisolatedAndSaysSo(t *testing.T) {
	no := false
	fs, net := v1Host(), supervisortest.NewNet(map[string]string{"eth1": ""})
	p, hb := newPartition(t, fs, net, "run", func(c *process.Config) { c.Privileged = &no })
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitBeat(t, hb)
	in := p.Info()
	joined := strings.Join(in.Degradations, "\n")
	for _, w := range []string{"cpuset: permission denied (run as root)", "irq: permission denied", "nics: permission denied"} {
		if !strings.Contains(joined, w) {
			t.Errorf("degradations lack %q:\n%s", w, joined)
		}
	}
	if in.RT || in.RTWhy == "" || in.CPUSet != "none" {
		t.Errorf("info %+v", in)
	}
	for _, op := range fs.Log() {
		if strings.HasPrefix(op, "write") || strings.HasPrefix(op, "mkdir") {
			t.Errorf("unprivileged run touched the host: %s", op)
		}
	}
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestProcessPermissionErrorsDegrade(t *testing.T) {
	fs, net := v1Host(), supervisortest.NewNet(map[string]string{"eth1": ""})
	fs.Fail("mkdir", "/sys/fs/cgroup/cpuset/mkrt", syscall.EACCES)
	for _, irq := range []string{"1", "2", "3"} {
		fs.Fail("write", "/proc/irq/"+irq+"/smp_affinity_list", syscall.EPERM)
	}
	p, _ := newPartition(t, fs, net, "run", func(c *process.Config) { c.NICs = nil })
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if d := strings.Join(p.Info().Degradations, "\n"); !strings.Contains(d, "cpuset:") || !strings.Contains(d, "irq:") {
		t.Fatalf("degradations %q", d)
	}
	p.Stop(ctx(t))
}

func TestProcessKillAndExitCodes(t *testing.T) {
	fs, net := v1Host(), supervisortest.NewNet(nil)
	noIso := func(c *process.Config) { c.NICs, c.CPUs = nil, nil }

	p, hb := newPartition(t, fs, net, "run", noIso)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitBeat(t, hb)
	p.Kill()
	if e, err := p.Wait(ctx(t)); err != nil || e.Signal != "killed" || !e.Restartable() {
		t.Fatalf("after kill: %v %v", e, err)
	}
	p.Stop(ctx(t))

	p, _ = newPartition(t, fs, net, "config", noIso)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if e, _ := p.Wait(ctx(t)); e.Code != supervisor.ExitDoNotRestart || e.Restartable() {
		t.Fatalf("config error exit %v", e)
	}
	p.Stop(ctx(t))

	p, hb = newPartition(t, fs, net, "ignore-term", func(c *process.Config) { noIso(c); c.KillGrace = 50 * time.Millisecond })
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitBeat(t, hb)
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if e, _ := p.Wait(ctx(t)); e.Signal != "killed" {
		t.Fatalf("SIGTERM-ignoring child ended with %v, want killed", e)
	}
}

func TestProcessSignalsReachTheWholeGroup(t *testing.T) {
	pidfile := t.TempDir() + "/grandchild"
	p, hb := newPartition(t, v1Host(), supervisortest.NewNet(nil), "spawn", func(c *process.Config) {
		c.NICs, c.CPUs = nil, nil
		c.Env = append(c.Env, "MKRT_PIDFILE="+pidfile)
	})
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitBeat(t, hb)
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	gc, _ := strconv.Atoi(string(b))
	p.Kill()
	p.Wait(ctx(t))
	c := ctx(t)
	for alive(gc) {
		select {
		case <-c.Done():
			t.Fatalf("grandchild %d survived the group kill", gc)
		case <-time.After(time.Millisecond):
		}
	}
	p.Stop(ctx(t))
}

// alive reports whether pid runs (a zombie waiting for its reaper is dead).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
