package latency

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
)

// Stats are one histogram's figures in microseconds.
type Stats struct {
	Samples  int64   `json:"samples"`
	Overruns uint64  `json:"overruns"`
	MinUS    float64 `json:"min_us"`
	AvgUS    float64 `json:"avg_us"`
	P50US    float64 `json:"p50_us"`
	P90US    float64 `json:"p90_us"`
	P99US    float64 `json:"p99_us"`
	P999US   float64 `json:"p99_9_us"`
	P9999US  float64 `json:"p99_99_us"`
	MaxUS    float64 `json:"max_us"`
}

// percentiles are the ones every Stats carries, in field order.
var percentiles = [...]float64{50, 90, 99, 99.9, 99.99}

func (s *Stats) setPercentiles(v [len(percentiles)]float64) {
	s.P50US, s.P90US, s.P99US, s.P999US, s.P9999US = v[0], v[1], v[2], v[3], v[4]
}

// StatsOf summarizes an HdrHistogram of nanoseconds.
func StatsOf(h *hdrhistogram.Histogram) Stats {
	s := Stats{Samples: h.TotalCount()}
	if s.Samples == 0 {
		return s
	}
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	s.MinUS, s.AvgUS, s.MaxUS = us(h.Min()), h.Mean()/1e3, us(h.Max())
	var v [len(percentiles)]float64
	for i, p := range percentiles {
		v[i] = us(h.ValueAtQuantile(p))
	}
	s.setPercentiles(v)
	return s
}

// StatsOfMicros summarizes a whole-microsecond histogram.
func StatsOfMicros(m Micros) Stats {
	s := Stats{Samples: m.Samples()}
	if s.Samples == 0 {
		return s
	}
	s.MinUS, s.AvgUS, s.MaxUS = float64(m.MinUS), float64(m.AvgUS), float64(m.MaxUS)
	var v [len(percentiles)]float64
	for i, p := range percentiles {
		v[i] = float64(m.Percentile(p))
	}
	s.setPercentiles(v)
	return s
}

// ThreadStats are one thread's figures.
type ThreadStats struct {
	CPU int `json:"cpu"`
	Stats
}

// Side is one tool's figures: per thread and merged.
type Side struct {
	Threads []ThreadStats `json:"threads"`
	Merged  Stats         `json:"merged"`
}

// Ratio compares one figure of mkrt against cyclictest's.
type Ratio struct {
	Metric       string  `json:"metric"`
	MkrtUS       float64 `json:"mkrt_us"`
	CyclictestUS float64 `json:"cyclictest_us"`
	// Ratio is mkrt / cyclictest; 0 when cyclictest's figure is 0.
	Ratio float64 `json:"ratio"`
}

// Summary is summary.json.
type Summary struct {
	Started    time.Time `json:"started"`
	DurationS  float64   `json:"duration_s"`
	IntervalUS int64     `json:"interval_us"`
	Priority   int       `json:"priority"`
	CPUs       []int     `json:"cpus"`
	Rounds     int       `json:"rounds"`
	// Blocks is the synthetic program's size per task (whole control
	// loops); 0 is the empty program.
	Blocks int `json:"blocks"`
	// RT is "rt: ok" or "rt: degraded (…)"; RTFacilities lists each one.
	RT           string     `json:"rt"`
	RTFacilities []Facility `json:"rt_facilities"`
	// Mkrt is from the HdrHistograms (nanosecond resolution).
	Mkrt Side `json:"mkrt"`
	// MkrtExec is mkrt's execution time per cycle (program, inputs,
	// outputs, image), from the same cycles.
	MkrtExec Side `json:"mkrt_exec"`
	// PageFaults is one per mkrt round.
	PageFaults []PageFaults `json:"page_faults"`
	// Yields is one per thread: how the task kept the Go runtime from
	// preempting it.
	Yields []Yields `json:"yields"`
	// Cyclictest, MkrtMicros and Comparison are set with --vs-cyclictest.
	Cyclictest *Side `json:"cyclictest,omitempty"`
	// MkrtMicros is mkrt binned to whole µs as cyclictest bins, the basis
	// of Comparison.
	MkrtMicros     *Side    `json:"mkrt_binned,omitempty"`
	CyclictestArgs []string `json:"cyclictest_args,omitempty"`
	Comparison     []Ratio  `json:"comparison,omitempty"`
}

