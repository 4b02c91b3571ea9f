package latency_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/mkrt/mkrt/latency"
)

// TestTaskGoroutineNotPreempted guards against a cause of the latency
// tail: the Go runtime's sysmon preempting a real-time task's goroutine,
// which never blocks in the Go scheduler, once it has run 10 ms on its P
// (every 10-20 ms before the executive took those passes itself: 102 times
// in 2 s). It runs the 1,000-block program for 2 s at 250 µs on CPU 1
// under a Go execution trace and counts each goroutine's preemptions.
//
// The tracer preempts too: at each new generation (every second, and when
// it starts and stops) it preempts every running P to record its status
// (runtime.traceAdvance, forEachP). A task's two relay threads each hold a
// P, so up to two preemptions per generation belong to the tracer.
func TestTaskGoroutineNotPreempted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: without SCHED_FIFO and a pinned thread the task is preempted by the kernel, not only by the Go runtime")
	}
	if runtime.NumCPU() < 2 {
		t.Skip("needs CPU 1")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command to read the trace (go tool trace):", err)
	}
	file := filepath.Join(t.TempDir(), "trace.out")
	res, err := latency.Run(context.Background(), latency.Options{CPUs: []int{1}, Interval: 250 * time.Microsecond,
		Duration: 2 * time.Second, Blocks: 1000, GoTrace: file})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s; wake p99.9 %.1fµs max %.1fµs; %v", res.Summary.RT, res.Summary.Mkrt.Merged.P999US, res.Summary.Mkrt.Merged.MaxUS, res.Summary.Yields)
	out, err := exec.Command(goBin, "tool", "trace", "-d=parsed", file).Output()
	if err != nil {
		t.Fatalf("go tool trace: %v", err)
	}
	counts := preemptions(out)
	t.Logf("preemptions per goroutine: %v", counts)
	const tracer = 2 * 4 // two Ps at each of about four generations (start, 1 s, 2 s, stop)
	for g, n := range counts {
		if n > tracer {
			t.Errorf("goroutine %s was preempted %d times in 2 s; the tracer accounts for %d at most", g, n, tracer)
		}
	}
}

var preemptedLine = regexp.MustCompile(`GoID=(\d+) Running->Runnable Reason="preempted"`)

// preemptions counts the preemptions of each goroutine in the output of
// `go tool trace -d=parsed`, lines such as
// `M=1 P=0 G=8 StateTransition Time=… GoID=8 Running->Runnable Reason="preempted"`.
func preemptions(parsed []byte) map[string]int {
	n := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(parsed))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := preemptedLine.FindSubmatch(sc.Bytes()); m != nil {
			n[string(m[1])]++
		}
	}
	return n
}
