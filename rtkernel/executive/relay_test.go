package executive_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// gridProgram records each cycle's deadline and the thread that ran it, into
// slices made before the run (no allocation in the cycle).
type gridProgram struct {
	sched []time.Duration
	tids  []int
	n     int
	panic int // panic in this cycle (counting from 1); 0 never
}

func (p *gridProgram) Run(now, _ time.Duration) {
	if p.n < len(p.sched) {
		p.sched[p.n], p.tids[p.n] = now, rt.Tid()
	}
	p.n++
	if p.n == p.panic {
		panic("program bug")
	}
}
func (p *gridProgram) Outputs() []tag.ID { return nil }

// relayRun runs a 250 µs task on the real clock for cycles cycles (as a
// relay: real-time set-up on, degraded without root) and returns the
// program and Run's result.
func relayRun(t *testing.T, ctx context.Context, cycles, panicAt int) (*gridProgram, *executive.Executive, error) {
	t.Helper()
	const p = 250 * time.Microsecond
	cpu := runtime.NumCPU() - 1
	cfg, tab := plant(t, configs.Task{Name: "fast", Period: configs.Duration(p), CPU: &cpu})
	cfg.Watchdog.Overruns = 1 << 30 // a shared test machine overruns now and then
	prog := &gridProgram{sched: make([]time.Duration, cycles), tids: make([]int, cycles), panic: panicAt}
	e, err := executive.New(cfg, tab, func(string, *tag.Table) (executive.Program, error) { return prog, nil },
		nil, nil, executive.Options{Cycles: uint64(cycles)})
	if err != nil {
		t.Fatal(err)
	}
	return prog, e, e.Run(ctx)
}

// TestRelayRunsEachCycleOnce: a fast task's two threads take turns, and
// every cycle runs exactly once, on the task's grid, in order — the
// hand-over never loses or repeats a cycle.
func TestRelayRunsEachCycleOnce(t *testing.T) {
	const cycles = 400 // 100 ms: about a dozen hand-overs
	prog, e, err := relayRun(t, context.Background(), cycles, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := e.Status().Tasks[0]
	if prog.n != cycles || st.Cycles != cycles {
		t.Fatalf("program ran %d times, %d cycles counted; want %d", prog.n, st.Cycles, cycles)
	}
	threads := map[int]int{}
	for i := 1; i < cycles; i++ {
		if d := prog.sched[i] - prog.sched[i-1]; d <= 0 || d%(250*time.Microsecond) != 0 {
			t.Fatalf("cycle %d at %v after cycle %d: off the 250µs grid or out of order", i, d, i-1)
		}
		threads[prog.tids[i]]++
	}
	if st.Relays < 5 || len(threads) != 2 {
		t.Fatalf("%d hand-overs between %d threads in 100 ms; want at least 5 between 2 (one every %v)", st.Relays, len(threads), executive.RelayDuty)
	}
	if st.RelayTID == 0 || st.RelayTID == st.TID {
		t.Fatalf("thread ids %d and %d; want two", st.TID, st.RelayTID)
	}
	for tid := range threads {
		if tid != st.TID && tid != st.RelayTID {
			t.Fatalf("a cycle ran on thread %d, not one of the task's (%d, %d)", tid, st.TID, st.RelayTID)
		}
	}
	if s, _, _ := e.State(); s != wire.Stopping {
		t.Fatalf("state %v after the last cycle, want stopping", s)
	}
}

// TestRelayStops: cancelled while starting or in the middle of a relay, or
// faulted, Run returns, with the stop cycle run.
func TestRelayStops(t *testing.T) {
	done := make(chan error, 1)
	var e *executive.Executive
	for _, after := range []time.Duration{time.Millisecond, 30 * time.Millisecond, 300 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), after)
		go func() {
			var err error
			_, e, err = relayRun(t, ctx, 1<<20, 0)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Run did not return after its context ended at %v", after)
		}
		cancel()
		if s, _, _ := e.State(); s != wire.Stopping {
			t.Fatalf("state %v after a cancel at %v, want stopping", s, after)
		}
	}

	go func() {
		var err error
		_, e, err = relayRun(t, context.Background(), 1<<20, 100)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, executive.ErrFault) {
			t.Fatalf("Run = %v after a panic, want ErrFault", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the program panicked")
	}
}
