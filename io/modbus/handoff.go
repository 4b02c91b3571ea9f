package modbus

import "sync/atomic"

// triple is a wait-free single-producer single-consumer hand-off of the
// latest version of a value (a triple buffer). The producer fills Back and
// publishes it; the consumer takes the newest published version with Front.
// Neither side ever waits for or retries against the other, and each buffer
// is owned by exactly one side at a time (ownership moves through one atomic
// swap), so neither side can see a torn value.
type triple[T any] struct {
	buf [3]T
	// mid holds the index of the middle buffer, with fresh set when the
	// producer published it after the consumer last took one.
	mid   atomic.Uint32
	back  uint32 // owned by the producer
	front uint32 // owned by the consumer
}

const fresh = 4

func (t *triple[T]) init(mk func() T) {
	for i := range t.buf {
		t.buf[i] = mk()
	}
	t.back, t.front = 0, 2
	t.mid.Store(1)
}

// Back is the producer's buffer. Its contents are an older version: the
// producer overwrites all of it before Publish.
//
// Hot path: allocation-free, lock-free.
func (t *triple[T]) Back() *T { return &t.buf[t.back] }

// Publish hands the back buffer to the consumer.
//
// Hot path: allocation-free, wait-free.
func (t *triple[T]) Publish() { t.back = t.mid.Swap(t.back|fresh) &^ fresh }

// Front returns the newest published version and whether it is newer than
// the one returned by the previous call.
//
// Hot path: allocation-free, wait-free.
func (t *triple[T]) Front() (*T, bool) {
	if t.mid.Load()&fresh == 0 {
		return &t.buf[t.front], false
	}
	t.front = t.mid.Swap(t.front) &^ fresh
	return &t.buf[t.front], true
}
