// Package report turns a latency test run into a report folder that a test
// engineer reads and compares: plots of the latency histogram (log count
// axis, OSADL QA Farm style, one series per thread, mkrt next to cyclictest)
// and of the percentile distribution (HdrHistogram's 1/(1-p) axis) as SVG and
// PNG, a cyclictest-compatible histogram text file, summary.json (the Summary
// schema, which Compare reads back), and README.md with a percentile table,
// a verdict against the board's latency budget and the runner's own
// sections.
//
// The package takes plain inputs: one *hdrhistogram.Histogram per series
// with a label, and run metadata. It needs nothing at run time: no root, no
// real-time kernel, no fonts (gonum/plot embeds its own).
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
)

// Series is one latency histogram: a thread of the mkrt runner or of cyclictest.
type Series struct {
	// Label names the series in plots and tables, e.g. "mkrt cpu3" or "cyclictest T0".
	Label string
	// Source groups series: "mkrt", "cyclictest". Totals and Compare work per source.
	Source string
	// Hist holds the recorded wake-up latencies.
	Hist *hdrhistogram.Histogram
	// Unit is the duration of one recorded value; zero means time.Microsecond
	// (cyclictest's unit). Use time.Nanosecond for histograms of time.Duration values.
	Unit time.Duration
}

func (s Series) unit() time.Duration {
	if s.Unit <= 0 {
		return time.Microsecond
	}
	return s.Unit
}

// us converts a recorded value to microseconds.
func (s Series) us(v int64) float64 {
	return float64(v) * float64(s.unit()) / float64(time.Microsecond)
}

// Meta describes a run; every field is optional and printed as given.
type Meta struct {
	Board string
	// Budget is the board's expected worst-case latency; zero gives no verdict.
	Budget time.Duration
	// BudgetNote says where the budget comes from (budgets are nominal).
	BudgetNote string
	Load       string
	Kernel     string // e.g. "6.1.0-31-rt-amd64 #1 SMP PREEMPT_RT ..."
	// RT is the real-time status as the runner found it, e.g. "PREEMPT_RT,
	// SCHED_FIFO 95" or "degraded: not root".
	RT string
	// RTKernel is true on a PREEMPT_RT kernel.
	RTKernel bool
	Duration time.Duration
	Interval time.Duration
	Priority int
	CPUs     []int
	Started  time.Time
	Host     string
	// Run is the runner's own summary (JSON), kept verbatim in
	// summary.json: figures this package does not know, such as the
	// execution time, the program's size and page faults of
	// `mkrt latency run`.
	Run json.RawMessage
	// Sections are the runner's own parts of README.md, printed after the
	// percentile table in this order and kept in summary.json (so Rewrite
	// prints them again).
	Sections []Section
}

// Section is a part of README.md that the runner writes: a title and a
// Markdown body (a table, a line of figures).
type Section struct {
	Title    string `json:"title"`
	Markdown string `json:"markdown"`
}

// Verdict is the outcome against the board's latency budget.
type Verdict string

// The verdicts.
const (
	VerdictPass Verdict = "pass"
	VerdictFail Verdict = "fail"
	VerdictNone Verdict = "none" // no budget given, or no samples
)

// SchemaVersion is the version of the summary.json schema written here.
const SchemaVersion = 1

// SummaryFile is the name of the summary inside a report folder.
const SummaryFile = "summary.json"

