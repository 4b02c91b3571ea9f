package parker_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/supervisor"
)

// A Parker secondary outlives the supervisor that started it: a later one
// adopts it (Stop takes it offline and removes its entry); one that went
// offline meanwhile is not adopted, and Reclaim removes its entry.
func TestAdoptRunningSecondary(t *testing.T) {
	r := newRig(t)
	first := r.partition(t)
	if err := first.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	rec, err := first.Record()
	if err != nil {
		t.Fatal(err)
	}
	later := r.partition(t)
	if err := later.Adopt(rec); err != nil {
		t.Fatal(err)
	}
	if in := later.Info(); in.CPUSet != "parker (offlined)" {
		t.Fatalf("adopted info %+v", in)
	}
	r.k.Offline("tank") // the executive's halt takes its kernel offline
	if err := later.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.k.State(), "tank(") {
		t.Fatalf("entry left after the adopting supervisor's stop: %s", r.k.State())
	}
}

func TestReclaimOfflineSecondary(t *testing.T) {
	r := newRig(t)
	first := r.partition(t)
	if err := first.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	rec, err := first.Record()
	if err != nil {
		t.Fatal(err)
	}
	r.k.Offline("tank")
	later := r.partition(t)
	if err := later.Adopt(rec); !errors.Is(err, supervisor.ErrGone) {
		t.Fatalf("adopt of an offline secondary = %v, want ErrGone", err)
	}
	if err := later.Reclaim(ctx(t), rec); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.k.State(), "tank(") {
		t.Fatalf("entry left after reclaim: %s", r.k.State())
	}
}
