package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

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
