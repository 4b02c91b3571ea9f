package executive_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/executive/executivetest"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// loopConfig is a level loop: a PID from the level input to the valve
// output. changed adds a lag before the PID's pv and a level alarm, a
// structural change.
func loopConfig(changed bool) *configs.Config {
	ref := func(s string) configs.Ref { return configs.Ref{Raw: s} }
	val := func(s string) configs.Value { return configs.Value{Raw: s, Set: true} }
	pid := configs.Block{Name: "pid", Type: "pid", Inputs: map[string]configs.Ref{"pv": ref("level"), "sp": ref("sp")},
		Outputs: map[string]string{"out": "valve"}, Params: map[string]configs.Value{"kp": val("2"), "ti": val("1s")}}
	cfg := &configs.Config{
		Devices: []configs.Device{{Name: "rio", Tags: []configs.IOTag{
			{Name: "level", Area: configs.AreaInput, Type: tag.Float32},
			{Name: "valve", Area: configs.AreaHolding, Type: tag.Float32},
		}}},
		Tags:     []configs.Tag{{Name: "sp", Writable: true, Retain: true, Initial: val("3")}},
		Watchdog: configs.Watchdog{SafeState: map[string]configs.Value{"valve": val("0")}},
	}
	blocksList := []configs.Block{pid}
	if changed {
		pid.Inputs["pv"] = ref("pvf.out")
		cfg.Tags = append(cfg.Tags, configs.Tag{Name: "hi", Type: tag.Bool})
		blocksList = []configs.Block{pid,
			{Name: "pvf", Type: "lag", Inputs: map[string]configs.Ref{"in": ref("level")}, Params: map[string]configs.Value{"tau": val("0s")}},
			{Name: "alm", Type: "alarm", Inputs: map[string]configs.Ref{"in": ref("level")}, Outputs: map[string]string{"active": "hi"}, Params: map[string]configs.Value{"hi": val("9")}}}
	}
	cfg.Tasks = []configs.Task{{Name: "main", Period: configs.Duration(period), Blocks: blocksList}}
	return cfg
}

// side is one executive of a hand-over over fakes, with a real block
// program.
type side struct {
	t     *testing.T
	exec  *executive.Executive
	clock *executivetest.Clock
	io    *executivetest.IO
	ch    *executivetest.Channel
	tab   *tag.Table
}

func newSide(t *testing.T, changed bool, own, from executive.Baton) *side {
	t.Helper()
	cfg := loopConfig(changed)
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	s := &side{t: t, clock: executivetest.NewClock(time.Second), io: executivetest.NewIO(tab.Len()), ch: executivetest.NewChannel(1), tab: tab}
	programs := func(task string, tb *tag.Table) (executive.Program, error) {
		p, err := blocks.Compile(cfg, tb)
		if err != nil {
			return nil, err
		}
		return blocks.Dotted{TaskProgram: p.Task(task)}, nil
	}
	s.exec, err = executive.New(cfg, tab, programs, s.io, s.ch, executive.Options{Clock: s.clock, NoRealtime: true, HandOver: own, TakeFrom: from})
	if err != nil {
		t.Fatal(err)
	}
	s.exec.StartForTest()
	return s
}

func (s *side) id(name string) tag.ID { return id(s.t, s.tab, name) }

// level is the plant's measurement at cycle k.
func level(k int) float64 { return 2 + math.Sin(float64(k)/9) }

// cycle runs one cycle with the level of cycle k and reports whether it
// wrote the outputs.
func (s *side) cycle(k int) bool {
	s.io.SetInput(s.id("level"), level(k))
	before := s.io.Writes()
	s.exec.CycleForTest(0)
	return s.io.Writes() != before
}

func (s *side) valve() float64 { return s.tab.Samples[s.id("valve")].Value }

type handOverRun struct {
	switchK    int     // first cycle the new side drove
	step       float64 // |valve(new) - valve(old, continuing)| at the switch
	oldHO      executive.HandOverStatus
	newHO      executive.HandOverStatus
	oldWritten uint64
}

