package executivetest

import "sync"

// Baton is an in-memory hand-over area with the semantics of
// shm.HandOver: Offer publishes a state blob and offers the next cycle,
// Keep and Take race for each cycle and exactly one wins. It is safe for
// concurrent use and allocates nothing after NewBaton.
type Baton struct {
	mu             sync.Mutex
	origin, period int64
	kind           int // 0 none, 1 offered, 2 kept, 3 taken
	at             int64
	blob           []byte
	// Offers counts successful offers.
	Offers int
}

// NewBaton returns an area holding blobs of up to size bytes.
func NewBaton(size int) *Baton { return &Baton{blob: make([]byte, 0, size)} }

// SetGrid records the publishing executive's cycle grid.
func (b *Baton) SetGrid(origin, period int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.origin, b.period = origin, period
}

// Grid returns the recorded grid.
func (b *Baton) Grid() (origin, period int64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.origin, b.period, b.period > 0
}

// Reset clears the baton.
func (b *Baton) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kind, b.at = 0, 0
}

// Cap is the largest blob.
func (b *Baton) Cap() int { return cap(b.blob) }

// Offer stores blob and offers the cycle after after.
func (b *Baton) Offer(after int64, blob []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(blob) > cap(b.blob) {
		return false
	}
	b.blob = append(b.blob[:0], blob...)
	b.kind, b.at = 1, after
	b.Offers++
	return true
}

// Keep claims sched for the releasing side unless it was taken.
func (b *Baton) Keep(sched int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.kind {
	case 3:
		return false
	case 1:
		b.kind, b.at = 2, sched
	}
	return true
}

// Take claims sched for the taking side if a state is on offer.
func (b *Baton) Take(sched int64, dst []byte) (int64, []byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kind != 1 || b.at >= sched || len(b.blob) > cap(dst) {
		return 0, nil, false
	}
	after := b.at
	dst = append(dst[:0], b.blob...)
	b.kind, b.at = 3, sched
	return after, dst, true
}

// Taken reports whether the taking side took, and at which cycle.
func (b *Baton) Taken() (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.at, b.kind == 3
}
