package bridge

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

func servedPlant(t *testing.T) (*served, *bridgetest.Plant) {
	t.Helper()
	cfg := &configs.Config{Tags: []configs.Tag{{Name: "setpoint", Writable: true, Initial: configs.Value{Raw: "1", Set: true}}}}
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	return newServed(p), p
}

// TestServedScanAllocatesNothing: the gate in front of every server's scan
// adds no allocation.
func TestServedScanAllocatesNothing(t *testing.T) {
	s, _ := servedPlant(t)
	dst, text := make([]tag.Sample, 1), make([]string, 1)
	if n := testing.AllocsPerRun(100, func() { s.Snapshot(dst, text) }); n != 0 {
		t.Fatalf("Snapshot through the gate allocates %v times", n)
	}
}

// TestServedCloseWaitsForWrites: closing the old plant waits for a write
// still waiting for its executive, and refuses what comes after.
func TestServedCloseWaitsForWrites(t *testing.T) {
	s, p := servedPlant(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wrote := make(chan error, 1)
	go func() {
		_, err := s.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(2)})
		wrote <- err
	}()
	for p.Queued() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the write never reached the command ring")
		}
		time.Sleep(time.Millisecond)
	}
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if err := s.close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with a write in progress: %v; want it to wait", err)
	}
	p.Step() // the executive answers
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := s.close(ctx); err != nil {
		t.Fatalf("close once the write is answered: %v", err)
	}
	if _, err := s.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(3)}); !errors.Is(err, wire.ErrNotRunning) {
		t.Fatalf("write to a switched plant: %v; want wire.ErrNotRunning", err)
	}
	if _, err := s.Snapshot(make([]tag.Sample, 1), make([]string, 1)); !errors.Is(err, wire.ErrNotRunning) {
		t.Fatalf("scan of a switched plant: %v; want wire.ErrNotRunning", err)
	}
}