// runHandOver runs an old and a new executive in lock step. Release and
// Take for the cycle at index at are sent at cycle 5; newFirst says
// whether the new side's cycle starts before the old side's in each step;
// lateAt makes the old side run first at that cycle (the offer not in time).
func runHandOver(t *testing.T, at, lateAt int) handOverRun {
	area := executivetest.NewBaton(64 << 10)
	old := newSide(t, false, area, nil)
	nw := newSide(t, true, executivetest.NewBaton(64<<10), area)
	T := time.Second + time.Duration(at)*period
	var r handOverRun
	r.switchK = -1
	for k := range 60 {
		if k == 5 {
			old.ch.Send(wire.Command{ID: 1, Kind: wire.Release, Value: wire.Number(float64(T))})
			nw.ch.Send(wire.Command{ID: 2, Kind: wire.Take, Value: wire.Number(float64(T))})
		}
		var oldDrove, newDrove bool
		if k == lateAt {
			oldDrove = old.cycle(k)
			newDrove = nw.cycle(k)
		} else {
			newDrove = nw.cycle(k)
			oldDrove = old.cycle(k)
		}
		if k >= 5 && oldDrove == newDrove {
			t.Fatalf("cycle %d: old drove %v, new drove %v; want exactly one driver", k, oldDrove, newDrove)
		}
		if newDrove && r.switchK < 0 {
			r.switchK = k
			// The old side still runs its blocks (without driving): its
			// valve is the controller's output had there been no hand-over.
			r.step = math.Abs(nw.valve() - old.valve())
		}
		if k < 5 && (!oldDrove || newDrove) {
			t.Fatalf("cycle %d before the hand-over: old drove %v, new drove %v", k, oldDrove, newDrove)
		}
	}
	for _, res := range append(old.ch.Results(), nw.ch.Results()...) {
		if res.Status != wire.Applied {
			t.Fatalf("command %d: %v", res.ID, res.Status)
		}
	}
	r.oldHO, r.newHO = old.exec.Status().HandOver, nw.exec.Status().HandOver
	r.oldWritten = old.io.Writes()
	// Stopping the released old side writes nothing, not even safe values.
	old.exec.StopForTest(0)
	if old.io.Writes() != r.oldWritten {
		t.Fatal("the released executive wrote outputs when it stopped")
	}
	return r
}

// The new executive drives from exactly the cycle at the release time; the
// PID's integrator carries over, so the valve does not step.
func TestHandOverSwitchAtCycleBoundary(t *testing.T) {
	r := runHandOver(t, 20, -1)
	if r.switchK != 20 {
		t.Fatalf("new side first drove cycle %d, want 20", r.switchK)
	}
	if r.step > 1e-9 {
		t.Fatalf("valve stepped by %v at the switch", r.step)
	}
	n, o := r.newHO, r.oldHO
	if n.Mode != wire.Driving || n.Retries != 0 || n.Missed != 0 || n.Standby != 20 || n.Driven != 40 {
		t.Fatalf("new side: %+v", n)
	}
	if n.Blocks != (wire.BlockCounts{Carried: 1, Fresh: 2}) || n.Tags < 2 {
		t.Fatalf("new side import: blocks %+v, tags %d", n.Blocks, n.Tags)
	}
	if o.Mode != wire.Released || o.Driven != 20 || o.Released != 40 {
		t.Fatalf("old side: %+v", o)
	}
	if want := time.Second + 20*period; time.Duration(n.Switch) != want || time.Duration(o.Switch) != want || n.LastDriven != want-period {
		t.Fatalf("switch at %v/%v, last driven %v; want %v", n.Switch, o.Switch, n.LastDriven, want)
	}
}

