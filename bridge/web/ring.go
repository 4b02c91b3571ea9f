package web

import (
	"math"
	"sync"

	"github.com/mkrt/mkrt/shm/tag"
)

// Ring is the trend history: the last Slots samples of every tag, taken
// together (one slot holds one time and one value per tag). Its memory is
// fixed when it is made: Slots × (8 + 4 × tags) bytes — values are kept as
// float32, a value that is not good as NaN (a gap in the chart).
type Ring struct {
	mu    sync.RWMutex
	tags  int
	times []int64   // Unix ms per slot
	vals  []float32 // slot-major: vals[slot*tags+id]
	next  int       // the slot Append writes
	full  bool
}

// NewRing makes a ring of slots samples of tags tags.
func NewRing(tags, slots int) *Ring {
	slots = max(slots, 2)
	return &Ring{tags: tags, times: make([]int64, slots), vals: make([]float32, slots*tags)}
}

// Bytes is the memory the ring holds.
func (r *Ring) Bytes() int { return len(r.times)*8 + len(r.vals)*4 }

// Append stores one sample of every tag, taken at ms (Unix milliseconds),
// over the oldest.
//
// Hot path: the web scan, every trend interval; it allocates nothing.
func (r *Ring) Append(ms int64, samples []tag.Sample) {
	r.mu.Lock()
	row := r.vals[r.next*r.tags : (r.next+1)*r.tags]
	for i := range row {
		if i < len(samples) && samples[i].Quality == tag.Good {
			row[i] = float32(samples[i].Value)
		} else {
			row[i] = float32(math.NaN())
		}
	}
	r.times[r.next] = ms
	if r.next++; r.next == len(r.times) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// Series appends to ts and vs the samples of tag id taken at or after
// since (Unix ms), oldest first; a NaN value is a gap.
func (r *Ring) Series(id tag.ID, since int64, ts []int64, vs []float64) ([]int64, []float64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if id < 0 || int(id) >= r.tags {
		return ts, vs
	}
	n, start := r.next, 0
	if r.full {
		n, start = len(r.times), r.next
	}
	for k := range n {
		s := (start + k) % len(r.times)
		if r.times[s] < since {
			continue
		}
		ts = append(ts, r.times[s])
		vs = append(vs, float64(r.vals[s*r.tags+int(id)]))
	}
	return ts, vs
}
