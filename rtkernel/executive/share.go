package executive

import (
	"math"
	"sync/atomic"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// slot is one tag's value in the shared area between tasks.
type slot struct {
	value atomic.Uint64 // float64 bits
	time  atomic.Int64
	qual  atomic.Uint32 // quality | reason<<8
	text  atomic.Pointer[string]
}

// area is the seqlock over the slots one task owns.
type area struct {
	seq atomic.Uint64
	ids []tag.ID
}

// shared is the tag exchange between tasks (multi-task executives only).
type shared struct {
	slots []slot
	areas []area
}

// maxReadTries bounds a reader's retries on a seqlock being written.
const maxReadTries = 8

// publish copies the tags task owns from its table into the shared slots.
// Hot path: allocation-free unless a string tag changed.
func (s *shared) publish(task int, tab *tag.Table) {
	a := &s.areas[task]
	a.seq.Add(1)
	for _, id := range a.ids {
		sl, smp := &s.slots[id], &tab.Samples[id]
		sl.value.Store(math.Float64bits(smp.Value))
		sl.time.Store(smp.Time)
		sl.qual.Store(uint32(smp.Quality) | uint32(smp.Reason)<<8)
		if p := sl.text.Load(); (p == nil && tab.Text[id] != "") || (p != nil && *p != tab.Text[id]) {
			sl.text.Store(boxString(tab.Text[id]))
		}
	}
	a.seq.Add(1)
}

// collect copies into tab the tags every other task owns. A task that is
// writing its area is retried a bounded number of times; after that its tags
// keep the values of the last consistent read. Hot path: allocation-free.
func (s *shared) collect(task int, tab *tag.Table) {
	for other := range s.areas {
		if other == task {
			continue
		}
		a := &s.areas[other]
		for try := 0; try < maxReadTries; try++ {
			before := a.seq.Load()
			if before&1 == 1 {
				continue
			}
			for _, id := range a.ids {
				sl, smp := &s.slots[id], &tab.Samples[id]
				smp.Value = math.Float64frombits(sl.value.Load())
				smp.Time = sl.time.Load()
				q := sl.qual.Load()
				smp.Quality, smp.Reason = tag.Quality(q), tag.Reason(q>>8)
				if p := sl.text.Load(); p != nil {
					tab.Text[id] = *p
				}
			}
			if a.seq.Load() == before {
				break
			}
		}
	}
}

// ring is a single-producer single-consumer queue of events from a task to
// the first task, which passes them to the Channel.
type ring struct {
	head, tail atomic.Uint64
	buf        [32]wire.Event
	dropped    atomic.Uint64
}

// push adds e, or counts it dropped when the ring is full. Producer side.
func (r *ring) push(e wire.Event) {
	h, t := r.head.Load(), r.tail.Load()
	if h-t >= uint64(len(r.buf)) {
		r.dropped.Add(1)
		return
	}
	r.buf[h%uint64(len(r.buf))] = e
	r.head.Store(h + 1)
}

// pop removes the oldest event. Consumer side.
func (r *ring) pop() (wire.Event, bool) {
	t, h := r.tail.Load(), r.head.Load()
	if t == h {
		return wire.Event{}, false
	}
	e := r.buf[t%uint64(len(r.buf))]
	r.tail.Store(t + 1)
	return e, true
}

// boxString allocates a string header for an atomic pointer; called only
// when a string tag changed.
func boxString(s string) *string { return &s }
