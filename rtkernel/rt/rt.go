// Package rt sets up real-time threads and processes for the executive and
// the latency runner: SCHED_FIFO at a priority, CPU affinity, locked memory,
// /dev/cpu_dma_latency held at 0, timer slack, a pre-faulted stack, the GC
// kept away from the cyclic loop, and a monotonic clock that sleeps to
// absolute deadlines with clock_nanosleep(TIMER_ABSTIME).
//
// Every facility reports its outcome in a Status instead of failing: without
// root (CAP_SYS_NICE, CAP_IPC_LOCK, write access to /dev/cpu_dma_latency) the
// caller keeps running as SCHED_OTHER and prints "rt: degraded (<reason>)".
// Real-time behaviour needs Linux, root and ideally a PREEMPT_RT kernel with
// isolated cores; on other systems the calls are stubs that report
// "not supported".
package rt

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// The facility names used in a Status.
const (
	FacilitySchedFIFO    = "SCHED_FIFO"
	FacilityAffinity     = "affinity"
	FacilityMlockall     = "mlockall"
	FacilityDMALatency   = "cpu_dma_latency"
	FacilityTimerSlack   = "timerslack"
	FacilityGC           = "gc"
	FacilityProcs        = "procs"
	FacilityPreempt      = "asyncpreempt"
	FacilityHousekeeping = "housekeeping"
)

// Facility is the outcome of one real-time facility.
type Facility struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Detail says what was set ("priority 80", "cpu 1") or why it failed
	// ("operation not permitted").
	Detail string `json:"detail"`
	// Required facilities degrade the run when they fail; optional ones
	// (timer slack, GC policy) are reported but do not.
	Required bool `json:"required"`
}

// Status lists each facility and its outcome.
type Status struct {
	Facilities []Facility `json:"facilities"`
}

// Add records an outcome; a nil err means the facility is in effect.
func (s *Status) Add(name string, required bool, detail string, err error) {
	f := Facility{Name: name, OK: err == nil, Detail: detail, Required: required}
	if err != nil {
		f.Detail = errText(err)
	}
	s.Facilities = append(s.Facilities, f)
}

// Merge appends the facilities of o that s does not list yet under the same
// name and detail (several threads report the same process facility once).
func (s *Status) Merge(o Status) {
	for _, f := range o.Facilities {
		dup := false
		for _, g := range s.Facilities {
			if g == f {
				dup = true
				break
			}
		}
		if !dup {
			s.Facilities = append(s.Facilities, f)
		}
	}
}

// Degraded reports whether a required facility failed.
func (s Status) Degraded() bool {
	for _, f := range s.Facilities {
		if f.Required && !f.OK {
			return true
		}
	}
	return false
}

// Reasons lists the failed required facilities as "name: reason".
func (s Status) Reasons() []string {
	var out []string
	for _, f := range s.Facilities {
		if f.Required && !f.OK {
			out = append(out, f.Name+": "+f.Detail)
		}
	}
	return out
}

// String is "rt: ok" or "rt: degraded (SCHED_FIFO: operation not permitted; …)".
func (s Status) String() string {
	if !s.Degraded() {
		return "rt: ok"
	}
	return "rt: degraded (" + strings.Join(s.Reasons(), "; ") + ")"
}

// errText is the errno text of a syscall error, or the error itself.
func errText(err error) string {
	var se *SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

// ErrNotSupported is returned by the stubs on systems without the facility.
var ErrNotSupported = errors.New("rt: not supported on this system")

// SyscallError is a failed system call with its inputs.
type SyscallError struct {
	Syscall string
	Path    string // file or argument the call was made on, may be empty
	Err     syscall.Errno
}

func (e *SyscallError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("rt: %s %s: %v", e.Syscall, e.Path, e.Err)
	}
	return fmt.Sprintf("rt: %s: %v", e.Syscall, e.Err)
}

// Unwrap lets errors.Is match the errno (e.g. syscall.EPERM).
func (e *SyscallError) Unwrap() error { return e.Err }

// sysErr wraps err as a SyscallError when it is an errno.
func sysErr(call, path string, err error) error {
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return &SyscallError{Syscall: call, Path: path, Err: errno}
	}
	return fmt.Errorf("rt: %s %s: %w", call, path, err)
}

// Thread is the real-time setup of one OS thread.
type Thread struct {
	// Priority is the SCHED_FIFO priority, 1-99; 0 keeps SCHED_OTHER.
	Priority int
	// CPU pins the thread to one CPU; negative leaves the affinity alone.
	CPU int
	// StackBytes is how much goroutine stack to pre-fault; default 64 KiB.
	StackBytes int
}

// Process is the process-wide real-time setup.
type Process struct {
	// LockMemory calls mlockall(MCL_CURRENT|MCL_FUTURE).
	LockMemory bool
	// DMALatency holds /dev/cpu_dma_latency at 0 while the process runs.
	DMALatency bool
	// GCOff disables the garbage collector for the run (SetGCPercent(-1)),
	// with a memory limit of the current heap plus GCHeadroom as a safety
	// net: the cyclic loop allocates nothing, so only the general side's
	// allocations (logs, status) grow the heap, and GC runs only after they
	// reach the headroom. Restored by Release.
	GCOff bool
	// GCHeadroom is the heap growth allowed before GC runs; default 64 MiB.
	GCHeadroom int64
	// MinProcs raises GOMAXPROCS to at least this many: each real-time task
	// holds a P while it sleeps (see Monotonic.SleepUntil), so the executive
	// asks for one per task plus one for the general side. Restored by
	// Release.
	MinProcs int
}

// SetPriority sets the calling thread's SCHED_FIFO priority (after
// Thread.Setup): the executive lowers a task's standby thread below the
// thread that runs its cycles.
func SetPriority(prio int) error { return setPriorityRaw(prio) }

// YieldCPU gives the CPU to the next thread of the same priority
// (sched_yield) without involving the Go scheduler.
func YieldCPU() { yieldCPU() }

// CPUMask is a CPU affinity mask (up to 1024 CPUs) built outside the hot
// path and applied with SetAffinity.
type CPUMask [16]uint64

// MaskOf is the mask of cpus.
func MaskOf(cpus ...int) CPUMask {
	var m CPUMask
	for _, c := range cpus {
		if c >= 0 && c < len(m)*64 {
			m[c/64] |= 1 << (c % 64)
		}
	}
	return m
}

// Empty reports whether the mask has no CPU.
func (m *CPUMask) Empty() bool { return *m == CPUMask{} }

// HousekeepingMask is the calling thread's allowed CPUs without exclude:
// where a real-time thread can go to do work that must not touch its own
// CPU. It is empty when nothing is left or the affinity cannot be read.
func HousekeepingMask(exclude []int) CPUMask {
	m, err := threadMask()
	if err != nil {
		return CPUMask{}
	}
	for _, c := range exclude {
		if c >= 0 && c < len(m)*64 {
			m[c/64] &^= 1 << (c % 64)
		}
	}
	return m
}

// SetAffinity moves the calling thread to the CPUs of m, as a raw system
// call (no pass through the Go runtime's syscall path): the kernel
// migrates it before the call returns when its CPU is not in m.
func (m *CPUMask) SetAffinity() error { return setAffinityRaw(m) }
