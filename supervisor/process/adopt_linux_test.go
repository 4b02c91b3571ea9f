package process_test

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor/process"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

// A partition's program outlives the supervisor that started it: a later
// supervisor adopts it from its record (same pid, same start time), follows
// its console, and its Stop ends the program and undoes the host
// preparation the first supervisor did.
func TestProcessAdoptedByALaterSupervisor(t *testing.T) {
	fs, net := v1Host(), supervisortest.NewNet(map[string]string{"eth1": "192.168.7.1/24"})
	before := snapshot(fs, net)
	console := t.TempDir() + "/p1.console"
	first, hb := newPartition(t, fs, net, "run", func(c *process.Config) { c.ConsoleFile = console })
	if err := first.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitBeat(t, hb)
	rec, err := first.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	if rec.PID == 0 || rec.Start == 0 || rec.Cgroup == nil || len(rec.IRQs) != 3 || rec.NetNS != "mkrt-p1" || len(rec.NICs) != 1 {
		t.Fatalf("record %+v", rec)
	}
	// The program writes to its console file, not to a pipe the first
	// supervisor holds.
	if b, _ := os.ReadFile(console); !strings.Contains(string(b), "fake executive run") {
		t.Fatalf("console file %q", b)
	}

	later, _ := newPartition(t, fs, net, "run", func(c *process.Config) { c.ConsoleFile = console })
	if err := later.Alive(process.Record{PID: rec.PID, Start: rec.Start + 1}); err == nil {
		t.Fatal("a pid with another start time counts as the recorded program")
	}
	if err := later.AdoptRecord(rec); err != nil {
		t.Fatal(err)
	}
	if in := later.Info(); in.PID != rec.PID || in.NetNS != "mkrt-p1" || in.IRQsMoved != 3 || in.CPUSet != "v1 exclusive" {
		t.Fatalf("adopted info %+v", in)
	}
	if err := later.Start(ctx(t)); err == nil {
		t.Fatal("Start of an adopted partition succeeded")
	}
	if err := later.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := later.Wait(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := later.Alive(rec); err == nil {
		t.Fatal("the program runs after the adopting supervisor stopped it")
	}
	if after := snapshot(fs, net); after != before {
		t.Fatalf("host not restored:\nbefore %s\nafter  %s", before, after)
	}
}

// A supervisor killed with its partition leaves the cpuset, the moved IRQs
// and the NIC's namespace behind; the next one reclaims them from the
// record instead of recording the moved affinities as the originals.
func TestProcessReclaimsWhatAKilledSupervisorLeft(t *testing.T) {
	fs, net := v1Host(), supervisortest.NewNet(map[string]string{"eth1": "192.168.7.1/24"})
	before := snapshot(fs, net)
	first, hb := newPartition(t, fs, net, "run", nil)
	if err := first.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitBeat(t, hb)
	rec, err := first.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	later, _ := newPartition(t, fs, net, "run", nil)
	if err := later.ReclaimRecord(ctx(t), rec); err == nil {
		t.Fatal("reclaimed the host preparation of a program that runs")
	}
	if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait(ctx(t))
	deadline := time.Now().Add(5 * time.Second)
	for later.Alive(rec) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := later.ReclaimRecord(ctx(t), rec); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(fs, net); after != before {
		t.Fatalf("host not restored:\nbefore %s\nafter  %s", before, after)
	}
}

// A cpuset a killed supervisor left holds the partition's CPUs
// exclusively; the kernel only says EINVAL, so the error names it.
func TestProcessNamesTheCpusetThatHoldsItsCPUs(t *testing.T) {
	fs, net := v1Host(), supervisortest.NewNet(map[string]string{"eth1": "192.168.7.1/24"})
	fs.Mkdir("/sys/fs/cgroup/cpuset/mkrt")
	fs.Mkdir("/sys/fs/cgroup/cpuset/mkrt/old")
	fs.WriteFile("/sys/fs/cgroup/cpuset/mkrt/old/cpuset.cpus", []byte("3\n"))
	fs.WriteFile("/sys/fs/cgroup/cpuset/mkrt/old/cpuset.cpu_exclusive", []byte("1\n"))
	fs.WriteFile("/sys/fs/cgroup/cpuset/mkrt/old/tasks", []byte(""))
	fs.Fail("write", "/sys/fs/cgroup/cpuset/mkrt/p1/cpuset.cpus", syscall.EINVAL)
	p, _ := newPartition(t, fs, net, "run", nil)
	err := p.Start(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "the empty cpuset /sys/fs/cgroup/cpuset/mkrt/old holds them") || !strings.Contains(err.Error(), "mkrt stop old") {
		t.Fatalf("Start = %v", err)
	}
}
