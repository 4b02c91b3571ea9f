package retain

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mkrt/mkrt/supervisor"
)

// Saver saves retained values on change, at most once per MinInterval, and
// once more when it stops, so a burst of setpoint changes costs one write.
type Saver struct {
	store *Store
	min   time.Duration
	clock supervisor.Clock
	log   *slog.Logger

	mu      sync.Mutex
	pending []Value
	dirty   bool
	saves   int
	kick    chan struct{}
}

// NewSaver saves to store at most once per minInterval (default 1s).
// clock and log may be nil.
func NewSaver(store *Store, minInterval time.Duration, clock supervisor.Clock, log *slog.Logger) *Saver {
	if minInterval <= 0 {
		minInterval = time.Second
	}
	if clock == nil {
		clock = supervisor.RealClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Saver{store: store, min: minInterval, clock: clock, log: log, kick: make(chan struct{}, 1)}
}

// Update records the latest retained values; they are saved soon. It
// never blocks.
func (s *Saver) Update(vals []Value) {
	s.mu.Lock()
	if slices.Equal(vals, s.pending) && !s.dirty && s.saves > 0 {
		s.mu.Unlock()
		return
	}
	s.pending, s.dirty = slices.Clone(vals), true
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Saves counts completed saves.
func (s *Saver) Saves() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

// Run saves until ctx ends, then saves what is still pending and returns
// the error of that last save.
func (s *Saver) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return s.flush()
		case <-s.kick:
		}
		if err := s.flush(); err != nil {
			s.log.Error("retained values not saved", "err", err)
		}
		t := s.clock.NewTimer(s.min)
		select {
		case <-ctx.Done():
			t.Stop()
			return s.flush()
		case <-t.C():
		}
	}
}

func (s *Saver) flush() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	vals := s.pending
	s.dirty = false
	s.mu.Unlock()
	err := s.store.Save(vals)
	s.mu.Lock()
	if err != nil {
		s.dirty = true // retry on the next round
	} else {
		s.saves++
	}
	s.mu.Unlock()
	return err
}
