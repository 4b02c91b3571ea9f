package executive_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/executive/executivetest"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/shm/wire/wiretest"
)

const period = time.Millisecond

func f64(v float64) *float64 { return &v }

// plant is a small config: a remote I/O with a level input and a valve
// output, setpoints of each type, and the valve's safe state.
func plant(t testing.TB, tasks ...configs.Task) (*configs.Config, *tag.Table) {
	t.Helper()
	cfg := &configs.Config{
		Devices: []configs.Device{{Name: "rio", Tags: []configs.IOTag{
			{Name: "level", Area: configs.AreaInput, Type: tag.Float32},
			{Name: "valve", Area: configs.AreaHolding, Type: tag.Float32, Min: f64(0), Max: f64(100)},
			{Name: "pump", Area: configs.AreaCoil},
		}}},
		Tags: []configs.Tag{
			{Name: "setpoint", Writable: true, Min: f64(0), Max: f64(10), Initial: configs.Value{Raw: "5", Set: true}},
			{Name: "mode", Type: tag.Int16, Writable: true},
			{Name: "count", Type: tag.Uint16, Writable: true},
			{Name: "enable", Type: tag.Bool, Writable: true},
			{Name: "label", Type: tag.String, Writable: true, Length: 8},
			{Name: "readonly", Writable: false},
			{Name: "mirror"},
		},
		Tasks: tasks,
		Watchdog: configs.Watchdog{Overruns: 3, SafeState: map[string]configs.Value{
			"valve": {Raw: "0", Set: true}, "pump": {Raw: "false", Set: true}, "mirror": {Raw: "-1", Set: true}}},
	}
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	return cfg, tab
}

func id(t testing.TB, tab *tag.Table, name string) tag.ID {
	t.Helper()
	i, ok := tab.Lookup(name)
	if !ok {
		t.Fatalf("no tag %q", name)
	}
	return i
}

// rig is an executive over fakes with one control program: valve = 10 *
// setpoint, pump on.
type rig struct {
	exec  *executive.Executive
	clock *executivetest.Clock
	prog  *executivetest.Program
	io    *executivetest.IO
	ch    *executivetest.Channel
	tab   *tag.Table
}

func newRig(t testing.TB, policy configs.OverrunPolicy, exec func(n uint64) time.Duration) *rig {
	t.Helper()
	cfg, tab := plant(t, configs.Task{Name: "main", Period: configs.Duration(period), Overrun: policy})
	r := &rig{clock: executivetest.NewClock(time.Second), io: executivetest.NewIO(tab.Len()), ch: executivetest.NewChannel(1), tab: tab}
	valve, pump, sp := id(t, tab, "valve"), id(t, tab, "pump"), id(t, tab, "setpoint")
	r.prog = &executivetest.Program{Out: []tag.ID{valve, pump}, Clock: r.clock, Exec: exec, Step: func(_, _ time.Duration) {
		tab.Samples[valve] = tag.Sample{Value: 10 * tab.Samples[sp].Value, Quality: tag.Good}
		tab.Samples[pump] = tag.Sample{Value: 1, Quality: tag.Good}
	}}
	var err error
	r.exec, err = executive.New(cfg, tab, func(string, *tag.Table) (executive.Program, error) { return r.prog, nil },
		r.io, r.ch, executive.Options{Clock: r.clock, NoRealtime: true})
	if err != nil {
		t.Fatal(err)
	}
	r.exec.StartForTest()
	return r
}

func (r *rig) cycles(n int) {
	for i := 0; i < n; i++ {
		r.exec.CycleForTest(0)
	}
}

// execAt makes run number at take d, every other run take short.
func execAt(short time.Duration, d time.Duration, at ...uint64) func(uint64) time.Duration {
	return func(n uint64) time.Duration {
		for _, a := range at {
			if n == a {
				return d
			}
		}
		return short
	}
}

