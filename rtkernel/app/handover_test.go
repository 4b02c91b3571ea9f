package app

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor/deploy"
)

// tankAt is the tank example polling the simulator at addr. These
// executives run without real-time scheduling on a shared machine: a few
// overruns in a row must not put one in its safe state (which would make
// comparing the two programs' outputs meaningless), so the watchdog allows
// ten.
func tankAt(t *testing.T, addr string) *configs.Config {
	t.Helper()
	cfg, err := configs.Load("../../configs/examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices[0].Address = addr
	cfg.Watchdog.Overruns = 10
	return cfg
}

// tankPair starts the tank simulator (stopped when the test ends) and
// returns the example and its structurally changed version, both polling it.
func tankPair(ctx context.Context, t *testing.T) (old, changed *configs.Config) {
	t.Helper()
	srv, err := sim.Start(ctx, sim.NewTank(), sim.Config{Listen: "127.0.0.1:0", Speed: 60})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return tankAt(t, srv.Addr()), changedTank(t, srv.Addr())
}

// changedTank is the tank example with a changed block structure: the
// level passes a lag filter before the PID, and an extra alarm watches it.
func changedTank(t *testing.T, addr string) *configs.Config {
	t.Helper()
	cfg := tankAt(t, addr)
	cfg.Tags = append(cfg.Tags, configs.Tag{Name: "level_filtered", Unit: "m"}, configs.Tag{Name: "level_very_high", Type: tag.Bool})
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

// kernel stands for the kernel an app runs on: its clock and the clock's
// identity.
type kernel struct {
	clock executive.Clock
	id    shm.ClockID
}

// hostKernel is this process's kernel; otherKernel one whose monotonic
// clock started 37.5 s earlier (another kernel's boot).
var (
	hostKernel  = kernel{rt.Monotonic{}, shm.ClockID{1}}
	otherKernel = kernel{shiftedClock(37_500_123_457), shm.ClockID{2}}
)

// shiftedClock is the monotonic clock moved by off.
type shiftedClock time.Duration

func (c shiftedClock) Now() time.Duration { return rt.Monotonic{}.Now() + time.Duration(c) }
func (c shiftedClock) SleepUntil(t time.Duration) {
	rt.Monotonic{}.SleepUntil(t - time.Duration(c))
}

func startApp(ctx context.Context, t *testing.T, cfg *configs.Config, name string, from shm.Location) *running {
	return startAppOn(ctx, t, hostKernel, cfg, name, from)
}

func startAppOn(ctx context.Context, t *testing.T, k kernel, cfg *configs.Config, name string, from shm.Location) *running {
	return startAppAt(ctx, t, k, cfg, name, shm.Location{}, from)
}

// startAppAt runs cfg on kernel k with its region at loc (zero: a file
// named name) and waits until the region is formatted.
func startAppAt(ctx context.Context, t *testing.T, k kernel, cfg *configs.Config, name string, loc, from shm.Location) *running {
	t.Helper()
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	layout, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Path == "" {
		loc = shm.File(filepath.Join(t.TempDir(), name), layout.Size(), true)
	}
	p := &running{cfg: cfg, tab: tab, layout: layout, loc: loc, done: make(chan error, 1)}
	go func() {
		p.done <- Run(ctx, Options{Config: cfg, Shm: p.loc, TakeFrom: from, ClockID: k.id,
			Executive: executive.Options{NoRealtime: true, KeepGC: true, Clock: k.clock}})
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
	sw := handOverTank(t, hostKernel)
	// One clock: both sides name the same cycle exactly.
	if sw.nc.Switch != sw.oc.Switch || sw.nc.Switch < sw.at {
		t.Fatalf("switch: new %+v, old %+v (chosen %d)", sw.nc, sw.oc, sw.at)
	}
}

// TestHandOverAcrossKernels hands the tank loop over to a program on
// another kernel's clock (offset by 37.5 s, another boot ID), as a VM guest
// or a second kernel takes over: the new side relates the clocks from the
// running side's heartbeats, and the switch is still exact in cycles.
func TestHandOverAcrossKernels(t *testing.T) {
	sw := handOverTank(t, otherKernel)
	// The new side runs a small lead ahead of the grid, within a period.
	if d := sw.nc.Switch - sw.oc.Switch; d > sw.period/2 || d < -sw.period/2 {
		t.Fatalf("the two sides' switch times differ by %v: new %+v, old %+v", time.Duration(d), sw.nc, sw.oc)
	}
	if sw.oc.Switch < sw.at {
		t.Fatalf("switched at %d before the chosen %d", sw.oc.Switch, sw.at)
	}
}

// overruns counts the first task's overruns between two heartbeats.
func overruns(now, before shm.Heartbeat) uint64 {
	if len(now.Overruns) == 0 || len(before.Overruns) == 0 {
		return 0
	}
	return now.Overruns[0] - before.Overruns[0]
}

type tankSwitch struct {
	at, period int64
	nc, oc     wire.HandOverCounters
}

// handOverTank runs the tank loop on this kernel, starts the changed
// program on standby on kernel k and hands over as the supervisor does,
// choosing the time on the running side's clock from its heartbeat.
func handOverTank(t *testing.T, k kernel) tankSwitch {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	oldCfg, newCfg := tankPair(ctx, t)
	old := startApp(ctx, t, oldCfg, "old", shm.Location{})
	waitFor(ctx, t, "old partition running", func() bool {
		return old.r.Heartbeat().State == wire.Running && old.r.Heartbeat().Cycle > 50
	})
	nw := startAppOn(ctx, t, k, newCfg, "new", old.loc)
	waitFor(ctx, t, "new partition on standby", func() bool {
		return nw.r.Heartbeat().Cycle > 5 && nw.r.HandOver().Counters().Mode == wire.Standby
	})
	origin, period, ok := old.r.HandOver().Grid()
	if !ok {
		t.Fatal("old partition published no cycle grid")
	}
	// On one clock the new grid runs exactly the lead ahead of the old one.
	no, np, _ := nw.r.HandOver().Grid()
	if lead := int64(Lead(time.Duration(period))); k == hostKernel && (np != period || ((origin-no)%period+period)%period != lead) {
		t.Fatalf("new grid %d/%d is not %v ahead of the old one %d/%d", no, np, time.Duration(lead), origin, period)
	}
	hbOld, hbNew := old.r.Heartbeat(), nw.r.Heartbeat()
	now := hbOld.MonoNs
	at := origin + ((now+int64(10*period)-origin)/period+1)*period
	for _, c := range []struct {
		r    *shm.Reader
		kind wire.CommandKind
	}{{nw.r, wire.Take}, {old.r, wire.Release}} {
		res, err := c.r.Do(ctx, wire.Command{Kind: c.kind, Tag: -1, Value: wire.Number(float64(at)), Origin: wire.NewOrigin("test")})
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			t.Fatalf("%v: %v", c.kind, err)
		}
	}
	waitFor(ctx, t, "switch", func() bool {
		return nw.r.HandOver().Counters().Mode == wire.Driving && old.r.HandOver().Counters().Mode == wire.Released
	})
	nc, oc := nw.r.HandOver().Counters(), old.r.HandOver().Counters()
	t.Logf("switch at %+d periods from the chosen time; new: %+v; old: %+v", (oc.Switch-at)/period, nc, oc)
	// A cycle an executive skipped because the one before overran (the
	// machine stalled it) is missed with or without a hand-over; every
	// missed cycle must be one of those.
	overran := overruns(old.r.Heartbeat(), hbOld) + overruns(nw.r.Heartbeat(), hbNew)
	if nc.Missed+oc.Missed > overran {
		t.Fatalf("missed cycles: new %+v, old %+v, with %d overruns meanwhile", nc, oc, overran)
	}
	if overran > 0 {
		t.Logf("%d overruns during the hand-over (old %d, new %d; this machine is loaded); %d missed cycles", overran, overruns(old.r.Heartbeat(), hbOld), overruns(nw.r.Heartbeat(), hbNew), nc.Missed+oc.Missed)
	}
	if tr := nc.Blocks.Carried; tr != 3 {
		t.Fatalf("%d blocks carried over, want 3 (pid, interlock, alarms)", tr)
	}
	// The released old program keeps computing what it would drive: the
	// new one's valve must match it (lag tau 0 passes the level through).
	var worst float64
	for range 20 {
		if old.r.Heartbeat().State != wire.Running || nw.r.Heartbeat().State != wire.Running {
			t.Fatalf("an executive left running: old %v, new %v", old.r.Heartbeat().State, nw.r.Heartbeat().State)
		}
		ov, _ := old.value(ctx, t, "inflow_valve")
		nv, _ := nw.value(ctx, t, "inflow_valve")
		if math.Abs(ov-nv) > 0.5 {
			t.Logf("valve old %.3f new %.3f", ov, nv)
		}
		worst = math.Max(worst, math.Abs(ov-nv))
		time.Sleep(time.Duration(period))
	}
	fmt.Printf("hand-over of the tank loop (%s clock): missed cycles %d, retries %d, largest valve difference from the run without hand-over %.4f %%\n",
		map[bool]string{true: "shared", false: "another kernel's"}[k == hostKernel], nc.Missed, nc.Retries, worst)
	if worst > 0.5 {
		t.Fatalf("valve differs by %.3f %% from the run without hand-over", worst)
	}
	cancel()
	for _, p := range []*running{old, nw} {
		if err := <-p.done; err != nil {
			t.Fatal(err)
		}
	}
	return tankSwitch{at: at, period: period, nc: nc, oc: oc}
}

// TestHandOverBetweenKernelsOverPhysicalMemory runs the hand-over as it
// goes between two multikernel instances or Parker kernels: each control
// program's region is a range of physical memory mapped through /dev/mem
// (a sparse file stands in for it, at the addresses the instances' plans
// reserve), the new program runs on another kernel's clock, and the
// supervisor's SwitchOver picks the switch time from the running
// program's heartbeat, as it must for a kernel whose clock it cannot read.
func TestHandOverBetweenKernelsOverPhysicalMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	oldCfg, newCfg := tankPair(ctx, t)
	devmem := filepath.Join(t.TempDir(), "mem")
	if f, err := os.Create(devmem); err != nil {
		t.Fatal(err)
	} else {
		err = f.Truncate(0xa0000000)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	phys := func(addr uint64) shm.Location {
		l := shm.Phys(addr, 4<<20)
		l.Path = devmem
		return l
	}
	old := startAppAt(ctx, t, hostKernel, oldCfg, "old", phys(0x8fc00000), shm.Location{})
	waitFor(ctx, t, "old instance running", func() bool {
		return old.r.Heartbeat().State == wire.Running && old.r.Heartbeat().Cycle > 50
	})
	nw := startAppAt(ctx, t, otherKernel, newCfg, "new", phys(0x9fc00000), old.loc)
	waitFor(ctx, t, "new instance on standby", func() bool {
		return nw.r.Heartbeat().Cycle > 5 && nw.r.HandOver().Counters().Mode == wire.Standby
	})
	hbOld, hbNew := old.r.Heartbeat(), nw.r.Heartbeat()
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	sw, err := deploy.SwitchOver(sctx, old.r, nw.r, deploy.SwitchOptions{Mono: func() int64 { return old.r.Heartbeat().MonoNs }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switched: %+v", sw)
	fmt.Printf("hand-over between kernels over physical memory: missed cycles %d, retries %d, %d blocks carried, %v from request to switch\n",
		sw.Missed, sw.Retries, sw.Blocks.Carried, sw.Took.Round(time.Millisecond))
	overran := overruns(old.r.Heartbeat(), hbOld) + overruns(nw.r.Heartbeat(), hbNew)
	if sw.Missed > overran || sw.Blocks.Carried != 3 || sw.Blocks.Fresh != 2 {
		t.Fatalf("switch %+v (%d overruns meanwhile): want no missed cycle but for overruns, 3 blocks carried, 2 fresh", sw, overran)
	}
	cancel()
	for _, p := range []*running{old, nw} {
		if err := <-p.done; err != nil {
			t.Fatal(err)
		}
	}
}
