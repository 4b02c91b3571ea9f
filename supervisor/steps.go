package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Step is one named, undoable part of bringing a partition up. Do performs
// it; Undo (optional) reverses it and is called only when Do succeeded.
type Step struct {
	Name string
	Do   func(ctx context.Context) error
	Undo func(ctx context.Context) error
}

// StepRecord is what happened to one step, in the order the runner saw it.
type StepRecord struct {
	Name string
	// Action is "do" or "undo".
	Action string
	Err    error
	Took   time.Duration
}

// StepError is the failure of one step; errors.Is/As see the step's error.
type StepError struct {
	Step   string
	Action string
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("supervisor: step %s (%s): %v", e.Step, e.Action, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Runner runs a list of steps in order and unwinds the completed ones in
// reverse, on the first failure or when Unwind is called. A Runner runs its
// list once; make a new one for the next start. It is safe for concurrent
// use, and its lock is never held while a step runs: Records answers during
// a long boot, and an Unwind called while Run is in progress cancels the
// run (a stop during a start abandons the start) and waits for it, bounded
// by its own context.
type Runner struct {
	log   *slog.Logger
	now   func() time.Time
	steps []Step

	mu      sync.Mutex
	done    []int // indexes of steps whose Do succeeded, in order
	records []StepRecord
	ran     bool
	// busy is closed when the Run or Unwind in progress ends; nil when none is.
	busy chan struct{}
	// cancel cancels the Run in progress; stopped says Unwind asked it to.
	cancel  context.CancelFunc
	stopped bool
}

// NewRunner returns a runner over steps. log and clock may be nil.
func NewRunner(steps []Step, log *slog.Logger, clock Clock) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	return &Runner{log: log, now: now, steps: steps}
}

// adopted marks every step done without running it: the steps of a start
// an earlier supervisor ran, which Unwind undoes like its own.
func (r *Runner) adopted() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ran = true
	for i, s := range r.steps {
		r.done = append(r.done, i)
		r.records = append(r.records, StepRecord{Name: s.Name, Action: "adopt"})
	}
}

// Run performs every step in order. When a step fails, the steps done so
// far are undone in reverse and the step's error is returned as a
// *StepError (joined with any undo errors). A cancelled ctx stops before the
// next step; undo then runs with a context that is not cancelled (undo must
// not be skipped because the caller gave up). A Run that Unwind stopped
// undoes what it did and fails, even when its last step had succeeded.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.ran {
		r.mu.Unlock()
		return errors.New("supervisor: step runner already ran")
	}
	r.ran = true
	ctx, cancel := context.WithCancel(ctx)
	busy := make(chan struct{})
	r.busy, r.cancel = busy, cancel
	r.mu.Unlock()
	defer func() {
		cancel()
		r.mu.Lock()
		r.busy, r.cancel = nil, nil
		r.mu.Unlock()
		close(busy)
	}()
	undo := context.WithoutCancel(ctx)
	for i, s := range r.steps {
		if err := ctx.Err(); err != nil {
			serr := &StepError{Step: s.Name, Action: "do", Err: err}
			return errors.Join(serr, r.undo(undo, r.takeDone()))
		}
		if s.Do != nil {
			start := r.now()
			err := s.Do(ctx)
			r.record(s.Name, "do", err, r.now().Sub(start))
			if err != nil {
				serr := &StepError{Step: s.Name, Action: "do", Err: err}
				return errors.Join(serr, r.undo(undo, r.takeDone()))
			}
		}
		r.mu.Lock()
		r.done = append(r.done, i)
		r.mu.Unlock()
	}
	r.mu.Lock()
	stopped := r.stopped
	r.mu.Unlock()
	if stopped && len(r.steps) > 0 {
		serr := &StepError{Step: r.steps[len(r.steps)-1].Name, Action: "do", Err: fmt.Errorf("stopped while starting: %w", context.Canceled)}
		return errors.Join(serr, r.undo(undo, r.takeDone()))
	}
	return nil
}

// Unwind undoes every completed step in reverse order. Every undo runs even
// when an earlier one fails; the errors are joined. Calling it again does
// nothing. While Run is in progress, Unwind cancels it and waits for it to
// end (it then undoes its own steps); when ctx ends first, Unwind returns
// ctx's error and the run still undoes itself once its step returns.
func (r *Runner) Unwind(ctx context.Context) error {
	for {
		r.mu.Lock()
		busy, cancel := r.busy, r.cancel
		if busy == nil {
			break // holding r.mu
		}
		if cancel != nil {
			r.stopped = true
		}
		r.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		select {
		case <-busy:
		case <-ctx.Done():
			return fmt.Errorf("supervisor: unwind: the start or stop in progress did not end: %w", ctx.Err())
		}
	}
	done := r.done
	r.done = nil
	busy := make(chan struct{})
	r.busy = busy
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.busy = nil
		r.mu.Unlock()
		close(busy)
	}()
	return r.undo(ctx, done)
}

// takeDone hands over the completed steps to undo.
func (r *Runner) takeDone() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	done := r.done
	r.done = nil
	return done
}

// undo undoes the steps done names, in reverse, without holding r.mu.
func (r *Runner) undo(ctx context.Context, done []int) error {
	var errs []error
	for k := len(done) - 1; k >= 0; k-- {
		s := r.steps[done[k]]
		if s.Undo == nil {
			continue
		}
		start := r.now()
		err := s.Undo(ctx)
		r.record(s.Name, "undo", err, r.now().Sub(start))
		if err != nil {
			errs = append(errs, &StepError{Step: s.Name, Action: "undo", Err: err})
		}
	}
	return errors.Join(errs...)
}

func (r *Runner) record(name, action string, err error, took time.Duration) {
	r.mu.Lock()
	r.records = append(r.records, StepRecord{Name: name, Action: action, Err: err, Took: took})
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("partition step failed", "step", name, "action", action, "err", err, "took", took)
		return
	}
	r.log.Info("partition step", "step", name, "action", action, "took", took)
}

// Records returns what ran so far, in order.
func (r *Runner) Records() []StepRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]StepRecord(nil), r.records...)
}
