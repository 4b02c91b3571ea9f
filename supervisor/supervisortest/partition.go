package supervisortest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
)

// Heartbeat is a heartbeat whose cycle, state and error the test sets.
type Heartbeat struct {
	mu    sync.Mutex
	cycle uint64
	state wire.State
	err   error
}

// Read returns the values last set.
func (h *Heartbeat) Read() (uint64, wire.State, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cycle, h.state, h.err
}

// Set sets the cycle, the state and the read error.
func (h *Heartbeat) Set(cycle uint64, state wire.State, err error) {
	h.mu.Lock()
	h.cycle, h.state, h.err = cycle, state, err
	h.mu.Unlock()
}

// Beat advances the cycle by one with state running.
func (h *Heartbeat) Beat() {
	h.mu.Lock()
	h.cycle++
	h.state, h.err = wire.Running, nil
	h.mu.Unlock()
}

// Partition is a partition backend that records its calls. The test ends a
// run with Exit; Kill and Stop end it as a signal would.
type Partition struct {
	// StartErr, when set, is returned by the next Start calls.
	StartErr error
	InfoV    supervisor.Info

	mu      sync.Mutex
	calls   []string
	exit    chan supervisor.Exit
	running bool
	starts  atomic.Int32
}

// Backend returns "fake".
func (p *Partition) Backend() string { return "fake" }

func (p *Partition) call(s string) {
	p.mu.Lock()
	p.calls = append(p.calls, s)
	p.mu.Unlock()
}

// Calls returns the recorded calls ("start", "kill", "stop").
func (p *Partition) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// Starts counts successful starts.
func (p *Partition) Starts() int { return int(p.starts.Load()) }

// Start begins a run unless StartErr is set.
func (p *Partition) Start(ctx context.Context) error {
	p.call("start")
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.StartErr != nil {
		return p.StartErr
	}
	if p.running {
		return errors.New("fake: already running")
	}
	p.running = true
	p.exit = make(chan supervisor.Exit, 1)
	p.starts.Add(1)
	return nil
}

// Adopt makes the fake run as if an earlier supervisor had started it:
// running, without a start.
func (p *Partition) Adopt() {
	p.call("adopt")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running = true
	p.exit = make(chan supervisor.Exit, 1)
}

// Note records a call made by someone else (a hook), in order with the
// backend's own calls.
func (p *Partition) Note(s string) { p.call(s) }

// Wait waits for the run to end.
func (p *Partition) Wait(ctx context.Context) (supervisor.Exit, error) {
	p.mu.Lock()
	ch := p.exit
	p.mu.Unlock()
	if ch == nil {
		return supervisor.Exit{}, errors.New("fake: not started")
	}
	select {
	case e := <-ch:
		ch <- e // keep it for further waiters
		return e, nil
	case <-ctx.Done():
		return supervisor.Exit{}, ctx.Err()
	}
}

// Exit ends the current run with e, as if the program exited.
func (p *Partition) Exit(e supervisor.Exit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		p.running = false
		p.exit <- e
	}
}

// Stop ends the run (signal "terminated") and undoes the start.
func (p *Partition) Stop(ctx context.Context) error {
	p.call("stop")
	p.Exit(supervisor.Exit{Code: -1, Signal: "terminated"})
	return nil
}

// Kill ends the run with signal "killed".
func (p *Partition) Kill() error {
	p.call("kill")
	p.Exit(supervisor.Exit{Code: -1, Signal: "killed"})
	return nil
}

// Info returns InfoV.
func (p *Partition) Info() supervisor.Info { return p.InfoV }

// Console returns no lines.
func (p *Partition) Console() []string { return nil }
