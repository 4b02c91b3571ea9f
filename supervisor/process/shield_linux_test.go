package process

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func allowedCPUs(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("pid %d: no Cpus_allowed_list", pid)
	return ""
}

// A shield moves another process off the shielded CPU and back, and
// leaves the processes it keeps where they were.
func TestShieldMovesOthersOffAndBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (cgroup writes)")
	}
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	before := allowedCPUs(t, other.Process.Pid)
	s, err := Shield(OSFS{}, "/sys/fs/cgroup", []int{1}, os.Getpid())
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Log(s)
	if got := allowedCPUs(t, other.Process.Pid); got != "0" {
		t.Errorf("shielded: the other process may run on %q, want 0", got)
	}
	if got := allowedCPUs(t, os.Getpid()); got != before {
		t.Errorf("shielded: the kept process may run on %q, want %q as before", got, before)
	}
	if s.Moved == 0 {
		t.Error("the shield moved no process")
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if got := allowedCPUs(t, other.Process.Pid); got != before {
		t.Errorf("released: the other process may run on %q, want %q", got, before)
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpuset/" + ShieldName); !os.IsNotExist(err) {
		t.Errorf("the shield's cpuset is left: %v", err)
	}
}
