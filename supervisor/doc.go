// Package supervisor is the general-kernel side of a partition's life: the
// one lifecycle interface every partition backend implements, host
// preparation as an ordered list of undoable steps, the heartbeat watchdog,
// the restart policy with crash-loop detection, and the status a running
// partition reports to the control socket.
//
// The pieces compose as follows. A backend (supervisor/process, vm,
// multikernel, parker, jailhouse) implements Partition; its Start runs a
// Lifecycle of named Steps (check readiness, isolate cores, move IRQs, assign
// NICs, create shared memory, load, start) and unwinds them in reverse on
// failure or Stop. A Supervisor owns one Partition: it starts it, waits for
// the first heartbeat, watches the heartbeat every period, declares the
// partition faulted after the configured number of missed periods, restarts
// it with exponential backoff, and gives up in the crashloop state when it
// restarts too often. Listeners learn of "partition down" and "partition up"
// through Events, so the bridge can mark data stale and re-birth.
//
// Nothing in this package needs privileges; time is read through an
// injected Clock so the watchdog and the restart policy are tested without
// sleeping. Backends document what they need to run for real.
package supervisor
