package rt

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// Held is what a Process setup holds for the run; Release gives it back.
type Held struct {
	release []func()
}

// Release undoes the process setup in reverse order. It is safe to call
// more than once.
func (h *Held) Release() {
	if h == nil {
		return
	}
	for i := len(h.release) - 1; i >= 0; i-- {
		h.release[i]()
	}
	h.release = nil
}

// Setup applies the process-wide facilities and reports each outcome. It
// never fails: what cannot be set is listed in the Status.
func (p Process) Setup() (*Held, Status) {
	var st Status
	h := &Held{}
	if p.LockMemory {
		err := mlockall()
		st.Add(FacilityMlockall, true, "MCL_CURRENT|MCL_FUTURE", err)
		if err == nil {
			h.release = append(h.release, munlockall)
		}
	}
	if p.DMALatency {
		closeFn, err := holdDMALatency()
		st.Add(FacilityDMALatency, true, "0us", err)
		if err == nil {
			h.release = append(h.release, closeFn)
		}
	}
	if AsyncPreemptOff() {
		st.Add(FacilityPreempt, false, "async preemption off", nil)
	} else {
		st.Add(FacilityPreempt, false, "", errAsyncPreempt)
	}
	if p.MinProcs > 0 {
		if old := runtime.GOMAXPROCS(0); old < p.MinProcs {
			runtime.GOMAXPROCS(p.MinProcs)
			h.release = append(h.release, func() { runtime.GOMAXPROCS(old) })
		}
		st.Add(FacilityProcs, false, fmt.Sprintf("GOMAXPROCS %d", runtime.GOMAXPROCS(0)), nil)
	}
	if p.GCOff {
		headroom := p.GCHeadroom
		if headroom <= 0 {
			headroom = 64 << 20
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		limit := int64(ms.HeapSys) + headroom
		oldPct := debug.SetGCPercent(-1)
		oldLimit := debug.SetMemoryLimit(limit)
		st.Add(FacilityGC, false, fmt.Sprintf("off, memory limit %d MiB", limit>>20), nil)
		h.release = append(h.release, func() {
			debug.SetMemoryLimit(oldLimit)
			debug.SetGCPercent(oldPct)
		})
	}
	return h, st
}

// Setup locks the calling goroutine to its OS thread and applies the
// thread's facilities. The goroutine must stay locked for the rest of its
// life (do not call runtime.UnlockOSThread): when it returns, the Go runtime
// ends the thread instead of reusing a SCHED_FIFO thread for other work.
func (t Thread) Setup() Status {
	runtime.LockOSThread()
	var st Status
	if t.CPU >= 0 {
		st.Add(FacilityAffinity, true, fmt.Sprintf("cpu %d", t.CPU), setAffinity(t.CPU))
	}
	if t.Priority > 0 {
		st.Add(FacilitySchedFIFO, true, fmt.Sprintf("priority %d", t.Priority), setFIFO(t.Priority))
	}
	st.Add(FacilityTimerSlack, false, "1ns", setTimerSlack())
	n := t.StackBytes
	if n <= 0 {
		n = 64 << 10
	}
	PrefaultStack(n)
	return st
}

// stackChunk is the frame size one prefault call occupies.
const stackChunk = 8 << 10

// PrefaultStack grows the calling goroutine's stack to at least n bytes and
// touches it, so the cyclic loop never pays for a stack copy or a page fault.
func PrefaultStack(n int) {
	prefault(n / stackChunk)
}

//go:noinline
func prefault(depth int) byte {
	var buf [stackChunk]byte
	for i := 0; i < len(buf); i += 512 {
		buf[i] = byte(depth + i)
	}
	if depth <= 0 {
		return buf[0]
	}
	return prefault(depth-1) + buf[len(buf)-512]
}

// errAsyncPreempt explains why async preemption should be off.
var errAsyncPreempt = errors.New("async preemption on: the runtime's preemption signals add milliseconds to the tail; start the process with GODEBUG=asyncpreemptoff=1")

// AsyncPreemptOff reports whether the process started with
// GODEBUG=asyncpreemptoff=1. The runtime reads the setting only at start,
// so a command that runs real-time tasks re-executes itself with it (see
// mkrt latency run). Measured here: without it p99.9 was 1.8-1.9x
// cyclictest's and the maximum 5-8x; with it both were within cyclictest's.
func AsyncPreemptOff() bool {
	v := os.Getenv("GODEBUG")
	i := strings.LastIndex(v, "asyncpreemptoff=")
	return i >= 0 && strings.HasPrefix(v[i:], "asyncpreemptoff=1")
}

// errNoHousekeeping: every CPU runs a real-time task.
var errNoHousekeeping = errors.New("no CPU left for the general side")

// Housekeeping moves every thread of the process except the real-time ones
// (keep, thread ids from Tid) off the real-time tasks' CPUs, as isolating
// those cores would; threads the runtime creates later inherit that. The
// outcome is an optional facility: nothing is moved when every CPU runs a
// task. Release gives the threads their affinity back.
func Housekeeping(rtCPUs []int, keep []int) (*Held, Status) {
	var st Status
	detail, restore, err := housekeep(rtCPUs, keep)
	st.Add(FacilityHousekeeping, false, detail, err)
	h := &Held{}
	if restore != nil {
		h.release = append(h.release, restore)
	}
	return h, st
}
