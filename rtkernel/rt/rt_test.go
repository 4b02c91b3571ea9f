package rt_test

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/rtkernel/rt"
)

func TestStatus(t *testing.T) {
	var st rt.Status
	st.Add(rt.FacilityAffinity, true, "cpu 1", nil)
	if st.Degraded() || st.String() != "rt: ok" {
		t.Fatalf("status %q, want ok", st)
	}
	st.Add(rt.FacilityTimerSlack, false, "1ns", syscall.EINVAL)
	if st.Degraded() {
		t.Fatal("an optional facility degraded the status")
	}
	st.Add(rt.FacilitySchedFIFO, true, "priority 80", &rt.SyscallError{Syscall: "sched_setattr", Err: syscall.EPERM})
	st.Add(rt.FacilityMlockall, true, "", &rt.SyscallError{Syscall: "mlockall", Err: syscall.ENOMEM})
	want := "rt: degraded (SCHED_FIFO: operation not permitted; mlockall: cannot allocate memory)"
	if st.String() != want {
		t.Fatalf("status %q, want %q", st, want)
	}
	var other rt.Status
	other.Add(rt.FacilitySchedFIFO, true, "priority 80", &rt.SyscallError{Syscall: "sched_setattr", Err: syscall.EPERM})
	other.Add(rt.FacilityAffinity, true, "cpu 2", nil)
	st.Merge(other)
	if len(st.Facilities) != 5 {
		t.Fatalf("merged %d facilities, want 5 (one duplicate dropped)", len(st.Facilities))
	}
}

func TestSyscallError(t *testing.T) {
	err := error(&rt.SyscallError{Syscall: "open", Path: "/dev/cpu_dma_latency", Err: syscall.EACCES})
	if !errors.Is(err, syscall.EACCES) || !errors.Is(err, os.ErrPermission) {
		t.Fatalf("%v does not match EACCES / ErrPermission", err)
	}
	if !strings.Contains(err.Error(), "open /dev/cpu_dma_latency") {
		t.Fatalf("error %q lacks the call and path", err)
	}
}

func TestThreadSetup(t *testing.T) {
	done := make(chan rt.Status, 1)
	go func() { done <- rt.Thread{CPU: 0, Priority: 1}.Setup() }()
	st := <-done
	t.Log(st)
	for _, f := range st.Facilities {
		if !f.OK && f.Detail == "" {
			t.Errorf("facility %s failed without a reason", f.Name)
		}
	}
}

func TestMonotonicSleepUntil(t *testing.T) {
	var c rt.Monotonic
	start := c.Now()
	c.SleepUntil(start + 2*time.Millisecond)
	if now := c.Now(); now < start+2*time.Millisecond {
		t.Fatalf("woke at +%v, before the deadline", now-start)
	}
	before := c.Now()
	c.SleepUntil(before - time.Second) // past: returns at once
	if c.Now() < before {
		t.Fatal("clock went backwards")
	}
}

func TestPrefaultStackAllocatesNothing(t *testing.T) {
	rt.PrefaultStack(64 << 10)
	if n := testing.AllocsPerRun(10, func() { rt.PrefaultStack(64 << 10) }); n != 0 {
		t.Fatalf("PrefaultStack allocates %v times", n)
	}
}

func TestMonotonicNowAllocatesNothing(t *testing.T) {
	var c rt.Monotonic
	if n := testing.AllocsPerRun(1000, func() { _ = c.Now() }); n != 0 {
		t.Fatalf("Now allocates %v times", n)
	}
}

func BenchmarkMonotonicNow(b *testing.B) {
	var c rt.Monotonic
	for b.Loop() {
		_ = c.Now()
	}
}
