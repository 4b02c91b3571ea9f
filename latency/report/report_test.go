package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// synthetic records n latencies around base with a long tail, in unit, from
// a fixed seed.
func synthetic(seed uint64, n int, base, tail time.Duration, unit time.Duration) *hdrhistogram.Histogram {
	h := hdrhistogram.New(1, int64(time.Second/unit), 3)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < n; i++ {
		d := base + time.Duration(r.ExpFloat64()*float64(base)/4)
		if i%997 == 0 {
			d += time.Duration(r.Float64() * float64(tail))
		}
		h.RecordValue(int64(d / unit))
	}
	return h
}

func testSeries(seed uint64, tail time.Duration) []Series {
	return []Series{
		{Label: "mkrt cpu1", Source: "mkrt", Hist: synthetic(seed, 20000, 6*time.Microsecond, tail, time.Nanosecond), Unit: time.Nanosecond},
		{Label: "mkrt cpu1 task2", Source: "mkrt", Hist: synthetic(seed+1, 20000, 7*time.Microsecond, tail, time.Nanosecond), Unit: time.Nanosecond},
		{Label: "cyclictest T0", Source: "cyclictest", Hist: synthetic(seed+2, 20000, 5*time.Microsecond, tail, time.Microsecond)},
	}
}

func testMeta() Meta {
	return Meta{Board: "qemu-x86_64", Budget: 100 * time.Microsecond, BudgetNote: "nominal", Load: "cpu: stress-ng --cpu 2",
		Kernel: "6.1.0-31-rt-amd64 #1 SMP PREEMPT_RT", RT: "PREEMPT_RT, SCHED_FIFO 95", RTKernel: true,
		Duration: time.Minute, Interval: time.Millisecond, Priority: 95, CPUs: []int{1},
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Host: "testhost"}
}

func checkPNG(t *testing.T, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 300 {
		t.Fatalf("%s: %v is too small", file, b)
	}
	bg := img.At(b.Min.X, b.Min.Y)
	colours := map[[4]uint32]bool{}
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			c := img.At(x, y)
			if !sameColour(c, bg) {
				ink++
				r, g, bl, a := c.RGBA()
				colours[[4]uint32{r >> 12, g >> 12, bl >> 12, a >> 12}] = true
			}
		}
	}
	// Axes, labels and at least two coloured series lines.
	if ink < 2000 || len(colours) < 4 {
		t.Fatalf("%s: %d non-background pixels in %d colours", file, ink, len(colours))
	}
}

func sameColour(a, b interface{ RGBA() (r, g, b, a uint32) }) bool {
	r1, g1, b1, a1 := a.RGBA()
	r2, g2, b2, a2 := b.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2 && a1 == a2
}

var _ image.Image // png.Decode returns one

func checkSVG(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	root, paths := "", 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: not XML: %v", file, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "path" {
				paths++
			}
		}
	}
	if root != "svg" || paths < 10 {
		t.Fatalf("%s: root %q with %d paths", file, root, paths)
	}
}

func TestWriteReportFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run1")
	series := testSeries(1, 40*time.Microsecond)
	sum, err := Write(dir, testMeta(), series, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"histogram.png", "percentiles.png"} {
		checkPNG(t, filepath.Join(dir, f))
	}
	for _, f := range []string{"histogram.svg", "percentiles.svg"} {
		checkSVG(t, filepath.Join(dir, f))
	}

	// The summary on disk is the one returned, and consistent.
	got, err := ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(sum)
	b, _ := json.Marshal(got)
	if !bytes.Equal(a, b) {
		t.Fatal("summary.json differs from the returned summary")
	}
	if len(got.Series) != 3 || len(got.Totals) != 2 || got.Totals[0].Source != "mkrt" || got.Totals[1].Source != "cyclictest" {
		t.Fatalf("series %d totals %+v", len(got.Series), got.Totals)
	}
	if got.Totals[0].Samples != got.Series[0].Samples+got.Series[1].Samples {
		t.Fatalf("mkrt total %d != %d + %d", got.Totals[0].Samples, got.Series[0].Samples, got.Series[1].Samples)
	}
	for _, ss := range append(got.Series, got.Totals...) {
		if ss.Samples != 20000 && ss.Samples != 40000 {
			t.Errorf("%s: %d samples", ss.Label, ss.Samples)
		}
		prev := ss.MinUS
		for _, p := range ss.Percentiles {
			if p.US < prev {
				t.Errorf("%s: p%g = %g below the previous %g", ss.Label, p.P, p.US, prev)
			}
			prev = p.US
		}
		if ss.MaxUS < prev || ss.MeanUS < ss.MinUS || ss.MeanUS > ss.MaxUS {
			t.Errorf("%s: min %g mean %g max %g p99.999 %g", ss.Label, ss.MinUS, ss.MeanUS, ss.MaxUS, prev)
		}
	}
	if got.Verdict != VerdictPass || !strings.Contains(got.VerdictReason, "within") {
		t.Errorf("verdict %s: %s", got.Verdict, got.VerdictReason)
	}

	// The text histogram holds every sample and the same maxima.
	f, err := os.Open(filepath.Join(dir, HistogramText))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := ReadHistogramText(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 {
		t.Fatalf("%d columns", len(back))
	}
	for i, s := range back {
		if s.Hist.TotalCount() != got.Series[i].Samples {
			t.Errorf("column %d: %d samples, summary %d", i, s.Hist.TotalCount(), got.Series[i].Samples)
		}
		if d := math.Abs(s.us(s.Hist.Max()) - got.Series[i].MaxUS); d > 1.01 {
			t.Errorf("column %d: max %v, summary %v", i, s.us(s.Hist.Max()), got.Series[i].MaxUS)
		}
	}

	readme, err := os.ReadFile(filepath.Join(dir, ReadmeFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"**Verdict: PASS**", "| board | qemu-x86_64 |", "![latency histogram](histogram.png)",
		"![latency by percentile](percentiles.png)", "| mkrt cpu1 | 20000 |", "**mkrt (all)**", "SCHED_FIFO 95", "PREEMPT_RT"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
}

func TestVerdicts(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(m *Meta)
		tail   time.Duration
		want   Verdict
		reason string
	}{
		{"over budget", func(m *Meta) {}, 500 * time.Microsecond, VerdictFail, "exceeds"},
		{"no budget", func(m *Meta) { m.Budget = 0 }, 0, VerdictNone, "no latency budget"},
		{"not rt", func(m *Meta) { m.RTKernel = false }, 0, VerdictPass, "Not a PREEMPT_RT kernel"},
	}
	for _, c := range cases {
		m := testMeta()
		c.edit(&m)
		s, err := Summarize(m, testSeries(3, c.tail))
		if err != nil {
			t.Fatal(err)
		}
		if s.Verdict != c.want || !strings.Contains(s.VerdictReason, c.reason) {
			t.Errorf("%s: %s %q", c.name, s.Verdict, s.VerdictReason)
		}
	}
	empty := []Series{{Label: "x", Source: "mkrt", Hist: hdrhistogram.New(1, 1000, 3)}}
	s, err := Summarize(testMeta(), empty)
	if err != nil || s.Verdict != VerdictNone {
		t.Fatalf("empty: %v %v", s, err)
	}
	if _, err := Write(t.TempDir(), testMeta(), empty, Options{}); err != nil {
		t.Fatalf("a run without samples still gets a report: %v", err)
	}
}

func TestWriteErrors(t *testing.T) {
	if _, err := Write(t.TempDir(), Meta{}, nil, Options{}); !errors.Is(err, ErrNoSeries) {
		t.Fatalf("no series: %v", err)
	}
	if _, err := Write(t.TempDir(), Meta{}, []Series{{Label: "x"}}, Options{}); !errors.Is(err, ErrNoSeries) {
		t.Fatalf("nil histogram: %v", err)
	}
	mixed := []Series{{Label: "a", Source: "s", Hist: synthetic(1, 10, time.Microsecond, 0, time.Microsecond)},
		{Label: "b", Source: "s", Unit: time.Nanosecond, Hist: synthetic(1, 10, time.Microsecond, 0, time.Nanosecond)}}
	if _, err := Summarize(Meta{}, mixed); err == nil {
		t.Fatal("mixed units in one source accepted")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, SummaryFile), []byte(`{"schema": 99}`), 0o644)
	if _, err := ReadSummary(dir); !errors.Is(err, ErrBadSummary) {
		t.Fatalf("bad schema: %v", err)
	}
	os.WriteFile(filepath.Join(dir, SummaryFile), []byte(`{`), 0o644)
	if _, err := ReadSummary(dir); !errors.Is(err, ErrBadSummary) {
		t.Fatalf("bad JSON: %v", err)
	}
}