// Yields are one thread's passes through the Go scheduler in its slack
// (executive.TaskCounters.Yields), the longest of them, and the hand-overs
// between its two threads when the task runs as a relay.
type Yields struct {
	CPU        int     `json:"cpu"`
	Yields     uint64  `json:"yields"`
	MaxYieldUS float64 `json:"max_yield_us"`
	Relays     uint64  `json:"relays"`
}

// Facility is a real-time facility's outcome in the summary.
type Facility struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func summarize(res *Result) Summary {
	o := res.Options
	s := Summary{Started: res.Start, DurationS: res.End.Sub(res.Start).Seconds(), IntervalUS: o.Interval.Microseconds(),
		Priority: o.Priority, CPUs: o.CPUs, Rounds: o.Rounds, Blocks: synth.Groups(o.Blocks) * synth.GroupSize, RT: res.RT.String(),
		PageFaults: res.Faults}
	for _, f := range res.RT.Facilities {
		s.RTFacilities = append(s.RTFacilities, Facility{Name: f.Name, OK: f.OK, Detail: f.Detail})
	}
	var binned Side
	var mkrtMicros Micros
	for _, th := range res.Threads {
		st := StatsOf(th.Wake)
		st.Overruns = th.Overruns
		s.Mkrt.Threads = append(s.Mkrt.Threads, ThreadStats{CPU: th.CPU, Stats: st})
		s.MkrtExec.Threads = append(s.MkrtExec.Threads, ThreadStats{CPU: th.CPU, Stats: StatsOf(th.Exec)})
		s.Mkrt.Merged.Overruns += th.Overruns
		s.Yields = append(s.Yields, Yields{CPU: th.CPU, Yields: th.Yields, MaxYieldUS: us(th.MaxYield), Relays: th.Relays})
		binned.Threads = append(binned.Threads, ThreadStats{CPU: th.CPU, Stats: StatsOfMicros(th.Micros)})
		mkrtMicros.Merge(th.Micros)
	}
	overruns := s.Mkrt.Merged.Overruns
	s.Mkrt.Merged = StatsOf(res.Merged)
	s.Mkrt.Merged.Overruns = overruns
	s.MkrtExec.Merged = StatsOf(res.MergedExec)
	if res.Cyclictest == nil {
		return s
	}
	binned.Merged = StatsOfMicros(mkrtMicros)
	s.MkrtMicros = &binned
	ct := &Side{}
	var merged Micros
	for i, m := range res.Cyclictest {
		ct.Threads = append(ct.Threads, ThreadStats{CPU: o.CPUs[i], Stats: StatsOfMicros(m)})
		merged.Merge(m)
	}
	ct.Merged = StatsOfMicros(merged)
	s.Cyclictest, s.CyclictestArgs = ct, res.CyclictestArgs
	a, b := binned.Merged, ct.Merged
	for _, r := range []Ratio{{"p50", a.P50US, b.P50US, 0}, {"p99", a.P99US, b.P99US, 0}, {"p99.9", a.P999US, b.P999US, 0}, {"max", a.MaxUS, b.MaxUS, 0}} {
		if r.CyclictestUS > 0 {
			r.Ratio = r.MkrtUS / r.CyclictestUS
		}
		s.Comparison = append(s.Comparison, r)
	}
	return s
}

// WriteFiles writes histogram.txt (mkrt's threads in cyclictest -h format),
// cyclictest.txt (cyclictest's merged blocks, when run) and summary.json
// into dir. The interval log is written by Run as the run goes.
func (r *Result) WriteFiles(dir string) error {
	write := func(name string, fill func(*os.File) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		if err := fill(f); err != nil {
			f.Close()
			return fmt.Errorf("latency: writing %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		return nil
	}
	micros := make([]Micros, len(r.Threads))
	for i, th := range r.Threads {
		micros[i] = th.Micros
	}
	if err := write(HistogramFile, func(f *os.File) error { return WriteCyclictest(f, micros) }); err != nil {
		return err
	}
	if r.Cyclictest != nil {
		if err := write(CyclictestFile, func(f *os.File) error { return WriteCyclictest(f, r.Cyclictest) }); err != nil {
			return err
		}
	}
	return write(SummaryFile, func(f *os.File) error {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(r.Summary)
	})
}
