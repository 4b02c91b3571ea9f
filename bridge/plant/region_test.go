package plant_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/shm/wire/wiretest"
)

func TestMarkStale(t *testing.T) {
	s := []tag.Sample{
		{Value: 1, Quality: tag.Good},
		{Value: 2, Quality: tag.Uncertain},
		{Value: 3, Quality: tag.Bad, Reason: tag.Timeout},
		{Value: 4, Quality: tag.Stale, Reason: tag.CommFailure},
	}
	plant.MarkStale(s)
	want := []tag.Sample{
		{Value: 1, Quality: tag.Stale, Reason: tag.NotRunning},
		{Value: 2, Quality: tag.Stale, Reason: tag.NotRunning},
		{Value: 3, Quality: tag.Bad, Reason: tag.Timeout},
		{Value: 4, Quality: tag.Stale, Reason: tag.CommFailure},
	}
	for i := range s {
		if s[i] != want[i] {
			t.Errorf("sample %d = %+v, want %+v", i, s[i], want[i])
		}
	}
	// Hot path: the bridge's scan calls it through Snapshot.
	big := make([]tag.Sample, 1000)
	if n := testing.AllocsPerRun(100, func() { plant.MarkStale(big) }); n != 0 {
		t.Errorf("MarkStale allocates %v times", n)
	}
}

// statusOf is the status a Plant.Write error stands for.
func statusOf(err error) wire.Status {
	var rej *wire.RejectedError
	switch {
	case err == nil:
		return wire.Applied
	case errors.As(err, &rej):
		return rej.Result.Status
	}
	return 0
}

// The production Plant (over a real region, with the region's stand-in
// executive answering) and the bridge's in-memory fake refuse and accept
// the shared write-check table (shm/wire/wiretest) alike.
func TestWriteCheckTable(t *testing.T) {
	ctx := context.Background()
	for name, pl := range plants(t) {
		for _, c := range wiretest.WriteCases() {
			cmd := wire.Command{Kind: wire.WriteTag, Tag: c.ID(), Value: c.Value, Origin: wire.NewOrigin("test:table")}
			if got := statusOf(plant.Check(pl.Tags(), &cmd)); got != c.Want {
				t.Errorf("%s: Check %s <- %v: %v, want %v", name, c.Tag, c.Value, got, c.Want)
			}
			_, err := pl.Write(ctx, cmd)
			if got := statusOf(err); got != c.Want {
				t.Errorf("%s: Write %s <- %v: %v (%v), want %v", name, c.Tag, c.Value, got, err, c.Want)
			}
		}
	}
}

// plants is the production Plant over a real region, with the region's
// stand-in executive answering, and the bridge's in-memory fake, both of
// the shared table's tags (shm/wire/wiretest), running until the test ends.
func plants(t *testing.T) map[string]plant.Plant {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	p := shm.Params{Tags: wiretest.Tags(), Tasks: []shm.Task{{Name: "main", Period: time.Millisecond}}, Partition: "test"}
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	ex := &shmtest.Executive{W: w, Tags: shmtest.Table(p)}
	region := plant.NewRegion(r)
	region.SetUp(true, "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			ex.Step()
			time.Sleep(200 * time.Microsecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	tab, err := tag.NewTable(wiretest.Tags())
	if err != nil {
		t.Fatal(err)
	}
	fake := bridgetest.NewPlant(tab, 0)
	fake.Start(ctx, time.Millisecond)
	return map[string]plant.Plant{"region": region, "bridgetest": fake}
}

// The production Plant and the fake apply the shared table of units
// (shm/wire/wiretest) as plant.Batchers: all in one cycle, or none, the
// error naming the first write refused.
func TestUnitTable(t *testing.T) {
	ctx := context.Background()
	for name, pl := range plants(t) {
		b, ok := pl.(plant.Batcher)
		if !ok {
			t.Fatalf("%s is no plant.Batcher", name)
		}
		for _, u := range wiretest.UnitCases() {
			cs := make([]wire.Command, len(u.Writes))
			for i, c := range u.Writes {
				cs[i] = wire.Command{Kind: wire.WriteTag, Tag: c.ID(), Value: c.Value, Origin: wire.NewOrigin("test:unit")}
			}
			before := make([]tag.Sample, len(pl.Tags()))
			if _, err := pl.Snapshot(before, make([]string, len(before))); err != nil {
				t.Fatal(err)
			}
			res, err := b.WriteAll(ctx, cs)
			if got := statusOf(err); got != u.Refused() {
				t.Errorf("%s: %s: %v (%v), want %v", name, u.Name, got, err, u.Refused())
			}
			after := make([]tag.Sample, len(before))
			if _, err := pl.Snapshot(after, make([]string, len(after))); err != nil {
				t.Fatal(err)
			}
			if err != nil {
				for i := range before {
					if before[i].Value != after[i].Value {
						t.Errorf("%s: %s: refused unit changed %s", name, u.Name, pl.Tags()[i].Name)
					}
				}
				continue
			}
			for i := range res {
				if res[i].Status != wire.Applied || res[i].Cycle != res[0].Cycle {
					t.Errorf("%s: %s: write %d %v in cycle %d, first in %d", name, u.Name, i, res[i].Status, res[i].Cycle, res[0].Cycle)
				}
			}
		}
		cs := make([]wire.Command, 300)
		for i := range cs {
			cs[i] = wire.Command{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(1)}
		}
		if _, err := b.WriteAll(ctx, cs); err == nil || statusOf(err) != 0 {
			t.Errorf("%s: a unit of 300 writes: %v, want a clear refusal before the ring", name, err)
		}
	}
}