func TestOverrunSkip(t *testing.T) {
	r := newRig(t, configs.OverrunSkip, execAt(100*time.Microsecond, 2*period+period/2, 3))
	start := r.clock.Now()
	r.cycles(5)
	c := r.exec.Status().Tasks[0]
	if c.Overruns != 1 || c.Missed != 2 || c.Consecutive != 0 || c.Cycles != 5 {
		t.Fatalf("counters = %+v, want 1 overrun, 2 missed periods, 5 cycles", c.TaskCounters)
	}
	// Cycle 3 started at start+2P and ended at start+4.5P: skip resumes at
	// start+5P, so cycle 5 starts at start+6P, on time.
	if c.LastWake != 0 {
		t.Errorf("wake after skip = %v, want 0 (the next period is on time)", c.LastWake)
	}
	if got, want := r.clock.Now(), start+6*period+100*time.Microsecond; got != want {
		t.Errorf("clock after 5 cycles = %v, want %v", got-start, want-start)
	}
	if _, dt := r.prog.Runs(); dt != period {
		t.Errorf("dt = %v, want %v", dt, period)
	}
	ev := r.ch.Events()
	if len(ev) != 1 || ev[0].Kind != wire.Overrun || time.Duration(ev[0].Value) != period+period/2 {
		t.Fatalf("events = %+v, want one overrun 1.5ms late", ev)
	}
	if s, _, _ := r.exec.State(); s != wire.Running {
		t.Fatalf("state = %v after one overrun, want running", s)
	}
}

func TestOverrunCatchUp(t *testing.T) {
	r := newRig(t, configs.OverrunCatchUp, execAt(100*time.Microsecond, 2*period+period/2, 3))
	start := r.clock.Now()
	r.cycles(8)
	c := r.exec.Status().Tasks[0]
	// Cycle 3 ends at 4.5P; cycle 4 (due at 3P) runs at once and ends past
	// its own deadline too; cycle 5 (due at 4P) is back within its period.
	if c.Overruns != 2 || c.Missed != 0 || c.Consecutive != 0 {
		t.Fatalf("counters = %+v, want 2 overruns, 0 missed", c.TaskCounters)
	}
	// The two late cycles run back to back, then the task is on schedule:
	// cycle 8 is scheduled at start+7P.
	if got, want := r.clock.Now(), start+7*period+100*time.Microsecond; got != want {
		t.Errorf("clock after 8 cycles = %v, want %v", got-start, want-start)
	}
	if c.MaxWake != period+period/2 {
		t.Errorf("max wake = %v, want 1.5ms (first catch-up cycle)", c.MaxWake)
	}
	if runs, dt := r.prog.Runs(); runs != 8 || dt != period {
		t.Errorf("runs, dt = %d, %v; want 8, %v", runs, dt, period)
	}
}

func TestWatchdogSafeState(t *testing.T) {
	r := newRig(t, configs.OverrunSkip, func(n uint64) time.Duration {
		if n >= 4 {
			return 2 * period
		}
		return 10 * time.Microsecond
	})
	r.cycles(3)
	if s, _ := r.io.Written(id(t, r.tab, "valve")); s.Value != 50 {
		t.Fatalf("valve before fault = %v, want 50", s.Value)
	}
	r.cycles(3) // runs 4, 5, 6 overrun
	st, code, reason := r.exec.State()
	if st != wire.Safe || code != wire.FaultOverruns || !strings.Contains(reason, `task "main" overran`) {
		t.Fatalf("state = %v %v %q, want safe after 3 consecutive overruns", st, code, reason)
	}
	r.cycles(2)
	if runs, _ := r.prog.Runs(); runs != 6 {
		t.Errorf("program ran %d times, want 6 (not in the safe state)", runs)
	}
	for name, want := range map[string]float64{"valve": 0, "pump": 0} {
		s, ok := r.io.Written(id(t, r.tab, name))
		if !ok || s.Value != want || s.Reason != tag.SafeState || s.Quality != tag.Uncertain {
			t.Errorf("%s written = %+v, want %v at safe state", name, s, want)
		}
	}
	hb, _ := r.ch.LastHeartbeat()
	if hb.State != wire.Safe || hb.Code != wire.FaultOverruns || hb.Tasks[0].Faults != 1 {
		t.Errorf("heartbeat = %+v, want safe/overruns with one fault", hb)
	}
	var faults int
	for _, e := range r.ch.Events() {
		if e.Kind == wire.Fault {
			faults++
		}
	}
	if faults != 1 {
		t.Errorf("%d fault events, want 1", faults)
	}
}

