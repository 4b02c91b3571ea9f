package executive_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/executive/executivetest"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm/tag"
)

func TestCycleAllocatesNothing(t *testing.T) {
	r := newRig(t, configs.OverrunSkip, func(uint64) time.Duration { return 10 * time.Microsecond })
	r.io.SetInput(id(t, r.tab, "level"), 3)
	r.cycles(10)
	if n := testing.AllocsPerRun(2000, func() { r.exec.CycleForTest(0) }); n != 0 {
		t.Fatalf("one cycle allocates %v times, want 0", n)
	}
}

// twoTasks is an executive of a fast task writing "mirror" and a slow one
// writing "valve" from it, each on its own table.
func twoTasks(t *testing.T, opts executive.Options) (*executive.Executive, *tag.Table, *float64) {
	return twoTasksTB(t, opts, 4*period)
}

// twoTasksTB is twoTasks with the slow task's period given: stepping both
// tasks in turn on one fake clock makes the fast task overrun unless the
// periods are equal.
func twoTasksTB(t testing.TB, opts executive.Options, slow time.Duration) (*executive.Executive, *tag.Table, *float64) {
	t.Helper()
	cfg, tab := plant(t,
		configs.Task{Name: "fast", Period: configs.Duration(period)},
		configs.Task{Name: "slow", Period: configs.Duration(slow)})
	// Two threads moving one fake clock make each other look late; keep the
	// watchdog from stopping the programs on those artificial overruns.
	cfg.Watchdog.Overruns = 1 << 30
	mirror, valve, level := id(t, tab, "mirror"), id(t, tab, "valve"), id(t, tab, "level")
	io := executivetest.NewIO(tab.Len())
	io.SetInput(level, 2)
	seen := new(float64) // largest mirror the slow task read; its thread only
	progs := func(task string, tt *tag.Table) (executive.Program, error) {
		if task == "fast" {
			return &executivetest.Program{Out: []tag.ID{mirror}, Step: func(_, _ time.Duration) {
				tt.Samples[mirror] = tag.Sample{Value: tt.Samples[mirror].Value + tt.Samples[level].Value, Quality: tag.Good}
			}}, nil
		}
		return &executivetest.Program{Out: []tag.ID{valve}, Step: func(_, _ time.Duration) {
			v := tt.Samples[mirror].Value
			if int64(v)%2 != 0 {
				v = -1000 // a torn or foreign value
			}
			if v < 0 || *seen >= 0 {
				*seen = max(*seen, v)
				if v < 0 {
					*seen = v
				}
			}
			tt.Samples[valve] = tag.Sample{Value: v, Quality: tag.Good}
		}}, nil
	}
	e, err := executive.New(cfg, tab, progs, io, executivetest.NewChannel(2), opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, tab, seen
}

func TestMultiTaskCycleAllocatesNothing(t *testing.T) {
	e, _, _ := twoTasksTB(t, executive.Options{Clock: executivetest.NewClock(0), NoRealtime: true}, period)
	e.StartForTest()
	if n := testing.AllocsPerRun(1000, func() { e.CycleForTest(0); e.CycleForTest(1) }); n != 0 {
		t.Fatalf("a cycle of two tasks allocates %v times, want 0", n)
	}
}

// TestTasksShareTags checks that the slow task reads what the fast task
// publishes: first stepped by hand (deterministic), then with both task
// threads running concurrently (run with -race), where the final image must
// hold both tasks' outputs at their safe values. Two threads moving one fake
// clock give no guarantee of how their cycles interleave, so the concurrent
// run checks consistency, not timing.
func TestTasksShareTags(t *testing.T) {
	e, _, seen := twoTasks(t, executive.Options{Clock: executivetest.NewClock(0), NoRealtime: true})
	e.StartForTest()
	for range 8 {
		e.CycleForTest(0) // fast: mirror += level (2)
	}
	e.CycleForTest(1) // slow: reads mirror
	if *seen != 16 {
		t.Fatalf("slow task read mirror %v after 8 fast cycles, want 16", *seen)
	}

	e, tab, seen := twoTasks(t, executive.Options{Clock: executivetest.NewClock(0), NoRealtime: true, Cycles: 2000})
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ts := range e.Status().Tasks {
		if ts.Cycles != 2000 {
			t.Errorf("task %s ran %d cycles, want 2000", ts.Name, ts.Cycles)
		}
	}
	if *seen < 0 {
		t.Fatalf("slow task read a torn or foreign mirror value (%v)", *seen)
	}
	if m, v := tab.Samples[id(t, tab, "mirror")], tab.Samples[id(t, tab, "valve")]; m.Value != -1 || v.Value != 0 {
		t.Fatalf("final image mirror=%v valve=%v, want safe values -1 and 0", m.Value, v.Value)
	}
}

func TestRecordValueAllocatesNothing(t *testing.T) {
	h := hdrhistogram.New(1, int64(100*time.Millisecond), 3)
	v := int64(0)
	if n := testing.AllocsPerRun(10000, func() { v += 997; _ = h.RecordValue(v % int64(50*time.Millisecond)) }); n != 0 {
		t.Fatalf("RecordValue allocates %v times, want 0", n)
	}
}

// fifoPermitted reports whether this process may use SCHED_FIFO, or why not.
func fifoPermitted() error {
	done := make(chan error, 1)
	go func() {
		// A throwaway locked thread: it ends with the goroutine.
		st := rt.Thread{Priority: 1, CPU: -1}.Setup()
		if st.Degraded() {
			done <- errors.New(st.String())
			return
		}
		done <- nil
	}()
	return <-done
}

// TestRealSchedFIFO runs the executive for real: SCHED_FIFO threads, the
// monotonic clock, locked memory.
func TestRealSchedFIFO(t *testing.T) {
	if err := fifoPermitted(); err != nil {
		t.Skipf("SCHED_FIFO not permitted here: %v", err)
	}
	const cycles = 300
	e, _, _ := twoTasks(t, executive.Options{Cycles: cycles, KeepGC: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
	st := e.Status()
	t.Logf("%s", st.RT)
	for _, f := range st.RT.Facilities {
		if f.Name == rt.FacilitySchedFIFO && !f.OK {
			t.Fatalf("SCHED_FIFO failed in the run: %s", f.Detail)
		}
	}
	for i, h := range e.Histograms() {
		ts := st.Tasks[i]
		if h.Wake.TotalCount() != cycles || h.Exec.TotalCount() != cycles || ts.Cycles != cycles {
			t.Errorf("task %s: wake %d exec %d samples, %d cycles; want %d", h.Task, h.Wake.TotalCount(), h.Exec.TotalCount(), ts.Cycles, cycles)
		}
		t.Logf("task %s: wake p50 %v p99 %v max %v; exec max %v; overruns %d", h.Task,
			time.Duration(h.Wake.ValueAtQuantile(50)), time.Duration(h.Wake.ValueAtQuantile(99)), time.Duration(h.Wake.Max()),
			time.Duration(h.Exec.Max()), ts.Overruns)
	}
}

func TestDegradedIsReported(t *testing.T) {
	var st rt.Status
	st.Add(rt.FacilitySchedFIFO, true, "priority 80", &rt.SyscallError{Syscall: "sched_setattr", Err: syscall.EPERM})
	st.Add(rt.FacilityTimerSlack, false, "", unix.EINVAL)
	if got, want := st.String(), "rt: degraded (SCHED_FIFO: operation not permitted)"; got != want {
		t.Fatalf("status = %q, want %q", got, want)
	}
}

// BenchmarkCycle is one cycle of the executive over fakes: commands,
// inputs, a two-output program, outputs, image, heartbeat, histograms.
func BenchmarkCycle(b *testing.B) {
	r := newRig(b, configs.OverrunSkip, nil)
	b.ReportAllocs()
	for b.Loop() {
		r.exec.CycleForTest(0)
	}
}

// BenchmarkCycleTwoTasks adds the seqlock exchange between two tasks.
func BenchmarkCycleTwoTasks(b *testing.B) {
	e, _, _ := twoTasksTB(b, executive.Options{Clock: executivetest.NewClock(0), NoRealtime: true}, period)
	e.StartForTest()
	b.ReportAllocs()
	for b.Loop() {
		e.CycleForTest(0)
		e.CycleForTest(1)
	}
}
