package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLatencyRun(t *testing.T) {
	dir := t.TempDir()
	out, err := runSubcommand(t, newLatencyCmd(), "run", "--loops", "100", "--interval", "500us", "--cpus", "0", "--out", dir, "--keep-async-preempt")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "mkrt cpu0") || !strings.Contains(out, "rt: ") {
		t.Fatalf("output lacks the summary:\n%s", out)
	}
	for _, f := range []string{"summary.json", "histogram.txt", "mkrt.hlog"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := runSubcommand(t, newLatencyCmd(), "run", "--cpus", "x", "--keep-async-preempt"); err == nil {
		t.Fatal("bad cpulist accepted")
	}
}
