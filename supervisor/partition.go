package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"
)

// ExitDoNotRestart is the exit code by which the executive says "restarting
// me will not help" (a config error, a hash mismatch on the shared-memory
// channel). The supervisor does not restart a partition that exits with it.
const ExitDoNotRestart = 125

// Partition is one partition backend's handle on a partition: the same
// lifecycle whether the control program runs as a child process, in a VM,
// or in a kexec-spawned kernel.
//
// Start prepares the host and starts the program; it may be called again
// after Stop returned. Wait blocks until the program ends. Stop ends it
// gracefully (the backend's polite request, then force when ctx ends) and
// undoes the host preparation; Kill ends it at once without undoing.
type Partition interface {
	// Backend names the backend ("process", "vm", ...).
	Backend() string
	Start(ctx context.Context) error
	// Wait returns how the program ended. A cancelled ctx returns ctx.Err()
	// without ending the program.
	Wait(ctx context.Context) (Exit, error)
	Stop(ctx context.Context) error
	Kill() error
	// Info is the current pid, isolation outcome and degradations.
	Info() Info
	// Console returns the most recent lines the program wrote (stdout,
	// stderr or serial console), oldest first.
	Console() []string
}

// Adopter is a backend whose program outlives the supervisor that started
// it (the partition is the plant's controller; the general side serves
// it). The supervisor saves Record while the program runs; a later
// supervisor adopts the program from it, or reclaims what it left behind
// once it is gone.
type Adopter interface {
	// Record is what a later supervisor needs to adopt the running
	// program (its identity and the host preparation done for it), as
	// JSON.
	Record() (json.RawMessage, error)
	// Adopt takes over the running program rec describes, started by an
	// earlier supervisor: afterwards the partition is started as far as
	// Wait, Stop, Kill and Info are concerned. It fails with an error
	// wrapping ErrGone when the program no longer runs.
	Adopt(rec json.RawMessage) error
	// Reclaim undoes the host preparation rec records once its program is
	// gone; it refuses while the program runs.
	Reclaim(ctx context.Context, rec json.RawMessage) error
}

// Networked is a backend whose partition has a network of its own (a
// namespace holding its dedicated NIC): InNetwork runs fn on an OS thread
// inside it, so the supervisor reaches the field devices the way the
// partition did (to drive their safe state).
type Networked interface {
	InNetwork(fn func() error) error
}

// Exit is how a partition's program ended.
type Exit struct {
	// Code is the exit code, -1 when it was ended by a signal.
	Code int
	// Signal names the signal that ended it ("killed", "segmentation fault"), or "".
	Signal string
	Time   time.Time
}

// processExit is how a child process (the executive, QEMU) ended, from its
// state after Wait: its exit code, or the signal that ended it. A nil ps is
// a Wait that failed (werr says why).
func processExit(ps *os.ProcessState, werr error, now time.Time) Exit {
	e := Exit{Code: -1, Time: now}
	if ps == nil {
		e.Signal = fmt.Sprintf("wait failed: %v", werr)
		return e
	}
	// syscall.WaitStatus on Unix (and Windows, where Signaled is false).
	type waitStatus interface {
		Signaled() bool
		Signal() syscall.Signal
	}
	if ws, ok := ps.Sys().(waitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal().String()
		return e
	}
	e.Code = ps.ExitCode()
	return e
}

// Restartable reports whether the supervisor should restart after e.
func (e Exit) Restartable() bool { return e.Code != ExitDoNotRestart }

func (e Exit) String() string {
	if e.Signal != "" {
		return "signal: " + e.Signal
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Info is what a backend knows of its partition right now.
type Info struct {
	PID int `json:"pid,omitempty"`
	// RT says whether the program got real-time scheduling, and Why when not.
	RT    bool   `json:"rt"`
	RTWhy string `json:"rt_why,omitempty"`
	Isolation
}

// Clone returns a copy that shares no slice with i, for a backend's Info
// to hand out while it keeps changing its own.
func (i Info) Clone() Info {
	i.NICs = slices.Clone(i.NICs)
	i.Degradations = slices.Clone(i.Degradations)
	return i
}

// Isolation is what host preparation achieved.
type Isolation struct {
	// CPUs is the partition's cpulist; CPUSet is how they were isolated:
	// "v2 isolated", "v2 root", "v2 member", "v1 exclusive", "v1 shared" or
	// "none".
	CPUs   string `json:"cpus,omitempty"`
	CPUSet string `json:"cpuset"`
	// IRQsMoved counts IRQs moved off the partition's CPUs; IRQsSkipped those
	// the kernel refused (per-CPU and managed IRQs).
	IRQsMoved   int `json:"irqs_moved"`
	IRQsSkipped int `json:"irqs_skipped"`
	// NetNS is the partition's network namespace, "" when it has none.
	NetNS string   `json:"netns,omitempty"`
	NICs  []string `json:"nics,omitempty"`
	// Degradations says, one line each, what could not be done and why:
	// "cpuset: permission denied (run as root)".
	Degradations []string `json:"degradations,omitempty"`
}

// Errors of the supervisor, for errors.Is.
var (
	// ErrCrashLoop is returned by Run when the partition restarted too often.
	ErrCrashLoop = errors.New("supervisor: partition is crash-looping")
	// ErrNoHeartbeat is a partition that did not send its first heartbeat in time.
	ErrNoHeartbeat = errors.New("supervisor: no heartbeat")
	// ErrDoNotRestart is a partition whose program exited with ExitDoNotRestart.
	ErrDoNotRestart = errors.New("supervisor: program asked not to be restarted")
	// ErrGone is a recorded program that no longer runs (Adopter.Adopt).
	ErrGone = errors.New("supervisor: the recorded program is not running")
)
