// Package load starts a named background load for a latency test run, so a
// run's figures say what the machine was doing: idle (none), cpu, memory and
// io (stress-ng workers), and network (a loopback TCP/UDP flood written in Go,
// bounded in rate and time, to 127.0.0.1 only).
//
// The stress-ng kinds need the Debian package stress-ng and Linux: each load
// runs in its own process group, which Stop (or the end of the context)
// terminates as a whole, so no worker outlives the run. The network kind needs
// nothing but a loopback interface. No kind needs root.
package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"
)

// Kind names a background load.
type Kind string

// The loads.
const (
	Idle    Kind = "idle"    // no load
	CPU     Kind = "cpu"     // stress-ng --cpu
	Memory  Kind = "memory"  // stress-ng --vm
	IO      Kind = "io"      // stress-ng --hdd and --iomix in a temporary directory
	Network Kind = "network" // loopback TCP stream and UDP flood
)

// Kinds lists every load in documentation order.
func Kinds() []Kind { return []Kind{Idle, CPU, Memory, IO, Network} }

// ErrUnknownKind is returned (wrapped) for a load name that is not one of Kinds.
var ErrUnknownKind = errors.New("unknown load")

// ErrToolMissing is returned (wrapped) when the program a load runs is not installed.
var ErrToolMissing = errors.New("load generator not installed")

// ErrUnsupported is returned (wrapped) for a stress-ng load on a platform without process groups.
var ErrUnsupported = errors.New("load not supported on this platform")

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds() {
		if string(k) == s {
			return k, nil
		}
	}
	names := make([]string, 0, 5)
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	return "", fmt.Errorf("load: %w %q (want one of %s)", ErrUnknownKind, s, strings.Join(names, ", "))
}

// Options shape a load. The zero value is a sensible default for every kind.
type Options struct {
	// Workers is how many stress-ng workers (or network senders) run; default
	// the number of CPUs.
	Workers int
	// Duration bounds the load; zero runs it until Stop or the context ends.
	Duration time.Duration
	// CPUs pins stress-ng workers to these CPUs (stress-ng --taskset); empty:
	// anywhere the scheduler puts them. Pin load onto the partition cores to
	// measure the worst case, onto housekeeping cores to measure isolation.
	CPUs []int
	// VMBytes is the memory each memory worker touches (stress-ng --vm-bytes); default 64M.
	VMBytes string
	// IOBytes is the file size each io worker writes (--hdd-bytes, --iomix-bytes); default 64M.
	IOBytes string
	// Dir is where the io load's temporary directory is made; default os.TempDir().
	Dir string
	// Rate caps the network load in packets per second, summed over senders; default 20000.
	Rate int
	// PacketSize is the network load's packet and write size in bytes; default 1024.
	PacketSize int
	// StressNG is the stress-ng program; default found on $PATH.
	StressNG string
	// Logger receives start and stop messages; default discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.VMBytes == "" {
		o.VMBytes = "64M"
	}
	if o.IOBytes == "" {
		o.IOBytes = "64M"
	}
	if o.Rate <= 0 {
		o.Rate = 20000
	}
	if o.PacketSize <= 0 {
		o.PacketSize = 1024
	}
	if o.PacketSize > 65000 {
		o.PacketSize = 65000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Load is a running background load. Stop it exactly when the run ends;
// Stop is safe to call more than once and from several goroutines.
type Load struct {
	kind Kind
	desc string
	log  *slog.Logger
	done chan struct{} // closed when the load has ended
	stop func() error  // ends the load and waits for it, bounded
	net  *flood        // the network kind's counters
	pgid int           // the stress-ng kinds' process group
}

// PGID is the process group of a stress-ng load's processes; 0 for the others.
func (l *Load) PGID() int { return l.pgid }

// Kind is the load's kind.
func (l *Load) Kind() Kind { return l.kind }

// String describes the load as a report records it, e.g. "cpu: stress-ng --cpu 2".
func (l *Load) String() string { return l.desc }

// Done is closed when the load has ended: stopped, timed out or exited.
func (l *Load) Done() <-chan struct{} { return l.done }

// Stop ends the load and waits (bounded) until every process or goroutine of
// it is gone. It returns why the load ended early, if it did.
func (l *Load) Stop() error { return l.stop() }

// NetworkStats returns the packets and bytes the network load has sent; zeros for other kinds.
func (l *Load) NetworkStats() (packets, bytes uint64) {
	if l.net == nil {
		return 0, 0
	}
	return l.net.packets.Load(), l.net.bytes.Load()
}

// Start starts a load of kind k. The load ends at Stop, when ctx ends, or
// after opts.Duration.
func Start(ctx context.Context, k Kind, opts Options) (*Load, error) {
	opts = opts.withDefaults()
	switch k {
	case Idle:
		done := make(chan struct{})
		close(done)
		return &Load{kind: Idle, desc: "idle", log: opts.Logger, done: done, stop: func() error { return nil }}, nil
	case CPU, Memory, IO:
		return startStress(ctx, k, opts)
	case Network:
		return startNetwork(ctx, opts)
	}
	_, err := ParseKind(string(k))
	return nil, err
}
