package latency_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/latency"
)

// TestProgramTakesNoFaults runs the 1,000-block program at 1 ms for a few
// hundred cycles and checks that the measurement thread took no page fault
// after its warm-up (the first 40 cycles), that the execution time is
// reported beside the wake-up latency, and that the region file is gone.
func TestProgramTakesNoFaults(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: without mlockall the thread's pages can be reclaimed and faulted back in, so 0 faults is not the rule")
	}
	before, _ := filepath.Glob("/dev/shm/mkrt-latency-*")
	res, err := latency.Run(context.Background(), latency.Options{CPUs: []int{runtime.NumCPU() - 1}, Interval: time.Millisecond,
		Loops: 400, Blocks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	var out bytes.Buffer
	latency.FormatSummary(&out, s)
	t.Log("\n" + out.String())
	if s.Blocks != 1000 || s.MkrtExec.Merged.Samples != 400 || s.MkrtExec.Merged.P50US <= 0 {
		t.Fatalf("summary without the program's figures: blocks %d, exec %+v", s.Blocks, s.MkrtExec.Merged)
	}
	if len(s.PageFaults) != 1 || !s.PageFaults[0].Measured || s.PageFaults[0].SpanS < 0.1 {
		t.Fatalf("faults not measured over the run: %+v", s.PageFaults)
	}
	if f := s.PageFaults[0]; f.RTMinor != 0 || f.RTMajor != 0 {
		t.Fatalf("the measurement thread took page faults after warm-up: %+v", f)
	}
	if !strings.Contains(out.String(), "page faults after warm-up: rt threads minor 0 major 0; process minor") {
		t.Fatalf("no faults line:\n%s", out.String())
	}
	if after, _ := filepath.Glob("/dev/shm/mkrt-latency-*"); len(after) > len(before) {
		t.Fatalf("region left behind: %v", after)
	}
}