func TestRunnerHistogramTextIsKept(t *testing.T) {
	dir := t.TempDir()
	own := []byte("# Histogram\n000000 000001\n# Total: 000000001\n")
	os.WriteFile(filepath.Join(dir, HistogramText), own, 0o644)
	if _, err := Write(dir, testMeta(), testSeries(5, 0), Options{Formats: []string{"svg"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, HistogramText))
	if !bytes.Equal(got, own) {
		t.Fatal("the runner's histogram.txt was overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "histogram.png")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("png written though only svg was asked for")
	}
	readme, _ := os.ReadFile(filepath.Join(dir, ReadmeFile))
	if !strings.Contains(string(readme), "histogram.svg") {
		t.Fatal("README does not embed the svg plots")
	}
}

func TestRewrite(t *testing.T) {
	dir := t.TempDir()
	want, err := Write(dir, testMeta(), testSeries(7, 30*time.Microsecond), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"histogram.png", "README.md", "histogram.txt"} {
		os.Remove(filepath.Join(dir, f))
	}
	got, err := Rewrite(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Totals[0].MaxUS != want.Totals[0].MaxUS || got.Series[2].Samples != want.Series[2].Samples {
		t.Fatal("rewrite changed the figures")
	}
	checkPNG(t, filepath.Join(dir, "histogram.png"))
	// Decoded histograms reproduce the stored percentiles.
	s, err := got.Series[0].Decode()
	if err != nil {
		t.Fatal(err)
	}
	again, err := summarize(s)
	if err != nil || again.Percentiles[3] != got.Series[0].Percentiles[3] {
		t.Fatalf("decoded p99.9 %v, stored %v (%v)", again.Percentiles[3], got.Series[0].Percentiles[3], err)
	}
}

func TestReadHistogramText(t *testing.T) {
	// cyclictest -h 4 -t 2 output, one sample of thread 1 overflowed at 9 µs.
	text := `# /dev/cpu_dma_latency set to 0us
# Histogram
000000 000000	000000
000001 000005	000002
000002 000010	000003
000003 000001	000000
# Total: 000000016 000000005
# Min Latencies: 00001 00001
# Avg Latencies: 00001 00002
# Max Latencies: 00003 00009
# Histogram Overflows: 00000 00001
# Histogram Overflow at cycle number:
# Thread 0:
# Thread 1: 00004
`
	s, err := ReadHistogramText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || s[0].Hist.TotalCount() != 16 || s[1].Hist.TotalCount() != 6 || s[1].Hist.Max() != 9 || s[0].Hist.Max() != 3 {
		t.Fatalf("got %d series: %d/%d samples, max %d/%d", len(s), s[0].Hist.TotalCount(), s[1].Hist.TotalCount(), s[0].Hist.Max(), s[1].Hist.Max())
	}
	for _, bad := range []string{"", "# Histogram\n", "# Histogram\n000001 x\n", "# Histogram\n000001 -3\n", "# Total: 1 2\n# Histogram\n000001 1\n"} {
		if _, err := ReadHistogramText(strings.NewReader(bad)); !errors.Is(err, ErrHistogramText) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func FuzzReadHistogramText(f *testing.F) {
	f.Add("# Histogram\n000001 000005\t000002\n# Total: 5 2\n# Max Latencies: 00001 00004\n# Histogram Overflows: 0 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		series, err := ReadHistogramText(strings.NewReader(s))
		if err == nil && len(series) > 0 {
			var b bytes.Buffer
			if err := WriteHistogramText(&b, series); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestCyclictestReport runs the real cyclictest and reports its histogram
// next to a synthetic mkrt series.
func TestCyclictestReport(t *testing.T) {
	if _, err := exec.LookPath("cyclictest"); err != nil {
		t.Skip("skipping: cyclictest not installed (Debian package rt-tests)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: cyclictest needs root for SCHED_FIFO and mlockall")
	}
	out, err := exec.Command("cyclictest", "-m", "-q", "-p", "80", "-i", "500", "-l", "400", "-t", "1", "-h", "10000").Output()
	if err != nil {
		t.Skipf("skipping: cyclictest did not run here: %v", err)
	}
	cy, err := ReadHistogramText(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(cy) != 1 || cy[0].Hist.TotalCount() != 400 {
		t.Fatalf("cyclictest: %d series, %d samples", len(cy), cy[0].Hist.TotalCount())
	}
	series := append(testSeries(11, 20*time.Microsecond)[:1], cy...)
	dir := t.TempDir()
	sum, err := Write(dir, testMeta(), series, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Totals[1].Source != "cyclictest" || sum.Totals[1].Samples != 400 {
		t.Fatalf("totals %+v", sum.Totals)
	}
	checkPNG(t, filepath.Join(dir, "histogram.png"))
}

func BenchmarkSummarize(b *testing.B) {
	series := testSeries(1, 40*time.Microsecond)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Summarize(testMeta(), series); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	series := testSeries(1, 40*time.Microsecond)
	dir := b.TempDir()
	for b.Loop() {
		if _, err := Write(dir, testMeta(), series, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVerdictJudgesMkrtSeries(t *testing.T) {
	series := testSeries(9, 0)
	series[2].Hist = synthetic(10, 1000, 5*time.Microsecond, 900*time.Microsecond, time.Microsecond)
	s, err := Summarize(testMeta(), series)
	if err != nil {
		t.Fatal(err)
	}
	if s.Verdict != VerdictPass || strings.Contains(s.VerdictReason, "cyclictest") {
		t.Fatalf("a slow cyclictest reference decided the verdict: %s", s.VerdictReason)
	}
	s, _ = Summarize(testMeta(), series[2:])
	if s.Verdict != VerdictFail {
		t.Fatalf("cyclictest-only run: %s %s", s.Verdict, s.VerdictReason)
	}
	if got := fmtUS(1234.4); got != "1.234 ms" {
		t.Fatalf("fmtUS = %q", got)
	}
}

// The runner's sections follow the percentile table in README.md, and a
// rewrite from summary.json prints them again.
func TestSections(t *testing.T) {
	dir := t.TempDir()
	meta := testMeta()
	meta.Sections = []Section{{Title: "Execution time (µs)", Markdown: "| series | p50 |\n|---|--:|\n| mkrt exec cpu1 | 15 |\n"},
		{Title: "Minimum period", Markdown: "**holds 250µs**"}}
	if _, err := Write(dir, meta, testSeries(3, 30*time.Microsecond), Options{Formats: []string{"svg"}}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		md, err := os.ReadFile(filepath.Join(dir, ReadmeFile))
		if err != nil {
			t.Fatal(err)
		}
		s := string(md)
		table, exec, mp, plots := strings.Index(s, "## Percentiles"), strings.Index(s, "## Execution time (µs)\n\n| series | p50 |"),
			strings.Index(s, "## Minimum period\n\n**holds 250µs**\n"), strings.Index(s, "## Plots")
		if table < 0 || exec < table || mp < exec || plots < mp {
			t.Fatalf("%s: sections missing or out of place:\n%s", when, s)
		}
	}
	check("written")
	if _, err := Rewrite(dir, Options{Formats: []string{"svg"}}); err != nil {
		t.Fatal(err)
	}
	check("rewritten")
}
