package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"time"
)

// ErrStarted is a Start of a partition that is already started (Stop it
// first); ErrNotStarted a Wait (or Kill) of a partition whose program never
// ran.
var (
	ErrStarted    = errors.New("already started")
	ErrNotStarted = errors.New("not started")
)

// Lifecycle owns the step Runner of a partition backend between Start and
// Stop: Start runs the host preparation with a new Runner, Stop unwinds the
// Runner of the current start. It also keeps the Ending of the program's
// current run, which the backend's start step records with Running (or
// Reap, for a child process) and Wait awaits. Backends embed one per
// partition. The zero value is usable (no log, real clock); set Backend,
// Log and Clock before the first Start.
//
// Its lock is never held while a step runs (see Runner), so Stop, Records
// and Wait answer during a long boot.
type Lifecycle struct {
	// Backend prefixes the errors of Start ("process: already started").
	Backend string
	Log     *slog.Logger
	Clock   Clock

	mu     sync.Mutex
	runner *Runner // of the current start; nil when stopped
	last   *Runner // of the last start, for Records
	ending *Ending // of the program's current or last run; nil before the first
}

// Start runs the steps of one start. begin is called once the start is
// admitted, under the lifecycle's lock (so two Starts cannot both pass):
// it resets the backend's per-start state and returns the steps. When a
// step fails, the steps done so far are undone and the partition is
// stopped again; the error is the Runner's. A Start while started returns
// an error wrapping ErrStarted.
func (l *Lifecycle) Start(ctx context.Context, begin func() []Step) error {
	l.mu.Lock()
	if l.runner != nil {
		l.mu.Unlock()
		return fmt.Errorf("%s: partition %w (Stop it first)", l.Backend, ErrStarted)
	}
	r := NewRunner(begin(), l.Log, l.Clock)
	l.runner, l.last = r, r
	l.mu.Unlock()
	if err := r.Run(ctx); err != nil {
		l.mu.Lock()
		if l.runner == r {
			l.runner = nil
		}
		l.mu.Unlock()
		return err
	}
	return nil
}

// Adopt makes the lifecycle own a partition that an earlier supervisor
// started and left running: begin, called under the lifecycle's lock,
// restores the backend's per-start state from what that supervisor
// recorded and returns the steps of that start, which count as done (Stop
// undoes them all). The backend records its program's run with Running.
func (l *Lifecycle) Adopt(begin func() ([]Step, error)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runner != nil {
		return fmt.Errorf("%s: partition %w (Stop it first)", l.Backend, ErrStarted)
	}
	steps, err := begin()
	if err != nil {
		return err
	}
	r := NewRunner(steps, l.Log, l.Clock)
	r.adopted()
	l.runner, l.last = r, r
	return nil
}

// Stop undoes the steps of the current start in reverse; nothing when the
// partition is not started. A Stop during a Start cancels the start, which
// undoes what it did (see Runner.Unwind).
func (l *Lifecycle) Stop(ctx context.Context) error {
	l.mu.Lock()
	r := l.runner
	l.runner = nil
	l.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Unwind(ctx)
}

// Records is what the last start and stop ran, in order.
func (l *Lifecycle) Records() []StepRecord {
	l.mu.Lock()
	r := l.last
	l.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Records()
}

// Running records the ending of the program's run that a start step just
// began; Ending and Wait see it until the next run. A backend calls it from
// a step, never while holding a lock its begin function takes.
func (l *Lifecycle) Running(e *Ending) {
	l.mu.Lock()
	l.ending = e
	l.mu.Unlock()
}

// Reap makes cmd, a child process just started (the executive, QEMU), the
// program's current run (see Running) and reaps it in the background: the
// run ends with the child's exit code, or the signal that ended it, once
// onExit (optional; e.g. to clear the pid and log) has seen it.
func (l *Lifecycle) Reap(cmd *exec.Cmd, onExit func(Exit)) *Ending {
	e := NewEnding()
	l.Running(e)
	now := time.Now
	if l.Clock != nil {
		now = l.Clock.Now
	}
	go func() {
		werr := cmd.Wait()
		x := processExit(cmd.ProcessState, werr, now())
		if onExit != nil {
			onExit(x)
		}
		e.End(x)
	}()
	return e
}

// Ending is the ending of the program's current or last run, nil before
// the first.
func (l *Lifecycle) Ending() *Ending {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ending
}

// Wait returns how the program's current run ended, or ctx.Err() when ctx
// ends first; before the first run an error wrapping ErrNotStarted.
func (l *Lifecycle) Wait(ctx context.Context) (Exit, error) {
	e := l.Ending()
	if e == nil {
		return Exit{}, fmt.Errorf("%s: partition %w", l.Backend, ErrNotStarted)
	}
	return e.Wait(ctx)
}

// Ending is how one run of a partition's program ends: set once by the
// goroutine that reaps or watches the program, awaited by any number of
// callers. Make one per run with NewEnding.
type Ending struct {
	done chan struct{}
	once sync.Once
	exit Exit // written before done is closed, read only after
}

// NewEnding returns the ending of a run that has not ended yet.
func NewEnding() *Ending { return &Ending{done: make(chan struct{})} }

// End records how the run ended and wakes every waiter; only the first
// call counts.
func (e *Ending) End(x Exit) {
	e.once.Do(func() {
		e.exit = x
		close(e.done)
	})
}

// Done is closed once the run ended.
func (e *Ending) Done() <-chan struct{} { return e.done }

// EndsWithin waits up to d for the run to end and reports whether it did:
// the bound on the wait after a SIGKILL, which a process stuck in
// uninterruptible sleep does not obey.
func (e *Ending) EndsWithin(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.done:
		return true
	case <-t.C:
		return false
	}
}

// Wait returns how the run ended, or ctx.Err() when ctx ends first (a run
// that has ended is reported even with ctx done).
func (e *Ending) Wait(ctx context.Context) (Exit, error) {
	select {
	case <-e.done:
		return e.exit, nil
	default:
	}
	select {
	case <-e.done:
		return e.exit, nil
	case <-ctx.Done():
		return Exit{}, ctx.Err()
	}
}
