package shm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/shm/wire/wiretest"
)

// unitExecutive stands in for the executive's command drain: it takes
// units with PollUnit and applies them with wire.ApplyUnit against tab.
func unitExecutive(w *shm.Writer, tab *tag.Table) func() int {
	res := make([]wire.Result, w.Layout().CommandCapacity())
	check := func(c *wire.Command) wire.Result {
		return wire.Result{ID: c.ID, Status: wire.CheckTagWrite(tab.Info, c.Tag, c.Value)}
	}
	apply := func(c *wire.Command) wire.Result {
		r := check(c)
		if r.Status == wire.Applied {
			if c.Value.IsText {
				tab.Text[c.Tag] = string(c.Value.Text)
			} else {
				tab.Samples[c.Tag].Value = c.Value.Num
			}
		}
		return r
	}
	return func() int {
		unit := w.PollUnit()
		wire.ApplyUnit(unit, res[:len(unit)], check, apply)
		for _, r := range res[:len(unit)] {
			w.Reply(r)
		}
		return len(unit)
	}
}

// Units submitted with SubmitAll reach the executive whole, in one poll,
// and are applied all or none as the shared table (shm/wire/wiretest)
// says.
func TestUnitTable(t *testing.T) {
	p := shm.Params{Tags: wiretest.Tags(), Tasks: []shm.Task{{Name: "main", Period: time.Millisecond}}, Partition: "test"}
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	tab := shmtest.Table(p)
	step := unitExecutive(w, tab)
	for _, u := range wiretest.UnitCases() {
		cs := make([]wire.Command, len(u.Writes))
		for i, c := range u.Writes {
			cs[i] = wire.Command{Kind: wire.WriteTag, Tag: c.ID(), Value: c.Value, Origin: wire.NewOrigin("test:unit")}
		}
		before := append([]tag.Sample(nil), tab.Samples...)
		ids, err := r.SubmitAll(cs)
		if err != nil {
			t.Fatal(err)
		}
		if n := step(); n != len(cs) {
			t.Fatalf("%s: one poll took %d of the unit's %d commands", u.Name, n, len(cs))
		}
		for i, id := range ids {
			res, err := r.Await(ctxT(t), id)
			if err != nil {
				t.Fatal(err)
			}
			if want := u.Writes[i].Want; res.Status != want {
				t.Errorf("%s: write %d (%s <- %v): %v, want %v", u.Name, i, u.Writes[i].Tag, u.Writes[i].Value, res.Status, want)
			}
		}
		if u.Refused() != wire.Applied {
			for i := range before {
				if tab.Samples[i].Value != before[i].Value {
					t.Errorf("%s: refused unit changed %s", u.Name, tab.Info[i].Name)
				}
			}
		}
	}
}

// A unit larger than the ring is refused with ErrInvalid before anything
// is queued; one the ring has no room for now is ErrBusy; a unit of other
// commands than tag writes is ErrInvalid.
func TestUnitBounds(t *testing.T) {
	p := shm.Params{Tags: wiretest.Tags(), Tasks: []shm.Task{{Name: "main", Period: time.Millisecond}}, Partition: "test", Commands: 4}
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	write := wire.Command{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(1)}
	if r.UnitMax() != 4 {
		t.Fatalf("UnitMax %d, want the ring's 4", r.UnitMax())
	}
	if _, err := r.SubmitAll([]wire.Command{write, write, write, write, write}); !errors.Is(err, shm.ErrInvalid) {
		t.Fatalf("unit of 5 on a ring of 4: %v", err)
	}
	if _, err := r.SubmitAll([]wire.Command{write, {Kind: wire.Halt}}); !errors.Is(err, shm.ErrInvalid) {
		t.Fatalf("halt in a unit: %v", err)
	}
	if _, err := r.SubmitAll([]wire.Command{write, write}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SubmitAll([]wire.Command{write, write, write}); !errors.Is(err, wire.ErrBusy) {
		t.Fatalf("unit of 3 with 2 slots free: %v", err)
	}
	if unit := w.PollUnit(); len(unit) != 2 {
		t.Fatalf("took %d commands, want the unit of 2", len(unit))
	}
	if unit := w.PollUnit(); unit != nil {
		t.Fatal("took a unit before the last one was answered")
	}
}

// Taking and answering units allocates nothing (the executive's hot path).
func TestPollUnitAllocatesNothing(t *testing.T) {
	p := shm.Params{Tags: wiretest.Tags(), Tasks: []shm.Task{{Name: "main", Period: time.Millisecond}}, Partition: "test"}
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	unit := []wire.Command{{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(1)}, {Kind: wire.WriteTag, Tag: 5, Value: wire.Text("abc")}}
	for range 120 {
		if _, err := r.SubmitAll(unit); err != nil {
			t.Fatal(err)
		}
	}
	n := testing.AllocsPerRun(100, func() {
		for _, c := range w.PollUnit() {
			w.Reply(wire.Result{ID: c.ID, Status: wire.Applied})
		}
	})
	if n != 0 {
		t.Fatalf("PollUnit and Reply: %v allocations per unit", n)
	}
}

// A unit cut short (its last published slot says more follow) is taken
// as far as it goes and counted corrupt; the executive neither waits for
// the rest nor joins the next unit to it.
func TestUnitCutShort(t *testing.T) {
	p := shm.Params{Tags: wiretest.Tags(), Tasks: []shm.Task{{Name: "main", Period: time.Millisecond}}, Partition: "test"}
	w, r := shmtest.Pair(t, shmtest.Layout(t, p))
	write := wire.Command{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(1)}
	shm.SubmitCut(r, write)
	if unit := w.PollUnit(); len(unit) != 1 {
		t.Fatalf("took %d commands of a unit cut after 1", len(unit))
	}
	w.Reply(wire.Result{Status: wire.Withdrawn})
	if c := r.Heartbeat().Corrupt; c != 1 {
		t.Fatalf("corrupt count %d, want 1", c)
	}
	if _, err := r.SubmitAll([]wire.Command{write, write}); err != nil {
		t.Fatal(err)
	}
	if unit := w.PollUnit(); len(unit) != 2 {
		t.Fatalf("the next unit came as %d commands, want its own 2", len(unit))
	}
}
