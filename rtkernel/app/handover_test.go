package app

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/shm"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/rtkernel/tag"
)

// changedTank is the tank example with a changed block structure: the
// level passes a lag filter before the PID, and an extra alarm watches it.
func changedTank(t *testing.T, addr string) *configs.Config {
	t.Helper()
	cfg, err := configs.Load("../../configs/examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices[0].Address = addr
	cfg.Tags = append(cfg.Tags, configs.Tag{Name: "level_filtered", Unit: "m"}, configs.Tag{Name: "level_very_high", Type: configs.Bool})
	blocks := &cfg.Tasks[0].Blocks
	for i := range *blocks {
		if (*blocks)[i].Name == "level_pid" {
			(*blocks)[i].Inputs["pv"] = configs.Ref{Raw: "level_filter.out"}
		}
	}
	*blocks = append(*blocks,
		configs.Block{Name: "level_filter", Type: "lag", Inputs: map[string]configs.Ref{"in": {Raw: "level"}},
			Outputs: map[string]string{"out": "level_filtered"}, Params: map[string]configs.Value{"tau": {Raw: "0s", Set: true}}},
		configs.Block{Name: "level_very_high", Type: "alarm", Inputs: map[string]configs.Ref{"in": {Raw: "level"}},
			Outputs: map[string]string{"hi": "level_very_high"}, Params: map[string]configs.Value{"hi": {Raw: "2.9", Set: true}}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type running struct {
	cfg    *configs.Config
	tab    *tag.Table
	layout *shm.Layout
	loc    shm.Location
	region *shm.Region
	r      *shm.Reader
	done   chan error
}

func startApp(ctx context.Context, t *testing.T, cfg *configs.Config, name string, from shm.Location) *running {
	t.Helper()
	tab, err := tag.NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		t.Fatal(err)
	}
	p := &running{cfg: cfg, tab: tab, layout: layout, loc: shm.File(filepath.Join(t.TempDir(), name), layout.Size(), true), done: make(chan error, 1)}
	go func() {
		p.done <- Run(ctx, Options{Config: cfg, Shm: p.loc, TakeFrom: from,
			Executive: executive.Options{NoRealtime: true, KeepGC: true}})
	}()
	if p.region, err = openWhenFormatted(ctx, p.loc, layout); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.region.Close() })
	if p.r, err = shm.AttachReader(p.region, layout, shm.ReaderOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *running) value(ctx context.Context, t *testing.T, name string) (float64, uint64) {
	t.Helper()
	var img shm.Image
	if err := p.r.Snapshot(ctx, &img); err != nil {
		t.Fatal(err)
	}
	id, ok := p.tab.Lookup(name)
	if !ok {
		t.Fatalf("no tag %s", name)
	}
	return img.Samples[id].Value, img.Cycle
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestHandOverRunningTank hands the running tank loop (real Modbus TCP to
// the simulator, regions in files) over to a program with a changed block
// structure: the switch happens at the chosen cycle, no cycle is missed,
// the PID's state carries over, so the valve follows the path it would
// have taken without the hand-over.
func TestHandOverRunningTank(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := sim.Start(ctx, sim.NewTank(), sim.Config{Listen: "127.0.0.1:0", Speed: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	oldCfg, err := configs.Load("../../configs/examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	oldCfg.Devices[0].Address = srv.Addr()
	old := startApp(ctx, t, oldCfg, "old", shm.Location{})
	waitFor(ctx, t, "old partition running", func() bool {
		return old.r.Heartbeat().State == shm.StateRunning && old.r.Heartbeat().Cycle > 50
	})
	nw := startApp(ctx, t, changedTank(t, srv.Addr()), "new", old.loc)
	waitFor(ctx, t, "new partition on standby", func() bool {
		return nw.r.Heartbeat().Cycle > 5 && nw.r.HandOver().Counters().Mode == shm.ModeStandby
	})
	origin, period, ok := old.r.HandOver().Grid()
	if !ok {
		t.Fatal("old partition published no cycle grid")
	}
	if no, np, _ := nw.r.HandOver().Grid(); np != period || (no-origin)%period != 0 {
		t.Fatalf("new grid %d/%d is not on the old one %d/%d", no, np, origin, period)
	}
	now := int64(rt.Monotonic{}.Now())
	at := origin + ((now+int64(10*period)-origin)/period+1)*period
	for _, c := range []struct {
		r    *shm.Reader
		verb string
	}{{nw.r, HandOverTake}, {old.r, HandOverRelease}} {
		res, err := c.r.Do(ctx, shm.Command{Kind: shm.CmdHandOver, Tag: -1, Value: float64(at), Text: []byte(c.verb), Origin: shm.NewOrigin("test")})
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			t.Fatalf("%s: %v", c.verb, err)
		}
	}
	waitFor(ctx, t, "switch", func() bool {
		return nw.r.HandOver().Counters().Mode == shm.ModeDriving && old.r.HandOver().Counters().Mode == shm.ModeReleased
	})
	nc, oc := nw.r.HandOver().Counters(), old.r.HandOver().Counters()
	t.Logf("switch at %+d periods from the chosen time; new: %+v; old: %+v", (nc.Switch-at)/period, nc, oc)
	if nc.Missed != 0 || nc.Switch != oc.Switch || nc.Switch < at {
		t.Fatalf("switch: new %+v, old %+v (chosen %d)", nc, oc, at)
	}
	if tr := nc.Blocks >> 32; tr != 3 {
		t.Fatalf("%d blocks carried over, want 3 (pid, interlock, alarms)", tr)
	}
	// The released old program keeps computing what it would drive: the
	// new one's valve must match it (lag tau 0 passes the level through).
	var worst float64
	for range 20 {
		ov, _ := old.value(ctx, t, "inflow_valve")
		nv, _ := nw.value(ctx, t, "inflow_valve")
		worst = math.Max(worst, math.Abs(ov-nv))
		time.Sleep(time.Duration(period))
	}
	fmt.Printf("hand-over of the tank loop: missed cycles %d, retries %d, largest valve difference from the run without hand-over %.4f %%\n", nc.Missed, nc.Retries, worst)
	if worst > 0.5 {
		t.Fatalf("valve differs by %.3f %% from the run without hand-over", worst)
	}
	cancel()
	for _, p := range []*running{old, nw} {
		if err := <-p.done; err != nil {
			t.Fatal(err)
		}
	}
}
