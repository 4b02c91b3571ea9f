package rt

import (
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sleepUntil calls clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) as a raw
// system call: the goroutine keeps its P while it sleeps instead of going
// through the runtime's entersyscall/exitsyscall, where sysmon retakes the
// P of a long-locked goroutine and the wake-up pays for getting it back.
// Measured here with --vs-cyclictest that path cost 15-20 µs at the median
// (p50 1.3-1.5x cyclictest's; with the raw call the loop is within a few µs
// of it). The price: each sleeping task holds a P, so the executive raises
// GOMAXPROCS to leave the general side its own (rt.Process.MinProcs), and a
// stop-the-world waits for the sleeping task's next wake-up (at most one
// period) instead of the task waiting for it. And because the goroutine
// never passes through the scheduler, the runtime preempts it every 10 ms
// unless it yields first: see Yielder.
func sleepUntil(t time.Duration) {
	if nanotime() >= int64(t) {
		// Past already (a relay's thread taking over at the deadline it
		// woke for, an overrun): a system call costs µs, the clock ns.
		return
	}
	ts := unix.NsecToTimespec(int64(t))
	for {
		_, _, errno := syscall.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME,
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if errno != unix.EINTR {
			return
		}
	}
}

// nap sleeps until t through the runtime's system-call path
// (syscall.Syscall6): the goroutine is "in a system call" meanwhile, so a
// stop-the-world or the tracer's per-P safe points need not wait for it to
// wake, as they must for a raw sleep, and keep preempting every other
// running goroutine while they wait.
func nap(t time.Duration) {
	if nanotime() >= int64(t) {
		return
	}
	ts := unix.NsecToTimespec(int64(t))
	for {
		_, _, errno := syscall.Syscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME,
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if errno != unix.EINTR {
			return
		}
	}
}