func TestWatchdogNeedsConsecutiveOverruns(t *testing.T) {
	r := newRig(t, configs.OverrunSkip, execAt(0, 2*period, 2, 3, 5, 6, 8, 9))
	r.cycles(10)
	if s, _, _ := r.exec.State(); s != wire.Running {
		t.Fatalf("state = %v after pairs of overruns, want running", s)
	}
	if c := r.exec.Status().Tasks[0]; c.Overruns != 6 {
		t.Fatalf("overruns = %d, want 6", c.Overruns)
	}
}

func TestRunStopsInSafeState(t *testing.T) {
	cfg, tab := plant(t, configs.Task{Name: "main", Period: configs.Duration(period)})
	clock, io, ch := executivetest.NewClock(0), executivetest.NewIO(tab.Len()), executivetest.NewChannel(1)
	valve := id(t, tab, "valve")
	prog := &executivetest.Program{Out: []tag.ID{valve}, Step: func(_, _ time.Duration) {
		tab.Samples[valve] = tag.Sample{Value: 42, Quality: tag.Good}
	}}
	var intervals int
	e, err := executive.New(cfg, tab, func(string, *tag.Table) (executive.Program, error) { return prog, nil }, io, ch,
		executive.Options{Clock: clock, NoRealtime: true, Cycles: 500, Interval: 50 * period,
			OnInterval: func(int, *hdrhistogram.Histogram, *hdrhistogram.Histogram) { intervals++ }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
	st, code, _ := e.State()
	if st != wire.Stopping || code != wire.FaultStop {
		t.Fatalf("state = %v %v, want stopping", st, code)
	}
	if s, _ := io.Written(valve); s.Value != 0 || s.Reason != tag.SafeState {
		t.Fatalf("valve after stop = %+v, want its safe value 0", s)
	}
	if hb, _ := ch.LastHeartbeat(); hb.State != wire.Stopping || hb.Cycle != 500 {
		t.Fatalf("last heartbeat = %+v, want stopping at cycle 500", hb)
	}
	h := e.Histograms()[0]
	if h.Wake.TotalCount() != 500 || h.Exec.TotalCount() != 500 || ch.Latencies()[0] != 500 {
		t.Fatalf("histogram counts = %d/%d, channel %d, want 500", h.Wake.TotalCount(), h.Exec.TotalCount(), ch.Latencies()[0])
	}
	if intervals < 2 {
		t.Errorf("OnInterval called %d times, want at least 2 for 500 cycles of 50-cycle intervals", intervals)
	}
	if err := e.Run(ctx); !errors.Is(err, executive.ErrStarted) {
		t.Fatalf("second Run = %v, want ErrStarted", err)
	}
}

func TestRunStopsOnContext(t *testing.T) {
	cfg, tab := plant(t, configs.Task{Name: "main", Period: configs.Duration(period)})
	ch := executivetest.NewChannel(1)
	prog := &executivetest.Program{}
	e, err := executive.New(cfg, tab, func(string, *tag.Table) (executive.Program, error) { return prog, nil }, nil, ch,
		executive.Options{Clock: executivetest.NewClock(0), NoRealtime: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	deadline := time.After(30 * time.Second)
	for runs, _ := prog.Runs(); runs < 100; runs, _ = prog.Runs() {
		select {
		case <-deadline:
			t.Fatal("program did not run")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-deadline:
		t.Fatal("Run did not return after cancel")
	}
	if s, _, _ := e.State(); s != wire.Stopping {
		t.Fatalf("state = %v, want stopping", s)
	}
}

func TestPanicFaults(t *testing.T) {
	cfg, tab := plant(t, configs.Task{Name: "main", Period: configs.Duration(period)})
	io := executivetest.NewIO(tab.Len())
	valve := id(t, tab, "valve")
	prog := &executivetest.Program{Out: []tag.ID{valve}, Step: func(now, _ time.Duration) {
		tab.Samples[valve].Value = 7
		if now >= 20*period {
			panic("program bug")
		}
	}}
	e, err := executive.New(cfg, tab, func(string, *tag.Table) (executive.Program, error) { return prog, nil }, io, nil,
		executive.Options{Clock: executivetest.NewClock(0), NoRealtime: true, Cycles: 1000})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Run(context.Background())
	if !errors.Is(err, executive.ErrFault) || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("Run = %v, want ErrFault with the panic", err)
	}
	if s, code, _ := e.State(); s != wire.Faulted || code != wire.FaultPanic {
		t.Fatalf("state = %v %v, want faulted/panic", s, code)
	}
	if s, _ := io.Written(valve); s.Value != 0 || s.Reason != tag.SafeState {
		t.Fatalf("valve after fault = %+v, want safe value", s)
	}
}

func TestCommands(t *testing.T) {
	r := newRig(t, configs.OverrunSkip, nil)
	r.cycles(2)
	sp, mode, count, enable, label := id(t, r.tab, "setpoint"), id(t, r.tab, "mode"), id(t, r.tab, "count"), id(t, r.tab, "enable"), id(t, r.tab, "label")
	cmds := []struct {
		cmd  wire.Command
		want wire.Status
	}{
		{wire.Command{Kind: wire.WriteTag, Tag: sp, Value: wire.Number(7.5)}, wire.Applied},
		{wire.Command{Kind: wire.WriteTag, Tag: sp, Value: wire.Number(11)}, wire.OutOfRange},
		{wire.Command{Kind: wire.WriteTag, Tag: sp, Value: wire.Number(math.NaN())}, wire.WrongType},
		{wire.Command{Kind: wire.WriteTag, Tag: mode, Value: wire.Number(1.5)}, wire.WrongType},
		{wire.Command{Kind: wire.WriteTag, Tag: mode, Value: wire.Number(-3)}, wire.Applied},
		{wire.Command{Kind: wire.WriteTag, Tag: mode, Value: wire.Number(40000)}, wire.OutOfRange},
		{wire.Command{Kind: wire.WriteTag, Tag: count, Value: wire.Number(-1)}, wire.OutOfRange},
		{wire.Command{Kind: wire.WriteTag, Tag: enable, Value: wire.Number(2)}, wire.WrongType},
		{wire.Command{Kind: wire.WriteTag, Tag: enable, Value: wire.Number(1)}, wire.Applied},
		{wire.Command{Kind: wire.WriteTag, Tag: label, Value: wire.Text("too long!")}, wire.OutOfRange},
		{wire.Command{Kind: wire.WriteTag, Tag: label, Value: wire.Text("auto")}, wire.Applied},
		{wire.Command{Kind: wire.WriteTag, Tag: id(t, r.tab, "readonly"), Value: wire.Number(1)}, wire.ReadOnly},
		{wire.Command{Kind: wire.WriteTag, Tag: id(t, r.tab, "level"), Value: wire.Number(1)}, wire.ReadOnly},
		{wire.Command{Kind: wire.WriteTag, Tag: id(t, r.tab, "valve"), Value: wire.Number(1)}, wire.Owned},
		{wire.Command{Kind: wire.WriteTag, Tag: 999, Value: wire.Number(1)}, wire.UnknownTag},
		{wire.Command{Kind: wire.WriteTag, Tag: -1, Value: wire.Number(1)}, wire.UnknownTag},
		{wire.Command{Kind: wire.SetParam, Value: wire.Number(2), Param: []byte("pid1.kp")}, wire.Applied},
		{wire.Command{Kind: wire.SetParam, Value: wire.Number(2), Param: []byte("1bad")}, wire.BadParam},
		{wire.Command{Kind: 99}, wire.Unsupported},
	}
	for i, c := range cmds {
		c.cmd.ID = uint64(i + 1)
		r.ch.Send(c.cmd)
	}
	r.cycles(2) // 16 commands per cycle by default
	res := r.ch.Results()
	if len(res) != len(cmds) {
		t.Fatalf("%d results, want %d", len(res), len(cmds))
	}
	for i, c := range cmds {
		if res[i].ID != uint64(i+1) || res[i].Status != c.want {
			t.Errorf("command %d %+v: result %+v, want %v", i+1, c.cmd, res[i], c.want)
		}
	}
	if res[0].Old != 5 || res[0].Cycle != 3 || res[len(res)-1].Cycle != 4 {
		t.Errorf("first result %+v, last %+v: want old value 5, cycles 3 and 4", res[0], res[len(res)-1])
	}
	if r.tab.Samples[sp].Value != 7.5 || r.tab.Samples[mode].Value != -3 || r.tab.Samples[enable].Value != 1 || r.tab.Text[label] != "auto" {
		t.Errorf("table after commands: setpoint %v mode %v enable %v label %q", r.tab.Samples[sp].Value, r.tab.Samples[mode].Value, r.tab.Samples[enable].Value, r.tab.Text[label])
	}
	if s, _ := r.io.Written(id(t, r.tab, "valve")); s.Value != 75 {
		t.Errorf("valve = %v, want 75 from the new setpoint", s.Value)
	}
	if v, ok := r.prog.Param("pid1.kp"); !ok || v != 2 {
		t.Errorf("param = %v %v, want 2", v, ok)
	}

	r.ch.Send(wire.Command{ID: 100, Kind: wire.Halt, Origin: wire.NewOrigin("cli")}, wire.Command{ID: 101, Kind: wire.WriteTag, Tag: sp, Value: wire.Number(1)})
	r.cycles(1)
	res = r.ch.Results()
	if got := res[len(res)-1]; got.Status != wire.NotRunning {
		t.Errorf("write after halt: %v, want refused", got.Status)
	}
	if s, code, reason := r.exec.State(); s != wire.Safe || code != wire.FaultHalt || reason != "halted by cli" {
		t.Errorf("state after halt = %v %v %q", s, code, reason)
	}
}

func TestNewRejects(t *testing.T) {
	prog := func(string, *tag.Table) (executive.Program, error) {
		return &executivetest.Program{Out: []tag.ID{1}}, nil
	}
	cases := map[string]func(*configs.Config){
		"no tasks":    func(c *configs.Config) { c.Tasks = nil },
		"period":      func(c *configs.Config) { c.Tasks[0].Period = 0 },
		"priority":    func(c *configs.Config) { c.Tasks[0].Priority = 120 },
		"policy":      func(c *configs.Config) { c.Tasks[0].Overrun = "later" },
		"two writers": func(c *configs.Config) { c.Tasks = append(c.Tasks, configs.Task{Name: "b", Period: c.Tasks[0].Period}) },
		"safe input":  func(c *configs.Config) { c.Watchdog.SafeState["level"] = configs.Value{Raw: "1", Set: true} },
		"safe name":   func(c *configs.Config) { c.Watchdog.SafeState["nope"] = configs.Value{Raw: "1", Set: true} },
		"safe value":  func(c *configs.Config) { c.Watchdog.SafeState["valve"] = configs.Value{Raw: "shut", Set: true} },
	}
	for name, mutate := range cases {
		cfg, tab := plant(t, configs.Task{Name: "a", Period: configs.Duration(period)})
		mutate(cfg)
		if _, err := executive.New(cfg, tab, prog, nil, nil, executive.Options{NoRealtime: true}); !errors.Is(err, executive.ErrConfig) {
			t.Errorf("%s: New = %v, want ErrConfig", name, err)
		}
	}
}

// The executive answers the shared write-check table (shm/wire/wiretest)
// exactly as wire.CheckTagWrite does, and applies what it accepts.
func TestWriteCheckTable(t *testing.T) {
	e, ch, tab := tableExecutive(t)
	cases := wiretest.WriteCases()
	for i, c := range cases {
		ch.Send(wire.Command{ID: uint64(i + 1), Kind: wire.WriteTag, Tag: c.ID(), Value: c.Value})
		e.CycleForTest(0)
	}
	res := ch.Results()
	if len(res) != len(cases) {
		t.Fatalf("%d results for %d writes", len(res), len(cases))
	}
	last := map[tag.ID]wire.Value{} // the last accepted write of each tag
	for i, c := range cases {
		if res[i].Status != c.Want {
			t.Errorf("%s <- %v: %v, want %v", c.Tag, c.Value, res[i].Status, c.Want)
		}
		if c.Want == wire.Applied {
			last[c.ID()] = c.Value
		}
	}
	for id, v := range last {
		if v.IsText && tab.Text[id] != string(v.Text) || !v.IsText && tab.Samples[id].Value != v.Num {
			t.Errorf("%s: last accepted %v, the table holds %v %q", tab.Info[id].Name, v, tab.Samples[id].Value, tab.Text[id])
		}
	}
}

// The executive applies the shared table of units (shm/wire/wiretest)
// whole or not at all, in one cycle, answering each write as the table
// says.
func TestUnitTable(t *testing.T) {
	e, ch, tab := tableExecutive(t)
	id := uint64(0)
	for _, u := range wiretest.UnitCases() {
		before := append([]tag.Sample(nil), tab.Samples...)
		cs := make([]wire.Command, len(u.Writes))
		for i, c := range u.Writes {
			id++
			cs[i] = wire.Command{ID: id, Kind: wire.WriteTag, Tag: c.ID(), Value: c.Value}
		}
		done := len(ch.Results())
		ch.SendUnit(cs...)
		e.CycleForTest(0)
		res := ch.Results()[done:]
		if len(res) != len(cs) {
			t.Fatalf("%s: %d results in one cycle for a unit of %d", u.Name, len(res), len(cs))
		}
		for i, c := range u.Writes {
			if res[i].Status != c.Want || res[i].Cycle != res[0].Cycle {
				t.Errorf("%s: write %d (%s <- %v): %v in cycle %d, want %v in cycle %d", u.Name, i, c.Tag, c.Value, res[i].Status, res[i].Cycle, c.Want, res[0].Cycle)
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
	if v := tab.Samples[wiretest.WriteCase{Tag: "count"}.ID()].Value; v != 8 {
		t.Errorf("count %v after a unit writing it 7 then 8", v)
	}
}

// tableExecutive is a started executive of the shared table's tags
// (shm/wire/wiretest), one cycle run.
func tableExecutive(t *testing.T) (*executive.Executive, *executivetest.Channel, *tag.Table) {
	cfg := &configs.Config{Tasks: []configs.Task{{Name: "main", Period: configs.Duration(period)}}}
	tab, err := tag.NewTable(wiretest.Tags())
	if err != nil {
		t.Fatal(err)
	}
	clock, ch := executivetest.NewClock(time.Second), executivetest.NewChannel(1)
	e, err := executive.New(cfg, tab, func(string, *tag.Table) (executive.Program, error) { return &executivetest.Program{Clock: clock}, nil },
		nil, ch, executive.Options{Clock: clock, NoRealtime: true})
	if err != nil {
		t.Fatal(err)
	}
	e.StartForTest()
	e.CycleForTest(0)
	return e, ch, tab
}

// TestYieldsInTheSlack: a task passes through the scheduler once every
// rt.YieldEvery of cycles, after a cycle's work, and a sleep longer than
// rt.YieldLatest is cut into slices with a yield after each.
func TestYieldsInTheSlack(t *testing.T) {
	r := newRig(t, configs.OverrunSkip, execAt(100*time.Microsecond, 0))
	n := int(100 * time.Millisecond / period)
	r.cycles(n)
	c := r.exec.Status().Tasks[0]
	every := int(rt.YieldEvery / period)
	if want := n / every; c.Yields < uint64(want-1) || c.Yields > uint64(want) {
		t.Fatalf("%d cycles of %v: %d yields, want about %d (one every %v)", n, period, c.Yields, want, rt.YieldEvery)
	}
	if c.Overruns != 0 || c.LastWake != 0 {
		t.Fatalf("yields disturbed the cycles: %+v", c.TaskCounters)
	}

	// A 50 ms period: each sleep is sliced.
	cfg, tab := plant(t, configs.Task{Name: "slow", Period: configs.Duration(50 * time.Millisecond)})
	clock := executivetest.NewClock(time.Second)
	e, err := executive.New(cfg, tab, func(string, *tag.Table) (executive.Program, error) { return &executivetest.Program{Clock: clock}, nil },
		nil, executivetest.NewChannel(1), executive.Options{Clock: clock, NoRealtime: true})
	if err != nil {
		t.Fatal(err)
	}
	e.StartForTest()
	for range 4 {
		e.CycleForTest(0)
	}
	c = e.Status().Tasks[0]
	// The first cycle starts at once; the next three sleep 50 ms each, in
	// slices of 5 ms until 8 ms or less remain (9 yields), and yield again
	// after their work, 5 ms after the last slice: 10 yields per cycle.
	if c.Yields != 3*10 || c.LastWake != 0 {
		t.Fatalf("4 cycles of 50ms: %d yields, last wake %v; want 30 and on time", c.Yields, c.LastWake)
	}
}
