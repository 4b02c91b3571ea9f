package latency_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mkrt/mkrt/latency"
)

func parseFile(t *testing.T, name string) []latency.Micros {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := latency.ParseCyclictest(f)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The testdata files are recorded cyclictest runs:
//
//	cyclictest -m -p 80 -i 1000 -a 1 -t 1 -q -h 200 -l 2000
//	cyclictest -m -p 80 -i 1000 -a 0,1 -t 2 -q -h 100 -l 500
func TestParseCyclictest(t *testing.T) {
	one := parseFile(t, "cyclictest-1thread.txt")
	if len(one) != 1 {
		t.Fatalf("%d threads, want 1", len(one))
	}
	m := one[0]
	if len(m.Counts) != 200 || m.Samples() != 2000 || m.Overflows != 27 || m.MinUS != 12 || m.AvgUS != 75 || m.MaxUS != 1900 {
		t.Fatalf("parsed %d buckets, %d samples, %d overflows, min %d avg %d max %d", len(m.Counts), m.Samples(), m.Overflows, m.MinUS, m.AvgUS, m.MaxUS)
	}
	if m.Counts[12] != 1 || m.Counts[51] != 20 {
		t.Errorf("buckets 12, 51 = %d, %d; want 1, 20", m.Counts[12], m.Counts[51])
	}
	if p := m.Percentile(100); p != 1900 {
		t.Errorf("p100 = %d, want the max 1900 (overflows)", p)
	}
	two := parseFile(t, "cyclictest-2threads.txt")
	if len(two) != 2 || two[0].Samples() != 500 || two[1].Samples() != 500 || two[0].Overflows != 53 || two[1].MaxUS != 1052 {
		t.Fatalf("two threads parsed as %+v", two)
	}
	for _, h := range append(one, two...) {
		monotonic(t, latency.StatsOfMicros(h))
	}
}

func TestParseCyclictestRejects(t *testing.T) {
	for name, text := range map[string]string{
		"empty":      "",
		"no rows":    "# Histogram\n# Total: 000000000\n",
		"garbage":    "# Histogram\n000000 abc\n",
		"gap":        "# Histogram\n000000 000001\n000002 000001\n",
		"columns":    "# Histogram\n000000 000001 000002\n000001 000001\n",
		"max fields": "# Histogram\n000000 000001\n# Max Latencies: 00001 00002\n",
	} {
		if _, err := latency.ParseCyclictest(bytes.NewBufferString(text)); !errors.Is(err, latency.ErrHistogram) {
			t.Errorf("%s: err = %v, want ErrHistogram", name, err)
		}
	}
}

func TestWriteCyclictestRoundTrip(t *testing.T) {
	in := parseFile(t, "cyclictest-2threads.txt")
	var buf bytes.Buffer
	if err := latency.WriteCyclictest(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := latency.ParseCyclictest(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.Samples() != b.Samples() || a.Overflows != b.Overflows || a.MinUS != b.MinUS || a.AvgUS != b.AvgUS || a.MaxUS != b.MaxUS || len(a.Counts) != len(b.Counts) {
			t.Fatalf("thread %d: round trip %+v != %+v", i, b, a)
		}
	}
}

func TestMicrosOf(t *testing.T) {
	h := hdrhistogram.New(1, int64(time.Second), 3)
	for _, ns := range []int64{1500, 1999, 2000, 7000, 250_000, 50_000_000} {
		_ = h.RecordValue(ns)
	}
	m := latency.MicrosOf(h, 1000)
	if m.Counts[1] != 2 || m.Counts[2] != 1 || m.Counts[7] != 1 || m.Counts[250] != 1 || m.Overflows != 1 || m.Samples() != 6 {
		t.Fatalf("binned = 1:%d 2:%d 7:%d 250:%d overflow %d", m.Counts[1], m.Counts[2], m.Counts[7], m.Counts[250], m.Overflows)
	}
	if m.MinUS != 1 || m.MaxUS < 49_900 || m.Percentile(50) != 2 {
		t.Fatalf("min %d max %d p50 %d", m.MinUS, m.MaxUS, m.Percentile(50))
	}
	if hh := m.Histogram(); hh.TotalCount() != 6 {
		t.Fatalf("as histogram: %d samples, want 6", hh.TotalCount())
	}
}

func monotonic(t *testing.T, s latency.Stats) {
	t.Helper()
	v := []float64{s.MinUS, s.P50US, s.P90US, s.P99US, s.P999US, s.P9999US, s.MaxUS}
	for i := 1; i < len(v); i++ {
		if v[i] < v[i-1] {
			t.Fatalf("figures not monotonic: %v", v)
		}
	}
	if s.AvgUS < s.MinUS || s.AvgUS > s.MaxUS {
		t.Fatalf("avg %v outside min/max %v/%v", s.AvgUS, s.MinUS, s.MaxUS)
	}
}

// TestRun measures 300 cycles on the executive's loop for real (degraded
// without root, which the summary says) and checks every output file.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	var progress int
	res, err := latency.Run(context.Background(), latency.Options{Loops: 300, Interval: 500 * time.Microsecond, OutDir: dir,
		LogInterval: 50 * time.Millisecond, Progress: func(latency.Progress) { progress++ }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: p50 %.1fµs max %.1fµs", res.Summary.RT, res.Summary.Mkrt.Merged.P50US, res.Summary.Mkrt.Merged.MaxUS)
	if n := res.Threads[0].Wake.TotalCount(); n != 300 || res.Merged.TotalCount() != 300 || res.Threads[0].Micros.Samples() != 300 {
		t.Fatalf("samples = %d (merged %d, binned %d), want 300", n, res.Merged.TotalCount(), res.Threads[0].Micros.Samples())
	}
	monotonic(t, res.Summary.Mkrt.Merged)
	if progress == 0 {
		t.Error("no progress reported")
	}
	f, err := os.Open(filepath.Join(dir, latency.IntervalLogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := hdrhistogram.NewHistogramLogReader(f)
	var logged int64
	for {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			t.Fatalf("interval log: %v", err)
		}
		if h == nil {
			break
		}
		if h.Tag() != "cpu0" {
			t.Fatalf("interval tag %q, want cpu0", h.Tag())
		}
		logged += h.TotalCount()
	}
	if logged != 300 {
		t.Fatalf("interval log holds %d samples, want 300", logged)
	}
	b, err := os.ReadFile(filepath.Join(dir, latency.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var sum latency.Summary
	if err := json.Unmarshal(b, &sum); err != nil || sum.Mkrt.Merged.Samples != 300 || sum.RT == "" {
		t.Fatalf("summary.json: %v %+v", err, sum)
	}
	parsed := parseOut(t, dir, latency.HistogramFile)
	if parsed[0].Samples() != 300 {
		t.Fatalf("histogram.txt holds %d samples", parsed[0].Samples())
	}
}

func parseOut(t *testing.T, dir, name string) []latency.Micros {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := latency.ParseCyclictest(f)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRunRejects(t *testing.T) {
	for _, o := range []latency.Options{{Priority: 100}, {Interval: 1500 * time.Nanosecond}, {CPUs: []int{1, 1}}, {Rounds: -1}, {Blocks: -1}} {
		if _, err := latency.Run(context.Background(), o); !errors.Is(err, latency.ErrOptions) {
			t.Errorf("%+v: err = %v, want ErrOptions", o, err)
		}
	}
	if _, err := latency.Run(context.Background(), latency.Options{VsCyclictest: true, Cyclictest: "/nonexistent/cyclictest", Loops: 1}); !errors.Is(err, latency.ErrNoCyclictest) {
		t.Errorf("missing cyclictest: %v", err)
	}
}

// TestVsCyclictest is an integration test against the real cyclictest.
func TestVsCyclictest(t *testing.T) {
	if _, err := exec.LookPath("cyclictest"); err != nil {
		t.Skip("cyclictest not installed (Debian package rt-tests): ", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("cyclictest -m -p needs root")
	}
	const loops = 400
	dir := t.TempDir()
	res, err := latency.Run(context.Background(), latency.Options{VsCyclictest: true, Loops: loops, Rounds: 2, CPUs: []int{0}, OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	if s.Cyclictest == nil || s.MkrtMicros == nil || len(s.Comparison) != 4 {
		t.Fatalf("summary without both sides: %+v", s)
	}
	if s.Mkrt.Merged.Samples != loops || s.Cyclictest.Merged.Samples != loops || s.MkrtMicros.Merged.Samples != loops {
		t.Fatalf("samples mkrt %d (binned %d), cyclictest %d; want %d each", s.Mkrt.Merged.Samples, s.MkrtMicros.Merged.Samples, s.Cyclictest.Merged.Samples, loops)
	}
	for _, st := range []latency.Stats{s.Mkrt.Merged, s.MkrtMicros.Merged, s.Cyclictest.Merged} {
		monotonic(t, st)
	}
	for _, r := range s.Comparison {
		if r.CyclictestUS > 0 && r.Ratio != r.MkrtUS/r.CyclictestUS {
			t.Errorf("ratio %+v inconsistent", r)
		}
	}
	if ct := parseOut(t, dir, latency.CyclictestFile); ct[0].Samples() != loops {
		t.Fatalf("cyclictest.txt holds %d samples, want %d", ct[0].Samples(), loops)
	}
	var out bytes.Buffer
	latency.FormatSummary(&out, s)
	t.Log("\n" + out.String())
}

// The page faults of a run are one line of totals; a round gets a line of
// its own only when it took a fault.
func TestPageFaultLines(t *testing.T) {
	rounds := []latency.PageFaults{
		{Round: 1, Measured: true, SpanS: 0.4},
		{Round: 2, Measured: true, SpanS: 0.4, RTMinor: 2, ProcMin: 5},
		{Round: 3},
		{Round: 4, Measured: true, SpanS: 0.4, ProcMaj: 1},
	}
	got := strings.Join(latency.PageFaultLines(rounds), "\n")
	want := "page faults after warm-up, 3 rounds: rt threads minor 2 major 0; process minor 5 major 1 (over 1.2s); round 3 not measured (too short, or no /proc)\n" +
		"  round 2: rt threads minor 2 major 0; process minor 5 major 0 (over 0.4s)\n" +
		"  round 4: rt threads minor 0 major 0; process minor 0 major 1 (over 0.4s)"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	one := latency.PageFaultLines(rounds[:1])
	if len(one) != 1 || one[0] != "page faults after warm-up: rt threads minor 0 major 0; process minor 0 major 0 (over 0.4s)" {
		t.Fatalf("one round: %q", one)
	}
	if none := latency.PageFaultLines(rounds[2:3]); !strings.Contains(none[0], "not measured") {
		t.Fatalf("no measured round: %q", none)
	}
}

// A run's report sections: the execution time per thread and merged, and
// the page-fault lines.
func TestReportSections(t *testing.T) {
	s := latency.Summary{Blocks: 1000, PageFaults: []latency.PageFaults{{Round: 1, Measured: true, SpanS: 1, RTMinor: 3}, {Round: 2, Measured: true, SpanS: 1}}}
	s.MkrtExec.Threads = []latency.ThreadStats{{CPU: 0, Stats: latency.Stats{Samples: 10, P50US: 15}}, {CPU: 1, Stats: latency.Stats{Samples: 10, MaxUS: 90}}}
	s.MkrtExec.Merged = latency.Stats{Samples: 20, MaxUS: 90}
	secs := latency.ReportSections(s)
	if len(secs) != 2 {
		t.Fatalf("%d sections", len(secs))
	}
	for _, want := range []string{"| mkrt exec cpu0 | 10 | 15.0 |", "| **mkrt exec (all)** | 20 |", "1000 blocks per task"} {
		if !strings.Contains(secs[0].Markdown, want) {
			t.Errorf("execution time lacks %q:\n%s", want, secs[0].Markdown)
		}
	}
	if !strings.Contains(secs[1].Markdown, "Page faults after warm-up, 2 rounds: rt threads minor 3") || !strings.Contains(secs[1].Markdown, "- round 1: rt threads minor 3") {
		t.Errorf("page faults:\n%s", secs[1].Markdown)
	}
}

func TestYieldsLine(t *testing.T) {
	for _, c := range []struct {
		y    latency.Yields
		want string
	}{
		{latency.Yields{CPU: 1, Yields: 1234, MaxYieldUS: 1300}, "cpu1: 1,234 yields in the slack (longest 1.3 ms)"},
		{latency.Yields{CPU: 0, Yields: 999, MaxYieldUS: 45.4}, "cpu0: 999 yields in the slack (longest 45 µs)"},
		{latency.Yields{CPU: 3, Yields: 1234567}, "cpu3: 1,234,567 yields in the slack (longest 0 µs)"},
		{latency.Yields{CPU: 1, Yields: 3, MaxYieldUS: 128, Relays: 8000}, "cpu1: 3 yields in the slack (longest 128 µs), 8,000 relays between its two threads"},
	} {
		if got := c.y.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.y, got, c.want)
		}
	}
}
