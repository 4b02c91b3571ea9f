package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor"
)

var stepNames = []string{"check", "isolate-cpus", "move-irqs", "assign-nics", "shared-memory", "load", "start", "first-heartbeat"}

// trace builds steps that append "do X"/"undo X" to log and fail where told.
func trace(log *[]string, failDo, failUndo string) []supervisor.Step {
	var steps []supervisor.Step
	for _, n := range stepNames {
		steps = append(steps, supervisor.Step{
			Name: n,
			Do: func(context.Context) error {
				*log = append(*log, "do "+n)
				if n == failDo {
					return fmt.Errorf("injected %s failure", n)
				}
				return nil
			},
			Undo: func(context.Context) error {
				*log = append(*log, "undo "+n)
				if n == failUndo {
					return errors.New("injected undo failure")
				}
				return nil
			},
		})
	}
	return steps
}

func TestRunnerUnwindsAtEveryFailurePoint(t *testing.T) {
	for k, failing := range stepNames {
		t.Run(failing, func(t *testing.T) {
			var log []string
			r := supervisor.NewRunner(trace(&log, failing, ""), nil, nil)
			err := r.Run(context.Background())
			var se *supervisor.StepError
			if !errors.As(err, &se) || se.Step != failing || se.Action != "do" {
				t.Fatalf("Run error = %v, want a StepError of step %s", err, failing)
			}
			var want []string
			for i := 0; i <= k; i++ {
				want = append(want, "do "+stepNames[i])
			}
			for i := k - 1; i >= 0; i-- {
				want = append(want, "undo "+stepNames[i])
			}
			if !reflect.DeepEqual(log, want) {
				t.Fatalf("ran %q\nwant %q", log, want)
			}
			if recs := r.Records(); len(recs) != len(want) {
				t.Fatalf("records %v, want %d entries", recs, len(want))
			}
			// A later Unwind has nothing left to undo.
			if err := r.Unwind(context.Background()); err != nil || len(log) != len(want) {
				t.Fatalf("second unwind: err %v, log %q", err, log)
			}
		})
	}
}

func TestRunnerUnwindRunsEveryUndoDespiteErrors(t *testing.T) {
	var log []string
	r := supervisor.NewRunner(trace(&log, "", "move-irqs"), nil, nil)
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	log = nil
	err := r.Unwind(context.Background())
	var se *supervisor.StepError
	if !errors.As(err, &se) || se.Step != "move-irqs" || se.Action != "undo" {
		t.Fatalf("Unwind error = %v, want the move-irqs undo failure", err)
	}
	if len(log) != len(stepNames) || log[0] != "undo first-heartbeat" || log[len(log)-1] != "undo check" {
		t.Fatalf("undo order %q", log)
	}
}

func TestRunnerStopsOnCancelAndStillUnwinds(t *testing.T) {
	var log []string
	steps := trace(&log, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	steps[2].Do = func(context.Context) error { log = append(log, "do move-irqs"); cancel(); return nil }
	err := supervisor.NewRunner(steps, nil, nil).Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	want := []string{"do check", "do isolate-cpus", "do move-irqs", "undo move-irqs", "undo isolate-cpus", "undo check"}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("ran %q, want %q", log, want)
	}
}

func TestRunnerRunsOnce(t *testing.T) {
	r := supervisor.NewRunner(nil, nil, nil)
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

// blockingSteps is check, then a boot that runs until its ctx ends (and
// says when it began), each recording its do and undo in log.
func blockingSteps(log *[]string, mu *sync.Mutex, booting chan<- struct{}) []supervisor.Step {
	add := func(s string) { mu.Lock(); *log = append(*log, s); mu.Unlock() }
	return []supervisor.Step{
		{Name: "check", Do: func(context.Context) error { add("do check"); return nil },
			Undo: func(context.Context) error { add("undo check"); return nil }},
		{Name: "boot", Do: func(ctx context.Context) error {
			add("do boot")
			close(booting)
			<-ctx.Done()
			return ctx.Err()
		}, Undo: func(context.Context) error { add("undo boot"); return nil }},
	}
}

// A step that waits holds no lock of the runner: Records answers, and an
// Unwind cancels the run, which undoes what it did.
func TestRunnerUnwindDuringRunCancelsIt(t *testing.T) {
	var (
		log []string
		mu  sync.Mutex
	)
	booting := make(chan struct{})
	r := supervisor.NewRunner(blockingSteps(&log, &mu, booting), nil, nil)
	ran := make(chan error, 1)
	go func() { ran <- r.Run(context.Background()) }()
	<-booting
	if recs := r.Records(); len(recs) != 1 || recs[0].Name != "check" {
		t.Fatalf("records during the boot = %v", recs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Unwind(ctx); err != nil {
		t.Fatalf("unwind: %v", err)
	}
	if err := <-ran; !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v, want it cancelled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"do check", "do boot", "undo check"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("ran %q, want %q", log, want)
	}
}

// An Unwind waits for a run in progress no longer than its own context.
func TestRunnerUnwindIsBounded(t *testing.T) {
	release := make(chan struct{})
	booting := make(chan struct{})
	r := supervisor.NewRunner([]supervisor.Step{{Name: "boot", Do: func(context.Context) error {
		close(booting)
		<-release // ignores its ctx, as a stuck system call would
		return nil
	}, Undo: func(context.Context) error { return nil }}}, nil, nil)
	ran := make(chan error, 1)
	go func() { ran <- r.Run(context.Background()) }()
	<-booting
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Unwind(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unwind = %v, want its deadline", err)
	}
	close(release)
	// The run was asked to stop: it undoes itself even though its step succeeded.
	var se *supervisor.StepError
	if err := <-ran; !errors.As(err, &se) || !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v, want a stopped start", err)
	}
	if recs := r.Records(); len(recs) != 2 || recs[1].Action != "undo" {
		t.Fatalf("records %v, want the boot done and undone", recs)
	}
}
