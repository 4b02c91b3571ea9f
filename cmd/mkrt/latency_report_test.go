package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/latency/report"
)

const latencyTestHist = `# Histogram
000000 000000
000001 000050
000002 000040
000003 000010
# Total: 000000100
# Min Latencies: 00001
# Avg Latencies: 00001
# Max Latencies: 00003
# Histogram Overflows: 00000
`

func runSubcommand(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestLatencyReportAndCompare(t *testing.T) {
	t.Setenv("MKRT_BOARDS", t.TempDir())
	root := t.TempDir()
	hist := filepath.Join(root, "hist.txt")
	os.WriteFile(hist, []byte(latencyTestHist), 0o644)
	base, same, worse := filepath.Join(root, "base"), filepath.Join(root, "same"), filepath.Join(root, "worse")
	for _, d := range []string{base, same} {
		out, err := runSubcommand(t, latencyReportCmd(), d, "--cyclictest", hist, "--board", "rpi4", "--load", "idle", "--formats", "svg")
		if err != nil || !strings.Contains(out, "verdict pass") {
			t.Fatalf("report: %v\n%s", err, out)
		}
	}
	os.WriteFile(hist, []byte(strings.Replace(latencyTestHist, "000003 000010", "000003 000000\n000020 000010", 1)+""), 0o644)
	if _, err := runSubcommand(t, latencyReportCmd(), worse, "--cyclictest", hist, "--board", "rpi4", "--formats", "svg"); err != nil {
		t.Fatal(err)
	}
	sum, err := report.ReadSummary(base)
	if err != nil || sum.Board != "rpi4" || sum.BudgetUS != 150 || sum.Totals[0].Samples != 100 {
		t.Fatalf("summary %+v %v", sum, err)
	}

	plot := filepath.Join(root, "cmp.svg")
	out, err := runSubcommand(t, latencyCompareCmd(), base, same, "--fail-on-regression", "--plot", plot)
	if err != nil || !strings.Contains(out, "no regression") {
		t.Fatalf("equal runs: %v\n%s", err, out)
	}
	if fi, err := os.Stat(plot); err != nil || fi.Size() == 0 {
		t.Fatalf("plot: %v", err)
	}
	out, err = runSubcommand(t, latencyCompareCmd(), base, worse, "--threshold", "20%", "--plot", "")
	if err != nil || !strings.Contains(out, "regression(s)") {
		t.Fatalf("without --fail-on-regression: %v\n%s", err, out)
	}
	_, err = runSubcommand(t, latencyCompareCmd(), base, worse, "--fail-on-regression", "--plot", "")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("regression exit: %v", err)
	}
	if _, err := runSubcommand(t, latencyCompareCmd(), base, "--threshold", "lots"); err == nil {
		t.Fatal("bad threshold accepted")
	}

	// Regenerate from summary.json.
	os.Remove(filepath.Join(base, "README.md"))
	if _, err := runSubcommand(t, latencyReportCmd(), base, "--formats", "svg"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(base, "README.md")); err != nil {
		t.Fatal(err)
	}
}

func TestLatencyReportFlagsAndMeta(t *testing.T) {
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	f := addLatencyReportFlags(cmd)
	if _, err := runSubcommand(t, cmd, "--report", "out", "--formats", "png"); err != nil {
		t.Fatal(err)
	}
	if f.Dir != "out" || len(f.options().Formats) != 1 {
		t.Fatalf("flags %+v", f)
	}
	host := fstest.MapFS{
		"proc/sys/kernel/osrelease": {Data: []byte("6.1.0-31-rt-amd64\n")},
		"proc/sys/kernel/version":   {Data: []byte("#1 SMP PREEMPT_RT Debian\n")},
		"sys/kernel/realtime":       {Data: []byte("1\n")},
	}
	m, err := latencyReportMeta(host, "qemu-x86_64", "cpu")
	if err != nil || !m.RTKernel || m.Budget.Milliseconds() != 2 || !strings.HasPrefix(m.Kernel, "6.1.0-31-rt-amd64 #1") {
		t.Fatalf("meta %+v %v", m, err)
	}
	if _, err := latencyReportMeta(host, "nope", ""); err == nil {
		t.Fatal("unknown board accepted")
	}
}
