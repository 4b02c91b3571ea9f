package shm_test

import (
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/shm/wire/wiretest"
)

// Commands carried through the region's rings reach the stand-in
// executive intact (values, text, tag IDs) and come back with the status
// of the shared write-check table (shm/wire/wiretest).
func TestWriteCheckTable(t *testing.T) {
	p := shm.Params{Tags: wiretest.Tags(), Tasks: []shm.Task{{Name: "main", Period: time.Millisecond}}, Partition: "test"}
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	ex := &shmtest.Executive{W: w, Tags: shmtest.Table(p)}
	for _, c := range wiretest.WriteCases() {
		id, err := r.Submit(wire.Command{Kind: wire.WriteTag, Tag: c.ID(), Value: c.Value, Origin: wire.NewOrigin("test:table")})
		if err != nil {
			t.Fatal(err)
		}
		ex.Step()
		res, err := r.Await(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != c.Want {
			t.Errorf("%s <- %v: %v, want %v", c.Tag, c.Value, res.Status, c.Want)
		}
	}
}
