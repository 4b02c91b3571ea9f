// Package executive is the real-time executive: it runs a control config's
// cyclic tasks, each on its own locked OS thread at SCHED_FIFO, pinned to its
// CPU, sleeping to absolute deadlines on CLOCK_MONOTONIC. A cycle drains
// commands, reads inputs, runs the task's block program, writes outputs,
// publishes the process image and records its timing (wake-up latency and
// execution time) in HdrHistograms. The cycle allocates nothing.
//
// Overruns are handled per task by policy (skip to the next period, or
// catch up), and a watchdog drives every output to its configured safe value
// after watchdog.overruns consecutive overruns, reporting state "safe" with
// the reason. Stopping also drives outputs to the safe state.
//
// The executive talks to the outside only through small interfaces: the
// block Program, field IO, the Channel to the general kernel, and a Clock.
// Fakes for all of them live in package executivetest.
//
// # Tasks and the tag table
//
// Every tag has exactly one writer (the single-writer rule): a task's block
// outputs are written only by that task (the block compiler rejects a tag
// written by two blocks), device inputs only by the IO driver, and every
// other tag (setpoints, parameters, command-written device outputs) only by
// the first task, which applies the commands. Several tag writes sent as
// one unit (one Modbus request spanning several tags) are checked first,
// every one, and then applied all in the same cycle, or none: a refused
// one is answered with its status, the others wire.Withdrawn (see
// wire.ApplyUnit). With one task, the task works
// on the table given to New. With several, each task works on its own copy
// of the table; after each cycle a task publishes the tags it owns into a
// per-task seqlock area (atomic words, so the race detector agrees) and at
// the start of each cycle it copies in the tags the other tasks own. No task
// ever waits for another.
//
// The Channel is called by the first task's thread only (commands, image,
// heartbeat, events, which the other tasks pass to it through lock-free
// rings), except RecordLatency, which each task calls for its own index.
//
// # Garbage collector
//
// The cyclic loop allocates nothing (tested with testing.AllocsPerRun), so
// by default Run turns the GC off for the run (debug.SetGCPercent(-1)) with a
// memory limit of the heap plus 64 MiB as a safety net for the general-side
// goroutines, and restores both when Run returns.
//
// # Keeping the Go scheduler out of the cycle
//
// A task sleeps with a raw clock_nanosleep, so to the Go runtime it never
// stops running, and the runtime preempts a goroutine that has run 10 ms
// without a pass through its scheduler — for a goroutine locked to its
// thread, a hand-off through another thread that costs about 100 µs here
// and milliseconds on a busy housekeeping CPU. The executive therefore
// takes that pass on its own terms, never between the wake-up and the end
// of a cycle: a task with a period up to RelayMaxPeriod runs as a relay of
// two threads that take turns every few milliseconds, the one going off
// duty taking the pass while the other runs the cycles (relay.go); a slower
// task yields in its slack and cuts long sleeps into slices (rt.Yielder),
// which is also the back-up when a relay's standby is late. TaskCounters
// counts both (Relays, Yields).
//
// # Running for real
//
// SCHED_FIFO, mlockall and /dev/cpu_dma_latency need root (CAP_SYS_NICE,
// CAP_IPC_LOCK); without them the executive runs as SCHED_OTHER and reports
// "rt: degraded (<reason>)" in its Status and log. Good latency needs a
// PREEMPT_RT kernel and isolated cores.
package executive
