package app

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// TestControlLoopOverSharedMemory runs the tank example against the tank
// simulator served over Modbus TCP on loopback, with the region in a file:
// the general side sees the level, writes the setpoint through the command
// ring, gets the cycle it was applied at, and halts the program.
func TestControlLoopOverSharedMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := sim.Start(ctx, sim.NewTank(), sim.Config{Listen: "127.0.0.1:0", Speed: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	cfg, err := configs.Load("../../configs/examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices[0].Address = srv.Addr()
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	// The host side seeds the region with the retained setpoint.
	sp, _ := tab.Lookup("level_sp")
	tab.Samples[sp].Value = 1.5
	loc, layout := seededRegion(t, ctx, cfg, tab)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Shm: loc})
	}()

	region, err := openWhenFormatted(ctx, loc, layout)
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close()
	r, err := shm.AttachReader(region, layout, shm.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	level, _ := tab.Lookup("level")
	var img shm.Image
	var hb shm.Heartbeat
	deadline := time.Now().Add(20 * time.Second)
	for {
		hb = r.Heartbeat()
		if err := r.Snapshot(ctx, &img); err != nil {
			t.Fatal(err)
		}
		if hb.State == wire.Running && img.Samples[level].Quality == tag.Good {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no good level within 20s: state %v, level %+v", hb.State, img.Samples[level])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := img.Samples[sp].Value; got != 1.5 {
		t.Errorf("level_sp = %v, want the retained 1.5", got)
	}
	res, err := r.Do(ctx, wire.Command{Kind: wire.WriteTag, Tag: sp, Value: wire.Number(2.0), Origin: wire.NewOrigin("test")})
	if err != nil {
		t.Fatalf("write setpoint: %v", err)
	}
	if res.Status != wire.Applied || res.Cycle == 0 || res.Old != 1.5 {
		t.Errorf("result %+v, want accepted at a cycle with old value 1.5", res)
	}
	res, err = r.Do(ctx, wire.Command{Kind: wire.WriteTag, Tag: sp, Value: wire.Number(99), Origin: wire.NewOrigin("test")})
	if !errors.Is(err, wire.ErrOutOfRange) && res.Status != wire.OutOfRange {
		t.Errorf("out-of-range write: %+v, %v", res, err)
	}
	if _, err := r.Submit(wire.Command{Kind: wire.Halt, Origin: wire.NewOrigin("test")}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after halt: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after a halt command")
	}
	if st := r.Heartbeat().State; st != wire.Safe && st != wire.Stopping {
		t.Errorf("state after halt %v, want safe or stopping", st)
	}

	// A restart on the same region (as after a crash, or in a guest that
	// has no retained-values file) starts from the setpoint it left there.
	claims := r.Heartbeat().Claims
	go func() { done <- Run(ctx, Options{Config: cfg, Shm: loc}) }()
	for {
		// The new executive has attached and published a few cycles of its own.
		if hb := r.Heartbeat(); hb.Claims > claims && hb.State == wire.Running && hb.Cycle >= 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("restarted program never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Snapshot(ctx, &img); err != nil {
		t.Fatal(err)
	}
	if got := img.Samples[sp].Value; got != 2.0 {
		t.Errorf("after a restart level_sp = %v, want 2.0 taken from the region", got)
	}
	if _, err := r.Submit(wire.Command{Kind: wire.Halt, Origin: wire.NewOrigin("test")}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("second Run: %v", err)
	}
}

func openWhenFormatted(ctx context.Context, loc shm.Location, l *shm.Layout) (*shm.Region, error) {
	for {
		if _, err := os.Stat(loc.Path); err == nil {
			at := loc
			if at.Kind != shm.KindPhys {
				at = shm.File(loc.Path, l.Size(), false)
			}
			reg, err := shm.Open(at)
			if err == nil {
				if _, err := shm.AttachReader(reg, l, shm.ReaderOptions{}); err == nil {
					return reg, nil
				}
				reg.Close()
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
