package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
)

// beatingRegion is a region whose writer beats every period on a clock
// shift behind this one, until the test ends; it returns the hand-over
// area as the taking executive sees it.
func beatingRegion(t *testing.T, shift time.Duration, period time.Duration, id shm.ClockID) *shm.HandOver {
	t.Helper()
	l := shmtest.Layout(t, shmtest.Params(4, 1, 1))
	path := shmtest.File(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := shm.AttachWriter(ctx, shmtest.Map(t, path), l, shm.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.HandOver().SetClockID(id)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for c := uint64(1); ctx.Err() == nil; c++ {
			w.Beat(c, int64(rt.Monotonic{}.Now()-shift))
			time.Sleep(period)
		}
	}()
	h, err := shm.OpenHandOver(shmtest.Map(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func now() int64 { return int64(rt.Monotonic{}.Now()) }

func TestLinkClocksShared(t *testing.T) {
	id := shm.ClockID{9}
	h := beatingRegion(t, 0, 5*time.Millisecond, id)
	l, err := linkClocks(context.Background(), h, id, now, 20*time.Millisecond)
	if err != nil || l.estimated || l.off != int64(Lead(20*time.Millisecond)) {
		t.Fatalf("shared clock: %+v, %v; want the lead %v and no estimate", l, err, Lead(20*time.Millisecond))
	}
}

// Another kernel's clock, 42 s behind: the estimate finds the offset to
// within the time a beat takes to be seen, and adds the lead.
func TestLinkClocksEstimated(t *testing.T) {
	const shift = 42 * time.Second
	period := 2 * time.Millisecond
	h := beatingRegion(t, shift, period, shm.ClockID{1})
	l, err := linkClocks(context.Background(), h, shm.ClockID{2}, now, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(Lead(20*time.Millisecond) - shift)
	t.Logf("link: %v; error %v", l, time.Duration(l.off-want))
	if !l.estimated || l.beats != estimateBeats || l.off > want || l.off < want-int64(2*time.Millisecond) {
		t.Fatalf("link %+v: offset %v, want %v less at most 2ms of delay", l, time.Duration(l.off), time.Duration(want))
	}
	// A time through the link and back is unchanged.
	if x := int64(123_456_789_000); l.ours(l.theirs(x)) != x {
		t.Fatal("ours(theirs(x)) != x")
	}
}

func TestLinkClocksNoHeartbeat(t *testing.T) {
	l := shmtest.Layout(t, shmtest.Params(4, 1, 1))
	path := shmtest.File(t, l)
	if _, err := shm.AttachWriter(context.Background(), shmtest.Map(t, path), l, shm.WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := shm.OpenHandOver(shmtest.Map(t, path))
	if err != nil {
		t.Fatal(err)
	}
	_, err = linkClocks(context.Background(), h, shm.ClockID{2}, now, 20*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "is it running") {
		t.Fatalf("no heartbeat: %v; want an error that says the running partition does not beat", err)
	}
}
