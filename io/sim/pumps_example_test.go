package sim_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/rtkernel/app"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// example runs a config of configs/examples against a simulator served on
// loopback, in a region in a file, until the test ends.
type example struct {
	t   *testing.T
	ctx context.Context
	tab *tag.Table
	r   *shm.Reader
	img shm.Image
}

// startExample loads the example file, points its one device at srv, lets
// edit change the loaded config, and runs it until it publishes good values.
func startExample(t *testing.T, ctx context.Context, file string, srv *sim.Server, edit func(*configs.Config)) *example {
	t.Helper()
	cfg, err := configs.Load(filepath.Join("../../configs/examples", file), blocks.Validate)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices[0].Address = srv.Addr()
	if edit != nil {
		edit(cfg)
	}
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	layout, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "region")
	loc := shm.File(path, layout.Size(), true)
	seed, err := shm.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	if err := shm.Seed(ctx, seed, layout, tab.Samples, tab.Text); err != nil {
		t.Fatal(err)
	}
	seed.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx, app.Options{Config: cfg, Shm: loc}) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && runCtx.Err() == nil {
			t.Errorf("run: %v", err)
		}
	})
	region, err := openFormatted(ctx, loc, layout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { region.Close() })
	r, err := shm.AttachReader(region, layout, shm.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := &example{t: t, ctx: ctx, tab: tab, r: r}
	for e.snap(); r.Heartbeat().State != wire.Running || e.sample(cfg.Devices[0].Tags[0].Name).Quality != tag.Good; e.snap() {
		select {
		case <-ctx.Done():
			t.Fatalf("the example never ran with good values: state %v", r.Heartbeat().State)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return e
}

func openFormatted(ctx context.Context, loc shm.Location, l *shm.Layout) (*shm.Region, error) {
	for {
		if _, err := os.Stat(loc.Path); err == nil {
			reg, err := shm.Open(shm.File(loc.Path, l.Size(), false))
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

func (e *example) snap() {
	if err := e.r.Snapshot(e.ctx, &e.img); err != nil {
		e.t.Fatal(err)
	}
}

func (e *example) sample(name string) tag.Sample {
	id, ok := e.tab.Lookup(name)
	if !ok {
		e.t.Fatalf("no tag %s", name)
	}
	return e.img.Samples[id]
}

func (e *example) value(name string) float64 { return e.sample(name).Value }

// TestPumpStationExample runs configs/examples/pump-station.yaml against
// the pump simulator at 30x: the level stays between the lag pump's start
// level and empty, both pumps run, and their run hours stay within the
// balance band of each other.
func TestPumpStationExample(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (runs the pump station for 40 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := sim.Start(ctx, sim.NewPumps(2), sim.Config{Listen: "127.0.0.1:0", Speed: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// 2 s of running (the band, in hours) swaps lead and lag: many swaps in the test.
	const band = 2.0 / 3600
	e := startExample(t, ctx, "pump-station.yaml", srv, func(c *configs.Config) {
		for i := range c.Tags {
			if c.Tags[i].Name == "balance_band" {
				c.Tags[i].Initial = configs.Value{Raw: "0.000555556", Set: true}
			}
		}
	})
	lo, hi := math.Inf(1), math.Inf(-1)
	swaps, lead := 0, e.value("lead_is_p2")
	end := time.Now().Add(40 * time.Second)
	for time.Now().Before(end) {
		e.snap()
		level := e.value("level")
		lo, hi = min(lo, level), max(hi, level)
		if l := e.value("lead_is_p2"); l != lead {
			swaps, lead = swaps+1, l
		}
		if e.value("p1_fault") != 0 || e.value("p2_fault") != 0 {
			t.Fatalf("a pump reports a start failure: p1 %v, p2 %v", e.sample("p1_fault"), e.sample("p2_fault"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	h1, h2 := e.value("p1_hours"), e.value("p2_hours")
	t.Logf("level %.2f-%.2f m, run hours p1 %.5f p2 %.5f (difference %.1f s), %d lead swaps", lo, hi, h1, h2, (h1-h2)*3600, swaps)
	if lo < 0.5 || hi > 2.5 {
		t.Errorf("level left 0.5-2.5 m: %.2f-%.2f", lo, hi)
	}
	if h1 <= band || h2 <= band {
		t.Errorf("a pump hardly ran: %.5f h and %.5f h", h1, h2)
	}
	// within the band, plus what one poll and one cycle may add
	if d := math.Abs(h1 - h2); d > band+0.5/3600 {
		t.Errorf("run hours differ by %.1f s, more than the band of %.1f s", d*3600, band*3600)
	}
	if swaps < 2 {
		t.Errorf("lead and lag swapped %d times, want several", swaps)
	}
}
