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
// use (Unwind may be called while Run is in progress: it waits).
type Runner struct {
	log   *slog.Logger
	now   func() time.Time
	steps []Step

	mu      sync.Mutex
	done    []int // indexes of steps whose Do succeeded, in order
	records []StepRecord
	ran     bool
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

// Run performs every step in order. When a step fails, the steps done so
// far are undone in reverse and the step's error is returned as a
// *StepError (joined with any undo errors). A cancelled ctx stops before the
// next step; undo then runs with a context that is not cancelled (undo must
// not be skipped because the caller gave up).
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ran {
		return errors.New("supervisor: step runner already ran")
	}
	r.ran = true
	for i, s := range r.steps {
		if err := ctx.Err(); err != nil {
			serr := &StepError{Step: s.Name, Action: "do", Err: err}
			return errors.Join(serr, r.unwindLocked(context.WithoutCancel(ctx)))
		}
		if s.Do == nil {
			r.done = append(r.done, i)
			continue
		}
		start := r.now()
		err := s.Do(ctx)
		r.record(s.Name, "do", err, r.now().Sub(start))
		if err != nil {
			serr := &StepError{Step: s.Name, Action: "do", Err: err}
			return errors.Join(serr, r.unwindLocked(context.WithoutCancel(ctx)))
		}
		r.done = append(r.done, i)
	}
	return nil
}

// Unwind undoes every completed step in reverse order. Every undo runs even
// when an earlier one fails; the errors are joined. Calling it again does
// nothing.
func (r *Runner) Unwind(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unwindLocked(ctx)
}

func (r *Runner) unwindLocked(ctx context.Context) error {
	var errs []error
	for k := len(r.done) - 1; k >= 0; k-- {
		s := r.steps[r.done[k]]
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
	r.done = nil
	return errors.Join(errs...)
}

func (r *Runner) record(name, action string, err error, took time.Duration) {
	r.records = append(r.records, StepRecord{Name: name, Action: action, Err: err, Took: took})
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
