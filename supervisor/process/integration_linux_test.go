package process_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mkrt/mkrt/supervisor/process"
)

// TestIntegrationRealCgroupNetnsIRQs runs the process backend on the real
// host: a real cpuset cgroup, the host's IRQs, and a veth end moved into a
// real network namespace where the child runs, then checks that Stop leaves
// no cgroup and no namespace behind and the link is back with its address.
// Needs root, iproute2 and a cpuset controller.
func TestIntegrationRealCgroupNetnsIRQs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (cgroups, IRQ affinity, network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: iproute2's ip not installed")
	}
	_, v1 := os.Stat("/sys/fs/cgroup/cpuset/cpuset.cpus")
	ctrl, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if v1 != nil && !strings.Contains(string(ctrl), "cpuset") {
		t.Skip("skipping: no cpuset cgroup controller (v1 or v2) on this host")
	}
	name := "it" + strconv.Itoa(os.Getpid())
	host, peer := "mkit"+strconv.Itoa(os.Getpid()%100000), "mkip"+strconv.Itoa(os.Getpid()%100000)
	run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		exec.Command("ip", "-n", "mkrt-"+name, "link", "del", host).Run()
		exec.Command("ip", "netns", "del", "mkrt-"+name).Run()
	})
	run(t, "ip", "addr", "add", "10.213.7.1/24", "dev", host)
	run(t, "ip", "link", "set", host, "up")
	irqsBefore := irqAffinities(t)

	cpu := 0
	if n, _ := os.ReadFile("/sys/devices/system/cpu/online"); strings.TrimSpace(string(n)) != "0" {
		cpu = 1
	}
	argv, env, hb := fakeCommand(t, "run")
	p, err := process.New(process.Config{Name: name, Command: argv, Env: env, CPUs: []int{cpu},
		NICs: []process.NIC{{Interface: host, Address: "10.213.8.2/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); p.Stop(context.Background()) })
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitBeat(t, hb)
	in := p.Info()
	t.Logf("isolation: %+v", in.Isolation)

	// Core isolation: the child is in the partition's cgroup, on its CPU.
	cg, _ := os.ReadFile("/proc/" + strconv.Itoa(in.PID) + "/cgroup")
	if !strings.Contains(string(cg), "mkrt/"+name) && !strings.Contains(string(cg), "mkrt.slice/"+name) {
		t.Errorf("child not in the partition cgroup:\n%s", cg)
	}
	if got := statusField(t, in.PID, "Cpus_allowed_list"); got != strconv.Itoa(cpu) {
		t.Errorf("child may run on CPUs %q, want %d", got, cpu)
	}
	// The NIC is in the partition's namespace with its address, and the child runs there.
	if out := run(t, "ip", "-n", "mkrt-"+name, "-o", "addr", "show", "dev", host); !strings.Contains(out, "10.213.8.2/24") {
		t.Errorf("address inside the partition: %s", out)
	}
	if err := exec.Command("ip", "link", "show", host).Run(); err == nil {
		t.Errorf("%s still in the root namespace", host)
	}
	if ino(t, "/proc/"+strconv.Itoa(in.PID)+"/ns/net") != ino(t, "/run/netns/mkrt-"+name) {
		t.Errorf("child not started inside mkrt-%s", name)
	}
	for _, irq := range in.Degradations {
		t.Logf("degradation: %s", irq)
	}

	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/sys/fs/cgroup/cpuset/mkrt/" + name, "/sys/fs/cgroup/mkrt.slice/" + name, "/run/netns/mkrt-" + name} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s left behind", d)
		}
	}
	out := run(t, "ip", "-o", "addr", "show", "dev", host)
	if !strings.Contains(out, "10.213.7.1/24") {
		t.Errorf("%s came back without its address: %s", host, out)
	}
	if link := run(t, "ip", "-o", "link", "show", host); !strings.Contains(link, ",UP") && !strings.Contains(link, "<UP") {
		t.Errorf("%s came back down: %s", host, link)
	}
	after := irqAffinities(t)
	for irq, a := range irqsBefore {
		if after[irq] != a && after[irq] != "" {
			t.Errorf("irq %s affinity %q after stop, was %q", irq, after[irq], a)
		}
	}
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func irqAffinities(t *testing.T) map[string]string {
	files, _ := filepath.Glob("/proc/irq/*/smp_affinity_list")
	m := map[string]string{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		m[filepath.Base(filepath.Dir(f))] = strings.TrimSpace(string(b))
	}
	return m
}

func statusField(t *testing.T, pid int, field string) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func ino(t *testing.T, path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}
