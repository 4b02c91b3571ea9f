package rt_test

import (
	"testing"
	"time"

	"github.com/mkrt/mkrt/rtkernel/rt"
)

func TestYielderPolicy(t *testing.T) {
	const us = time.Microsecond
	const ms = time.Millisecond
	var y rt.Yielder
	y.Start(0)
	steps := []struct {
		now, next time.Duration
		due       bool
		why       string
	}{
		{4 * ms, 4*ms + 250*us, false, "sooner than YieldEvery"},
		{5 * ms, 5*ms + 250*us, true, "YieldEvery passed, nothing learnt yet"},
	}
	for _, s := range steps {
		if got := y.Due(s.now, s.next); got != s.due {
			t.Fatalf("Due(%v, %v) = %v, want %v: %s", s.now, s.next, got, s.due, s.why)
		}
	}
	y.Done(5*ms, 5*ms+100*us)
	if y.Count != 1 || y.Cost() != 100*us || y.Max != 100*us {
		t.Fatalf("after a 100µs yield: count %d cost %v max %v", y.Count, y.Cost(), y.Max)
	}
	// From 5.1 ms on: 5 ms later the slack must exceed the 100 µs cost.
	if y.Due(10*ms, 10*ms+250*us) {
		t.Fatal("due 4.9 ms after the last yield")
	}
	if y.Due(10*ms+200*us, 10*ms+250*us) {
		t.Fatal("due with 50 µs of slack for a 100 µs yield")
	}
	if !y.Due(12*ms, 12*ms+200*us) {
		t.Fatal("not due with 200 µs of slack for a 100 µs yield")
	}
	// A wake-up more than YieldLatest after the last yield is overdue: the
	// task yields before sleeping, at once when YieldEvery has passed.
	if y.Overdue(5*ms + 100*us + rt.YieldLatest) {
		t.Fatal("a wake-up exactly YieldLatest after the last yield is overdue")
	}
	if !y.Overdue(13*ms + 250*us) {
		t.Fatal("a wake-up 8.15 ms after the last yield is not overdue")
	}
	if got := y.Slice(13 * ms); got != 13*ms {
		t.Fatalf("Slice(13ms) = %v, want now", got)
	}
	if got := y.Slice(6 * ms); got != 10*ms+100*us {
		t.Fatalf("Slice(6ms) = %v, want YieldEvery after the last yield", got)
	}
	// A slow yield raises the cost; cheap ones bring it down an eighth at a time.
	y.Done(14*ms, 15*ms)
	y.Done(20*ms, 20*ms+10*us)
	if y.Cost() != ms-ms/8 || y.Max != ms || y.Count != 3 {
		t.Fatalf("cost %v max %v count %d; want %v, 1ms, 3", y.Cost(), y.Max, y.Count, ms-ms/8)
	}
}

// TestYieldComesBack: a goroutine locked to its thread yields and comes
// back on the same thread.
func TestYieldComesBack(t *testing.T) {
	done := make(chan int)
	go func() {
		rt.Thread{CPU: -1}.Setup()
		before := rt.Tid()
		for range 100 {
			rt.Yield()
		}
		if rt.Tid() != before {
			done <- -1
			return
		}
		done <- before
	}()
	if tid := <-done; tid < 0 {
		t.Fatal("a locked goroutine came back from Yield on another thread")
	}
}
