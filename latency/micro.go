package latency

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Micros is a latency histogram in cyclictest's form: a count per whole
// microsecond (latencies truncated, as cyclictest does), the samples beyond
// the last bucket, and the reported minimum, average and maximum.
type Micros struct {
	// Counts[i] is the number of samples in [i, i+1) µs.
	Counts []int64 `json:"-"`
	// Overflows counts samples at or beyond len(Counts) µs.
	Overflows int64 `json:"overflows"`
	MinUS     int64 `json:"min_us"`
	AvgUS     int64 `json:"avg_us"`
	MaxUS     int64 `json:"max_us"`
}

// Samples is every sample, overflows included.
func (m *Micros) Samples() int64 {
	n := m.Overflows
	for _, c := range m.Counts {
		n += c
	}
	return n
}

// Percentile returns the whole-µs latency at or below which p percent of the
// samples lie; overflows count as the maximum.
func (m *Micros) Percentile(p float64) int64 {
	total := m.Samples()
	if total == 0 {
		return 0
	}
	want := int64(math.Ceil(p / 100 * float64(total)))
	want = max(want, 1)
	var seen int64
	for us, c := range m.Counts {
		seen += c
		if seen >= want {
			return int64(us)
		}
	}
	return m.MaxUS
}

// MicrosOf bins an HdrHistogram of nanoseconds into whole microseconds with
// buckets below maxUS. Each HdrHistogram bucket goes to the microsecond of
// its middle value; at 3 significant digits the buckets below 1 ms are at
// most 0.5 µs wide, so a sample lands at most one bucket off.
func MicrosOf(h *hdrhistogram.Histogram, maxUS int) Micros {
	m := Micros{Counts: make([]int64, maxUS)}
	if h.TotalCount() == 0 {
		return m
	}
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		us := (bar.From + bar.To) / 2 / 1000
		if us >= int64(maxUS) {
			m.Overflows += bar.Count
			continue
		}
		m.Counts[us] += bar.Count
	}
	m.MinUS, m.MaxUS = h.Min()/1000, h.Max()/1000
	m.AvgUS = int64(h.Mean() / 1000)
	return m
}

// Merge adds o's samples to m.
func (m *Micros) Merge(o Micros) {
	if len(o.Counts) > len(m.Counts) {
		m.Counts = append(m.Counts, make([]int64, len(o.Counts)-len(m.Counts))...)
	}
	first := m.Samples() == 0
	n1, n2 := m.Samples(), o.Samples()
	for i, c := range o.Counts {
		m.Counts[i] += c
	}
	m.Overflows += o.Overflows
	if n2 == 0 {
		return
	}
	if first || o.MinUS < m.MinUS {
		m.MinUS = o.MinUS
	}
	m.MaxUS = max(m.MaxUS, o.MaxUS)
	m.AvgUS = (m.AvgUS*n1 + o.AvgUS*n2) / (n1 + n2)
}

// ErrHistogram is returned (wrapped) for text that is not a cyclictest -h
// histogram.
var ErrHistogram = errors.New("latency: not a cyclictest histogram")