// Not in time: the old side claims cycle 20 before the new side looks; it
// drives 20 and offers again, the new side takes 21. No cycle is missed.
func TestHandOverNotInTimeRetries(t *testing.T) {
	r := runHandOver(t, 20, 20)
	if r.switchK != 21 {
		t.Fatalf("new side first drove cycle %d, want 21", r.switchK)
	}
	if r.step > 1e-9 {
		t.Fatalf("valve stepped by %v at the switch", r.step)
	}
	if n := r.newHO; n.Retries != 1 || n.Missed != 0 {
		t.Fatalf("new side: %+v, want 1 retry and 0 missed", n)
	}
	if r.oldHO.Driven != 21 {
		t.Fatalf("old side drove %d cycles, want 21", r.oldHO.Driven)
	}
}

// A standby executive without a Take never drives, and never writes safe
// values when it stops; a Take for a standby-less executive is refused.
func TestStandbyNeverDrivesWithoutTake(t *testing.T) {
	nw := newSide(t, true, nil, executivetest.NewBaton(1024))
	for k := range 10 {
		if nw.cycle(k) {
			t.Fatalf("standby executive drove cycle %d", k)
		}
	}
	nw.exec.StopForTest(0)
	if nw.io.Writes() != 0 {
		t.Fatal("standby executive wrote on stop")
	}
	plain := newSide(t, false, nil, nil)
	plain.ch.Send(wire.Command{ID: 1, Kind: wire.Take, Value: wire.Number(1)}, wire.Command{ID: 2, Kind: wire.Release, Value: wire.Number(1)})
	plain.cycle(0)
	for _, res := range plain.ch.Results() {
		if res.Status != wire.Unsupported {
			t.Fatalf("command %d without hand-over areas: %v, want unsupported", res.ID, res.Status)
		}
	}
}

// A releasing executive whose successor never takes keeps driving.
func TestReleaseWithoutTakerKeepsDriving(t *testing.T) {
	old := newSide(t, false, executivetest.NewBaton(64<<10), nil)
	old.ch.Send(wire.Command{ID: 1, Kind: wire.Release, Value: wire.Number(float64(time.Second + 3*period))})
	for k := range 20 {
		if !old.cycle(k) {
			t.Fatalf("cycle %d not driven", k)
		}
	}
	if st := old.exec.Status().HandOver; st.Mode != wire.Releasing || st.Driven != 20 {
		t.Fatalf("%+v", st)
	}
}

// The releasing cycle — keep, drive, export and offer — allocates nothing.
func TestReleasingCycleAllocationFree(t *testing.T) {
	area := executivetest.NewBaton(64 << 10)
	old := newSide(t, false, area, nil)
	old.ch.Send(wire.Command{ID: 1, Kind: wire.Release, Value: wire.Number(float64(time.Second + period))})
	old.cycle(0)
	old.cycle(1)
	lvl := old.id("level")
	k := 2
	n := testing.AllocsPerRun(200, func() {
		old.io.SetInput(lvl, level(k))
		old.exec.CycleForTest(0)
		k++
	})
	if n != 0 {
		t.Fatalf("%v allocations per releasing cycle", n)
	}
	if area.Offers < 200 {
		t.Fatalf("%d offers, want one per cycle", area.Offers)
	}
}

// A baton without a published grid leaves the first deadline alone; with
// one, Run's first deadline lands on it (checked through Status of a short
// run with the fake clock).
func TestStandbyAlignsToGrid(t *testing.T) {
	area := executivetest.NewBaton(1024)
	area.SetGrid(int64(time.Second+300*time.Microsecond), int64(period))
	cfg := loopConfig(true)
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	own := executivetest.NewBaton(1024)
	clock := executivetest.NewClock(time.Second)
	e, err := executive.New(cfg, tab, func(task string, tb *tag.Table) (executive.Program, error) {
		p, err := blocks.Compile(cfg, tb)
		if err != nil {
			return nil, err
		}
		return p.Task(task), nil
	}, nil, nil, executive.Options{Clock: clock, NoRealtime: true, KeepGC: true, Cycles: 3, HandOver: own, TakeFrom: area})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
	origin, p, ok := own.Grid()
	if !ok || time.Duration(p) != period || (time.Duration(origin)-(time.Second+300*time.Microsecond))%period != 0 {
		t.Fatalf("published grid %v/%v, want on the taken executive's grid", time.Duration(origin), time.Duration(p))
	}
}
