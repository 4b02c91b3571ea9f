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
	if _, err := runSubcommand(t, newLatencyCmd(), "run", "--find-min-period", "--keep-async-preempt"); err == nil || !strings.Contains(err.Error(), "--budget") {
		t.Fatalf("--find-min-period without a budget: %v", err)
	}
}

func TestLatencyRunProgram(t *testing.T) {
	dir := t.TempDir()
	out, err := runSubcommand(t, newLatencyCmd(), "run", "--loops", "200", "--interval", "1ms", "--cpus", "0", "--blocks", "990", "--rounds", "2",
		"--out", dir, "--formats", "svg", "--keep-async-preempt")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"program: 1000 blocks per task", "mkrt exec cpu0", "page faults after warm-up, 2 rounds: rt threads minor", "yields in the slack (longest"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	js, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"mkrt_exec"`) || !strings.Contains(string(js), `"page_faults"`) || !strings.Contains(string(js), `"max_yield_us"`) {
		t.Fatalf("summary.json lacks the run's own figures")
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Percentiles", "## Execution time (µs)", "| mkrt exec cpu0 | 200 |", "## Page faults", "Page faults after warm-up, 2 rounds"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md lacks %q:\n%s", want, readme)
		}
	}
}

// With --find-min-period the report folder shows the step at the minimum
// period (here the first, which fails a 1 µs budget) and the ladder as a
// section of its README.md.
func TestLatencyRunMinPeriodReport(t *testing.T) {
	dir := t.TempDir()
	out, err := runSubcommand(t, newLatencyCmd(), "run", "--find-min-period", "--budget", "1us", "--duration", "300ms", "--cpus", "0",
		"--out", dir, "--formats", "svg", "--keep-async-preempt")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| interval | 1 ms |", "## Execution time (µs)", "## Minimum period", "the step at 1ms", "| 1ms |"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md lacks %q:\n%s", want, readme)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "min-period.json")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "min-period.md")); err == nil {
		t.Error("min-period.md is still written")
	}
}
