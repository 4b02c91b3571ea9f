package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// ErrStarted is a Start of a partition that is already started (Stop it
// first).
var ErrStarted = errors.New("already started")

// Lifecycle owns the step Runner of a partition backend between Start and
// Stop: Start runs the host preparation with a new Runner, Stop unwinds the
// Runner of the current start. Backends embed one per partition. The zero
// value is usable (no log, real clock); set Backend, Log and Clock before
// the first Start.
type Lifecycle struct {
	// Backend prefixes the errors of Start ("process: already started").
	Backend string
	Log     *slog.Logger
	Clock   Clock

	mu     sync.Mutex
	runner *Runner // of the current start; nil when stopped
	last   *Runner // of the last start, for Records
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

// Stop undoes the steps of the current start in reverse; nothing when the
// partition is not started.
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