// ParseCyclictest reads the output of cyclictest -h N: one Micros per
// thread, in thread order.
func ParseCyclictest(r io.Reader) ([]Micros, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var out []Micros
	inHist, line := false, 0
	field := func(rest string, set func(*Micros, int64)) error {
		v, err := ints(rest)
		if err != nil {
			return fmt.Errorf("%w: line %d: %v", ErrHistogram, line, err)
		}
		if len(v) != len(out) {
			return fmt.Errorf("%w: line %d: %d values for %d threads", ErrHistogram, line, len(v), len(out))
		}
		for i := range v {
			set(&out[i], v[i])
		}
		return nil
	}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		var err error
		switch {
		case text == "# Histogram":
			inHist = true
		case strings.HasPrefix(text, "# Min Latencies:"):
			err = field(strings.TrimPrefix(text, "# Min Latencies:"), func(m *Micros, v int64) { m.MinUS = v })
		case strings.HasPrefix(text, "# Avg Latencies:"):
			err = field(strings.TrimPrefix(text, "# Avg Latencies:"), func(m *Micros, v int64) { m.AvgUS = v })
		case strings.HasPrefix(text, "# Max Latencies:"):
			err = field(strings.TrimPrefix(text, "# Max Latencies:"), func(m *Micros, v int64) { m.MaxUS = v })
		case strings.HasPrefix(text, "# Histogram Overflows:"):
			err = field(strings.TrimPrefix(text, "# Histogram Overflows:"), func(m *Micros, v int64) { m.Overflows = v })
		case text == "" || strings.HasPrefix(text, "#"):
		case inHist:
			v, perr := ints(text)
			if perr != nil || len(v) < 2 {
				return nil, fmt.Errorf("%w: line %d: %q", ErrHistogram, line, text)
			}
			if out == nil {
				out = make([]Micros, len(v)-1)
			}
			if len(v)-1 != len(out) || v[0] != int64(len(out[0].Counts)) {
				return nil, fmt.Errorf("%w: line %d: bucket %d out of order or with a wrong column count", ErrHistogram, line, v[0])
			}
			for i := range out {
				out[i].Counts = append(out[i].Counts, v[i+1])
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("latency: reading cyclictest output: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no histogram rows", ErrHistogram)
	}
	return out, nil
}

func ints(s string) ([]int64, error) {
	f := strings.Fields(s)
	v := make([]int64, len(f))
	for i, x := range f {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return nil, err
		}
		v[i] = n
	}
	return v, nil
}

// WriteCyclictest writes hists in cyclictest's -h format: "# Histogram",
// one "%06d" line per microsecond with a "%06d" count per thread
// (tab-separated), then the Total, Min, Avg and Max Latencies and Histogram
// Overflows lines. ParseCyclictest and tools that read cyclictest output
// read it back.
func WriteCyclictest(w io.Writer, hists []Micros) error {
	bw := bufio.NewWriter(w)
	rows := 0
	for _, h := range hists {
		rows = max(rows, len(h.Counts))
	}
	bw.WriteString("# Histogram\n")
	for b := 0; b < rows; b++ {
		fmt.Fprintf(bw, "%06d ", b)
		for i, h := range hists {
			if i > 0 {
				bw.WriteByte('\t')
			}
			var c int64
			if b < len(h.Counts) {
				c = h.Counts[b]
			}
			fmt.Fprintf(bw, "%06d", c)
		}
		bw.WriteByte('\n')
	}
	summary := []struct {
		name, format string
		v            func(Micros) int64
	}{
		{"Total", "%09d", func(m Micros) int64 { return m.Samples() - m.Overflows }},
		{"Min Latencies", "%05d", func(m Micros) int64 { return m.MinUS }},
		{"Avg Latencies", "%05d", func(m Micros) int64 { return m.AvgUS }},
		{"Max Latencies", "%05d", func(m Micros) int64 { return m.MaxUS }},
		{"Histogram Overflows", "%05d", func(m Micros) int64 { return m.Overflows }},
	}
	for _, s := range summary {
		bw.WriteString("# " + s.name + ":")
		for _, h := range hists {
			fmt.Fprintf(bw, " "+s.format, s.v(h))
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// Histogram returns m as an HdrHistogram of whole microseconds; overflows
// are recorded at the maximum.
func (m Micros) Histogram() *hdrhistogram.Histogram {
	h := hdrhistogram.New(1, max(int64(len(m.Counts)), m.MaxUS, 1)+1, 3)
	for us, c := range m.Counts {
		if c > 0 {
			_ = h.RecordValues(max(int64(us), 1), c)
		}
	}
	if m.Overflows > 0 {
		_ = h.RecordValues(max(m.MaxUS, int64(len(m.Counts))), m.Overflows)
	}
	return h
}
