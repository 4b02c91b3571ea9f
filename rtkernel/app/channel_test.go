package app

import (
	"context"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/shm/wire/wiretest"
)

// The executive's channel hands a unit to apply whole, even past the
// cycle's command budget, answers every command of it, and allocates
// nothing doing so.
func TestChannelDrainsUnits(t *testing.T) {
	p := shm.Params{Tags: wiretest.Tags(), Tasks: []shm.Task{{Name: "main", Period: time.Millisecond}}, Partition: "test"}
	w, r := shmtest.Pair(t, shmtest.Layout(t, p))
	ch := NewChannel(w)
	unit := []wire.Command{
		{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(1)},
		{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(2)},
		{Kind: wire.WriteTag, Tag: 5, Value: wire.Text("x")},
	}
	ids, err := r.SubmitAll(unit)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	apply := func(u []wire.Command, res []wire.Result) {
		got = append(got, len(u))
		for i := range u {
			res[i] = wire.Result{ID: u[i].ID, Status: wire.Applied, Cycle: 9}
		}
	}
	if n := ch.DrainCommands(1, apply); n != 3 || len(got) != 1 || got[0] != 3 {
		t.Fatalf("drained %d commands in units %v, want one unit of 3", n, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, id := range ids {
		if res, err := r.Await(ctx, id); err != nil || res.Status != wire.Applied || res.Cycle != 9 {
			t.Fatalf("command %d: %+v %v", id, res, err)
		}
	}
	for range 80 {
		if _, err := r.SubmitAll(unit); err != nil {
			t.Fatal(err)
		}
	}
	noop := func(u []wire.Command, res []wire.Result) {
		for i := range u {
			res[i] = wire.Result{ID: u[i].ID, Status: wire.Withdrawn}
		}
	}
	if n := testing.AllocsPerRun(50, func() { ch.DrainCommands(1, noop) }); n != 0 {
		t.Fatalf("DrainCommands: %v allocations per unit", n)
	}
}
