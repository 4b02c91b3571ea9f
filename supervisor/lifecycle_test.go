package supervisor_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/mkrt/mkrt/supervisor"
)

func TestLifecycleStartStop(t *testing.T) {
	var log []string
	l := supervisor.Lifecycle{Backend: "test"}
	if got := l.Records(); got != nil {
		t.Fatalf("records before any start = %v", got)
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Fatalf("stop before start: %v", err)
	}
	begun := 0
	begin := func() []supervisor.Step { begun++; return trace(&log, "", "") }
	if err := l.Start(context.Background(), begin); err != nil {
		t.Fatal(err)
	}
	err := l.Start(context.Background(), begin)
	if !errors.Is(err, supervisor.ErrStarted) || err.Error() != "test: partition already started (Stop it first)" {
		t.Fatalf("second start = %v, want test: … ErrStarted", err)
	}
	if begun != 1 {
		t.Fatalf("begin called %d times, want 1 (a refused start prepares nothing)", begun)
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range stepNames {
		want = append(want, "do "+n)
	}
	for i := len(stepNames) - 1; i >= 0; i-- {
		want = append(want, "undo "+stepNames[i])
	}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("ran %v\nwant %v", log, want)
	}
	if n := len(l.Records()); n != 2*len(stepNames) {
		t.Fatalf("%d records, want %d", n, 2*len(stepNames))
	}
	if err := l.Stop(context.Background()); err != nil || len(log) != len(want) {
		t.Fatalf("second stop: %v, ran %v", err, log[len(want):])
	}
	// Stopped, it starts again with a new runner.
	if err := l.Start(context.Background(), begin); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if n := len(l.Records()); n != len(stepNames) {
		t.Fatalf("%d records after restart, want the new start's %d", n, len(stepNames))
	}
}

func TestLifecycleFailedStartIsStopped(t *testing.T) {
	var log []string
	l := supervisor.Lifecycle{Backend: "test"}
	err := l.Start(context.Background(), func() []supervisor.Step { return trace(&log, "load", "") })
	var se *supervisor.StepError
	if !errors.As(err, &se) || se.Step != "load" {
		t.Fatalf("start = %v, want the load step's error", err)
	}
	undone := len(log)
	if err := l.Stop(context.Background()); err != nil || len(log) != undone {
		t.Fatalf("stop after a failed start undid again: %v, %v", err, log[undone:])
	}
	if err := l.Start(context.Background(), func() []supervisor.Step { return trace(&log, "", "") }); err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
}

func TestLifecycleConcurrentStartsAdmitOne(t *testing.T) {
	l := supervisor.Lifecycle{Backend: "test"}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Start(context.Background(), func() []supervisor.Step { return []supervisor.Step{{Name: "x"}} })
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, supervisor.ErrStarted):
			t.Errorf("start: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d starts admitted, want 1", ok)
	}
}

func TestEnding(t *testing.T) {
	e := supervisor.NewEnding()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait with a cancelled ctx = %v", err)
	}
	select {
	case <-e.Done():
		t.Fatal("done before End")
	default:
	}
	got := make(chan supervisor.Exit)
	go func() {
		x, _ := e.Wait(context.Background())
		got <- x
	}()
	e.End(supervisor.Exit{Code: 3})
	e.End(supervisor.Exit{Code: 4})
	if x := <-got; x.Code != 3 {
		t.Fatalf("waiter got %v, want the first End's exit status 3", x)
	}
	if x, err := e.Wait(ctx); err != nil || x.Code != 3 {
		t.Fatalf("wait after the end = %v, %v; want exit status 3 even with a cancelled ctx", x, err)
	}
}

// Stop during a start that waits abandons the start: it is undone, and the
// lifecycle is stopped.
func TestLifecycleStopDuringStart(t *testing.T) {
	var (
		log []string
		mu  sync.Mutex
	)
	booting := make(chan struct{})
	l := supervisor.Lifecycle{Backend: "test"}
	started := make(chan error, 1)
	go func() {
		started <- l.Start(context.Background(), func() []supervisor.Step { return blockingSteps(&log, &mu, booting) })
	}()
	<-booting
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-started; !errors.Is(err, context.Canceled) {
		t.Fatalf("start = %v, want it cancelled by the stop", err)
	}
	if err := l.Start(context.Background(), func() []supervisor.Step { return nil }); err != nil {
		t.Fatalf("start after the abandoned one: %v", err)
	}
}

func TestLifecycleWait(t *testing.T) {
	l := supervisor.Lifecycle{Backend: "test"}
	if _, err := l.Wait(context.Background()); !errors.Is(err, supervisor.ErrNotStarted) || err.Error() != "test: partition not started" {
		t.Fatalf("wait before any run = %v", err)
	}
	first := supervisor.NewEnding()
	l.Running(first)
	first.End(supervisor.Exit{Code: 1})
	if x, err := l.Wait(context.Background()); err != nil || x.Code != 1 || l.Ending() != first {
		t.Fatalf("wait = %v, %v", x, err)
	}
	second := supervisor.NewEnding()
	l.Running(second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on the running second run = %v", err)
	}
}
