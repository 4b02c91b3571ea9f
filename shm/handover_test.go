package shm_test

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
	"github.com/mkrt/mkrt/shm/wire"
)

func newAreas(t *testing.T) (*shm.HandOver, *shm.HandOver) {
	t.Helper()
	l := shmtest.Layout(t, shmtest.Params(4, 1, 1))
	path := shmtest.File(t, l)
	w, err := shm.AttachWriter(ctxT(t), shmtest.Map(t, path), l, shm.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := shm.OpenHandOver(shmtest.Map(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if h.Cap() < 64<<10 {
		t.Fatalf("hand-over capacity %d, want at least 64 KiB", h.Cap())
	}
	return w.HandOver(), h
}

// The clock identity and the heartbeat time reach an executive that maps
// the region through OpenHandOver (the one taking over).
func TestHandOverClock(t *testing.T) {
	l := shmtest.Layout(t, shmtest.Params(4, 1, 1))
	path := shmtest.File(t, l)
	w, err := shm.AttachWriter(ctxT(t), shmtest.Map(t, path), l, shm.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	taker, err := shm.OpenHandOver(shmtest.Map(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if !taker.ClockID().IsZero() {
		t.Fatal("clock ID set before the writer published one")
	}
	id, err := shm.ParseClockID("3b1c6f0e-52a4-4d2f-9a7e-0c8d5e2f1a90\n")
	if err != nil || id.String() != "3b1c6f0e-52a4-4d2f-9a7e-0c8d5e2f1a90" {
		t.Fatalf("ParseClockID = %v, %v", id, err)
	}
	w.HandOver().SetClockID(id)
	if got := taker.ClockID(); got != id {
		t.Fatalf("ClockID = %v, want %v", got, id)
	}
	w.Beat(7, 123_456_789)
	if b := taker.Beat(); b != 123_456_789 {
		t.Fatalf("Beat = %d", b)
	}
	for _, bad := range []string{"", "3b1c6f0e", "zz1c6f0e-52a4-4d2f-9a7e-0c8d5e2f1a90"} {
		if _, err := shm.ParseClockID(bad); err == nil {
			t.Errorf("ParseClockID(%q): want an error", bad)
		}
	}
}

func TestHandOverGrid(t *testing.T) {
	old, taker := newAreas(t)
	if _, _, ok := taker.Grid(); ok {
		t.Fatal("grid set before the writer published it")
	}
	old.SetGrid(1_000_000, 20_000_000)
	if o, p, ok := taker.Grid(); !ok || o != 1_000_000 || p != 20_000_000 {
		t.Fatalf("Grid = %d %d %v", o, p, ok)
	}
}

// The switch: offered after cycle N, the taker takes N+1; the old side can
// no longer keep it, and the blob is the one offered.
func TestHandOverTakeAtBoundary(t *testing.T) {
	old, taker := newAreas(t)
	const p = 10
	dst := make([]byte, taker.Cap())
	if _, _, ok := taker.Take(100, dst); ok {
		t.Fatal("took without an offer")
	}
	if !old.Keep(90) {
		t.Fatal("the old side must keep cycles before it offered")
	}
	blob := []byte("state after cycle 90, thirty-odd bytes")
	if !old.Offer(90, blob) {
		t.Fatal("offer refused")
	}
	after, got, ok := taker.Take(90+p, dst)
	if !ok || after != 90 || !bytes.Equal(got, blob) {
		t.Fatalf("Take = %d %q %v", after, got, ok)
	}
	if old.Keep(90 + p) {
		t.Fatal("the old side kept a cycle the new side took")
	}
	if old.Keep(90 + 2*p) {
		t.Fatal("the old side kept a later cycle")
	}
}

// Not in time: the old side claims the cycle first and drives it; the taker
// retries next cycle and gets the newer state.
func TestHandOverNotInTime(t *testing.T) {
	old, taker := newAreas(t)
	dst := make([]byte, taker.Cap())
	old.Offer(90, []byte("after 90"))
	if !old.Keep(100) {
		t.Fatal("keep refused with nothing taken")
	}
	if _, _, ok := taker.Take(100, dst); ok {
		t.Fatal("took a cycle the old side kept")
	}
	old.Offer(100, []byte("after 100"))
	after, got, ok := taker.Take(110, dst)
	if !ok || after != 100 || string(got) != "after 100" {
		t.Fatalf("Take = %d %q %v", after, got, ok)
	}
	// A stale offer (from before the taker's cycle) is never taken for an
	// earlier cycle.
	old2, taker2 := newAreas(t)
	old2.Offer(200, []byte("x"))
	if _, _, ok := taker2.Take(200, dst); ok {
		t.Fatal("took the cycle the offer follows")
	}
	old.Reset()
	if _, _, ok := taker.Take(300, dst); ok {
		t.Fatal("took after a reset")
	}
}

func TestHandOverBlobBounds(t *testing.T) {
	old, taker := newAreas(t)
	if old.Offer(1, make([]byte, old.Cap()+1)) {
		t.Fatal("offered a blob larger than the area")
	}
	big := bytes.Repeat([]byte{7}, old.Cap())
	if !old.Offer(1, big) {
		t.Fatal("refused a blob of exactly Cap bytes")
	}
	if _, _, ok := taker.Take(2, make([]byte, 0, 10)); ok {
		t.Fatal("took into a too small buffer")
	}
	if _, got, ok := taker.Take(2, make([]byte, old.Cap())); !ok || !bytes.Equal(got, big) {
		t.Fatal("full-size blob not taken intact")
	}
}

func TestHandOverCounters(t *testing.T) {
	old, taker := newAreas(t)
	c := wire.HandOverCounters{Mode: wire.Released, Driven: 5, Standby: 0, Released: 9, Retries: 2, Missed: 0, Switch: 12345, Blocks: wire.BlockCounts{Carried: 3, Fresh: 1, Dropped: 2}}
	old.SetCounters(c)
	if got := taker.Counters(); got != c {
		t.Fatalf("Counters = %+v, want %+v", got, c)
	}
	if wire.Standby.String() != "standby" || wire.HandOverMode(9).String() != "mode(9)" {
		t.Fatal("mode names")
	}
}

// Under a releasing side that offers, keeps and re-offers as fast as it
// can, every blob the taker gets is whole (never torn) and exactly one side
// owns each cycle.
func TestHandOverConcurrent(t *testing.T) {
	old, taker := newAreas(t)
	const cycles = 20000
	blobFor := func(sched int64) []byte {
		b := make([]byte, 64+sched%64)
		for i := range b {
			b[i] = byte(sched) ^ byte(i)
		}
		return b
	}
	var owner [cycles]atomic.Int32
	var taken atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // releasing side
		defer wg.Done()
		old.Offer(0, blobFor(0))
		for s := int64(1); s < cycles; s++ {
			if !old.Keep(s) {
				return
			}
			owner[s].Add(1)
			old.Offer(s, blobFor(s))
		}
	}()
	go func() { // taking side: tries every cycle number it reaches
		defer wg.Done()
		dst := make([]byte, taker.Cap())
		for s := int64(1); s < cycles; s++ {
			after, got, ok := taker.Take(s, dst)
			if !ok {
				continue
			}
			if !bytes.Equal(got, blobFor(after)) {
				t.Errorf("torn or wrong blob for cycle %d", after)
			}
			owner[s].Add(2)
			taken.Store(s)
			return
		}
	}()
	wg.Wait()
	for s := range owner {
		if v := owner[s].Load(); v == 3 {
			t.Fatalf("cycle %d driven by both sides", s)
		}
	}
	if s := taken.Load(); s > 0 && owner[s].Load() != 2 {
		t.Fatalf("taken cycle %d owner %d", s, owner[s].Load())
	}
}

// A corrupted hand-over size in the header is refused, never a crash.
func TestOpenHandOverRefusesCorruptHeader(t *testing.T) {
	l := shmtest.Layout(t, shmtest.Params(2, 0, 1))
	path := shmtest.File(t, l)
	r := shmtest.Map(t, path)
	if _, err := shm.OpenHandOver(r); !errors.Is(err, shm.ErrNotFormatted) {
		t.Fatalf("blank region: %v, want ErrNotFormatted", err)
	}
	if err := shm.Format(r, l); err != nil {
		t.Fatal(err)
	}
	r.Bytes()[140] ^= 0x08 // hand-over size in the header
	if _, err := shm.OpenHandOver(r); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("corrupted header: %v, want ErrCorrupt", err)
	}
}

func TestHandOverAllocationFree(t *testing.T) {
	old, taker := newAreas(t)
	blob := make([]byte, 1000)
	dst := make([]byte, taker.Cap())
	s := int64(10)
	n := testing.AllocsPerRun(200, func() {
		old.Offer(s, blob)
		old.Keep(s + 1)
		old.Offer(s+1, blob)
		taker.Take(s+2, dst)
		old.Reset()
		s += 3
	})
	if n != 0 {
		t.Fatalf("%v allocations per hand-over round", n)
	}
}

func BenchmarkHandOverOfferTake(b *testing.B) {
	l := shmtest.Layout(b, shmtest.Params(4, 1, 1))
	path := shmtest.File(b, l)
	w, err := shm.AttachWriter(ctxT(b), shmtest.Map(b, path), l, shm.WriterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	old := w.HandOver()
	taker, err := shm.OpenHandOver(shmtest.Map(b, path))
	if err != nil {
		b.Fatal(err)
	}
	blob := make([]byte, 4096)
	dst := make([]byte, taker.Cap())
	s := int64(0)
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		old.Offer(s, blob)
		if _, _, ok := taker.Take(s+1, dst); !ok {
			b.Fatal("take failed")
		}
		old.Reset()
		s += 2
	}
}