// Summary is summary.json: a run's metadata and figures. Durations are in
// microseconds as floating point. Runners that write their own summary map
// into this struct; Compare reads only this.
type Summary struct {
	Schema     int       `json:"schema"`
	Board      string    `json:"board"`
	BudgetUS   float64   `json:"budget_us,omitempty"`
	BudgetNote string    `json:"budget_note,omitempty"`
	Load       string    `json:"load"`
	Kernel     string    `json:"kernel"`
	RT         string    `json:"rt"`
	RTKernel   bool      `json:"rt_kernel"`
	DurationS  float64   `json:"duration_s"`
	IntervalUS float64   `json:"interval_us"`
	Priority   int       `json:"priority"`
	CPUs       []int     `json:"cpus,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	Host       string    `json:"host,omitempty"`
	// Series has one entry per thread/source, in the order given.
	Series []SeriesSummary `json:"series"`
	// Totals merges the series of each source (all mkrt threads, all
	// cyclictest threads), in order of first appearance.
	Totals  []SeriesSummary `json:"totals"`
	Verdict Verdict         `json:"verdict"`
	// VerdictReason says why, in one sentence.
	VerdictReason string `json:"verdict_reason"`
	// Run is Meta.Run.
	Run json.RawMessage `json:"run,omitempty"`
	// Sections is Meta.Sections.
	Sections []Section `json:"sections,omitempty"`
}

// SeriesSummary is one series' figures.
type SeriesSummary struct {
	Label       string       `json:"label"`
	Source      string       `json:"source"`
	Samples     int64        `json:"samples"`
	MinUS       float64      `json:"min_us"`
	MeanUS      float64      `json:"mean_us"`
	StdDevUS    float64      `json:"stddev_us"`
	MaxUS       float64      `json:"max_us"`
	Percentiles []Percentile `json:"percentiles"`
	// Histogram is the series' HdrHistogram in the V2 compressed base64 form
	// HdrHistogram logs use; UnitNS is the nanoseconds of one recorded value.
	Histogram string `json:"histogram,omitempty"`
	UnitNS    int64  `json:"unit_ns,omitempty"`
}

// Percentile is the latency at percentile P (0-100].
type Percentile struct {
	P  float64 `json:"p"`
	US float64 `json:"us"`
}

// Percentiles are the percentiles every summary lists.
var tablePercentiles = []float64{50, 90, 99, 99.9, 99.99, 99.999, 100}

// At returns the latency at percentile p, if the summary lists it (p 100 is the maximum).
func (s SeriesSummary) At(p float64) (float64, bool) {
	if p >= 100 {
		return s.MaxUS, s.Samples > 0
	}
	for _, q := range s.Percentiles {
		if q.P == p {
			return q.US, true
		}
	}
	return 0, false
}

// Decode returns the series' histogram from the summary, or an error when the
// summary carries none.
func (s SeriesSummary) Decode() (Series, error) {
	if s.Histogram == "" {
		return Series{}, fmt.Errorf("report: series %q: %w", s.Label, ErrNoHistogram)
	}
	h, err := hdrhistogram.Decode([]byte(s.Histogram))
	if err != nil {
		return Series{}, fmt.Errorf("report: series %q: %w: %w", s.Label, ErrBadSummary, err)
	}
	return Series{Label: s.Label, Source: s.Source, Hist: h, Unit: time.Duration(s.UnitNS)}, nil
}

// Errors, classified with errors.Is.
var (
	ErrNoSeries    = errors.New("no series to report")
	ErrNoHistogram = errors.New("summary carries no histogram")
	ErrBadSummary  = errors.New("bad summary")
)

// Options shape a report. The zero value writes everything.
type Options struct {
	// Formats of the plots: "svg", "png"; default both.
	Formats []string
	// Logger receives a line per file written; default discards.
	Logger *slog.Logger
}

// Files written into a report folder.
const (
	HistogramPlot  = "histogram"   // + .svg/.png
	PercentilePlot = "percentiles" // + .svg/.png
	HistogramText  = "histogram.txt"
	ReadmeFile     = "README.md"
)

// Summarize computes a run's summary without writing anything.
func Summarize(meta Meta, series []Series) (*Summary, error) {
	if len(series) == 0 {
		return nil, fmt.Errorf("report: %w", ErrNoSeries)
	}
	for i, s := range series {
		if s.Hist == nil {
			return nil, fmt.Errorf("report: series %d (%q): %w: nil histogram", i, s.Label, ErrNoSeries)
		}
	}
	sum := &Summary{
		Schema: SchemaVersion, Board: meta.Board, BudgetUS: usOf(meta.Budget), BudgetNote: meta.BudgetNote,
		Load: meta.Load, Kernel: meta.Kernel, RT: meta.RT, RTKernel: meta.RTKernel,
		DurationS: meta.Duration.Seconds(), IntervalUS: usOf(meta.Interval), Priority: meta.Priority,
		CPUs: meta.CPUs, Started: meta.Started, Host: meta.Host, Run: meta.Run, Sections: meta.Sections,
	}
	for _, s := range series {
		ss, err := summarize(s)
		if err != nil {
			return nil, err
		}
		sum.Series = append(sum.Series, ss)
	}
	totals, err := Totals(series)
	if err != nil {
		return nil, err
	}
	for _, s := range totals {
		ss, err := summarize(s)
		if err != nil {
			return nil, err
		}
		sum.Totals = append(sum.Totals, ss)
	}
	sum.Verdict, sum.VerdictReason = verdict(sum)
	return sum, nil
}

func usOf(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func summarize(s Series) (SeriesSummary, error) {
	h := s.Hist
	enc, err := h.EncodeV2()
	if err != nil {
		return SeriesSummary{}, fmt.Errorf("report: series %q: encode: %w", s.Label, err)
	}
	ss := SeriesSummary{
		Label: s.Label, Source: s.Source, Samples: h.TotalCount(),
		Histogram: string(enc), UnitNS: int64(s.unit()),
	}
	if ss.Samples == 0 {
		return ss, nil
	}
	ss.MinUS, ss.MaxUS = s.us(h.Min()), s.us(h.Max())
	ss.MeanUS, ss.StdDevUS = s.us(1)*h.Mean(), s.us(1)*h.StdDev()
	for _, p := range tablePercentiles[:len(tablePercentiles)-1] {
		ss.Percentiles = append(ss.Percentiles, Percentile{P: p, US: s.us(h.ValueAtQuantile(p))})
	}
	return ss, nil
}

// Totals merges the series of each source into one series labelled
// "<source> (all)", in order of first appearance. Series of one source must
// share a unit.
func Totals(series []Series) ([]Series, error) {
	var out []Series
	idx := map[string]int{}
	for _, s := range series {
		i, ok := idx[s.Source]
		if !ok {
			h := hdrhistogram.New(s.Hist.LowestTrackableValue(), s.Hist.HighestTrackableValue(), int(s.Hist.SignificantFigures()))
			idx[s.Source] = len(out)
			out = append(out, Series{Label: s.Source + " (all)", Source: s.Source, Hist: h, Unit: s.unit()})
			i = len(out) - 1
		}
		if out[i].Unit != s.unit() {
			return nil, fmt.Errorf("report: source %q mixes units %v and %v", s.Source, out[i].Unit, s.unit())
		}
		if dropped := out[i].Hist.Merge(s.Hist); dropped > 0 {
			return nil, fmt.Errorf("report: source %q: %d values outside the merged histogram's range", s.Source, dropped)
		}
	}
	return out, nil
}

// verdict compares the worst case with the budget. mkrt's own series are
// judged; cyclictest series are the reference shown beside them and are
// judged only in a run that has nothing else.
func verdict(s *Summary) (Verdict, string) {
	judged := s.Series
	var own []SeriesSummary
	for _, ss := range s.Series {
		if ss.Source != "cyclictest" {
			own = append(own, ss)
		}
	}
	if len(own) > 0 {
		judged = own
	}
	var worst SeriesSummary
	var samples int64
	for _, ss := range judged {
		samples += ss.Samples
		if ss.Samples > 0 && ss.MaxUS >= worst.MaxUS {
			worst = ss
		}
	}
	caveat := ""
	if !s.RTKernel {
		caveat = " Not a PREEMPT_RT kernel: the figures do not represent the board."
	}
	switch {
	case samples == 0:
		return VerdictNone, "no samples were recorded." + caveat
	case s.BudgetUS <= 0:
		return VerdictNone, fmt.Sprintf("no latency budget given; worst case %s (%s).", fmtUS(worst.MaxUS), worst.Label) + caveat
	case worst.MaxUS <= s.BudgetUS:
		return VerdictPass, fmt.Sprintf("worst case %s (%s) is within the board's budget of %s.", fmtUS(worst.MaxUS), worst.Label, fmtUS(s.BudgetUS)) + caveat
	default:
		return VerdictFail, fmt.Sprintf("worst case %s (%s) exceeds the board's budget of %s by %.0f%%.", fmtUS(worst.MaxUS), worst.Label,
			fmtUS(s.BudgetUS), 100*(worst.MaxUS/s.BudgetUS-1)) + caveat
	}
}

// fmtUS prints microseconds with a unit, at a precision suited to the size.
func fmtUS(us float64) string {
	switch {
	case us >= 1000:
		return strconv.FormatFloat(math.Round(us)/1000, 'f', -1, 64) + " ms"
	case us >= 100 || us == math.Trunc(us):
		return fmt.Sprintf("%.0f µs", us)
	default:
		return fmt.Sprintf("%.1f µs", us)
	}
}

// Write writes the report folder dir (created if missing): plots, the
// cyclictest-format histogram (unless the runner already wrote histogram.txt),
// summary.json and README.md. It returns the summary it wrote.
func Write(dir string, meta Meta, series []Series, opts Options) (*Summary, error) {
	sum, err := Summarize(meta, series)
	if err != nil {
		return nil, err
	}
	if err := WriteSummary(dir, sum, series, opts); err != nil {
		return nil, err
	}
	return sum, nil
}

// WriteSummary writes the report folder for an already computed summary and
// its series (as Rewrite does from a stored summary).
func WriteSummary(dir string, sum *Summary, series []Series, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	formats := opts.Formats
	if len(formats) == 0 {
		formats = []string{"svg", "png"}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	budget := time.Duration(sum.BudgetUS * float64(time.Microsecond))
	title := plotTitle(sum)
	hp, err := HistogramPlotOf(title, series, budget)
	if err != nil {
		return err
	}
	pp, err := PercentilePlotOf(title, series, budget)
	if err != nil {
		return err
	}
	for _, f := range formats {
		for name, p := range map[string]*plot.Plot{HistogramPlot: hp, PercentilePlot: pp} {
			file := filepath.Join(dir, name+"."+f)
			if err := savePlot(p, file); err != nil {
				return err
			}
			log.Debug("report: wrote", "file", file)
		}
	}
	txt := filepath.Join(dir, HistogramText)
	if _, err := os.Stat(txt); errors.Is(err, fs.ErrNotExist) {
		if err := writeFile(txt, func(w *fileWriter) error { return WriteHistogramText(w, series) }); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := writeFile(filepath.Join(dir, SummaryFile), func(w *fileWriter) error { _, err := w.Write(append(js, '\n')); return err }); err != nil {
		return err
	}
	hasPNG := false
	for _, f := range formats {
		hasPNG = hasPNG || f == "png"
	}
	ext := "png"
	if !hasPNG {
		ext = formats[0]
	}
	if err := writeFile(filepath.Join(dir, ReadmeFile), func(w *fileWriter) error { return writeReadme(w, sum, ext) }); err != nil {
		return err
	}
	log.Info("report written", "dir", dir, "verdict", sum.Verdict)
	return nil
}

// ReadSummary reads dir/summary.json (or the file itself when dir names one).
func ReadSummary(dir string) (*Summary, error) {
	file := dir
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		file = filepath.Join(dir, SummaryFile)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var s Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("report: %s: %w: %w", file, ErrBadSummary, err)
	}
	if s.Schema != SchemaVersion {
		return nil, fmt.Errorf("report: %s: %w: schema %d, want %d", file, ErrBadSummary, s.Schema, SchemaVersion)
	}
	if len(s.Series) == 0 && len(s.Totals) == 0 {
		return nil, fmt.Errorf("report: %s: %w: no series", file, ErrBadSummary)
	}
	return &s, nil
}

// Rewrite regenerates a report folder's plots, histogram text and README
// from its summary.json (which must carry histograms).
func Rewrite(dir string, opts Options) (*Summary, error) {
	sum, err := ReadSummary(dir)
	if err != nil {
		return nil, err
	}
	series := make([]Series, 0, len(sum.Series))
	for _, ss := range sum.Series {
		s, err := ss.Decode()
		if err != nil {
			return nil, err
		}
		series = append(series, s)
	}
	if err := WriteSummary(dir, sum, series, opts); err != nil {
		return nil, err
	}
	return sum, nil
}
