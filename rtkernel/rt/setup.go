package rt

import (
	"fmt"
	"runtime"
	"runtime/debug"
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
