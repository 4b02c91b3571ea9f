package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// maxTextBuckets bounds the text histogram at 100 ms of 1 µs buckets; later
// samples count as overflows, as in cyclictest.
const maxTextBuckets = 100_000

// ErrHistogramText is returned (wrapped) for text that is not a cyclictest histogram.
var ErrHistogramText = errors.New("not a cyclictest histogram")

// WriteHistogramText writes series in cyclictest's -h format: one line per
// microsecond "%06d" bucket with a "%06d" count per series (tab-separated),
// then the Total, Min, Avg, Max and Overflows lines. Buckets run to the
// largest maximum (at most 100 ms); tools that read cyclictest output
// (OSADL's plot scripts, gnuplot recipes) read it unchanged. Comment lines
// before "# Histogram" name the series.
func WriteHistogramText(w io.Writer, series []Series) error {
	if len(series) == 0 {
		return fmt.Errorf("report: %w", ErrNoSeries)
	}
	buckets := 1
	counts := make([][]int64, len(series))
	overflow := make([]int64, len(series))
	for _, s := range series {
		if s.Hist.TotalCount() > 0 {
			buckets = max(buckets, min(int(s.us(s.Hist.Max()))+1, maxTextBuckets))
		}
	}
	bw := bufio.NewWriter(w)
	for i, s := range series {
		fmt.Fprintf(bw, "# series %d: %s (%s)\n", i, s.Label, s.Source)
		counts[i] = make([]int64, buckets)
		for _, bar := range s.Hist.Distribution() {
			if bar.Count == 0 {
				continue
			}
			b := int(s.us(bar.From))
			if b >= buckets {
				overflow[i] += bar.Count
				continue
			}
			counts[i][b] += bar.Count
		}
	}
	bw.WriteString("# Histogram\n")
	total := make([]int64, len(series))
	for b := 0; b < buckets; b++ {
		fmt.Fprintf(bw, "%06d ", b)
		for i := range series {
			if i > 0 {
				bw.WriteByte('\t')
			}
			fmt.Fprintf(bw, "%06d", counts[i][b])
			total[i] += counts[i][b]
		}
		bw.WriteByte('\n')
	}
	line := func(name, format string, v func(i int, s Series) int64) {
		bw.WriteString("# " + name + ":")
		for i, s := range series {
			fmt.Fprintf(bw, " "+format, v(i, s))
		}
		bw.WriteByte('\n')
	}
	empty := func(s Series) bool { return s.Hist.TotalCount() == 0 }
	line("Total", "%09d", func(i int, _ Series) int64 { return total[i] })
	line("Min Latencies", "%05d", func(_ int, s Series) int64 {
		if empty(s) {
			return 0
		}
		return int64(s.us(s.Hist.Min()))
	})
	line("Avg Latencies", "%05d", func(_ int, s Series) int64 {
		if empty(s) {
			return 0
		}
		return int64(s.us(1) * s.Hist.Mean())
	})
	line("Max Latencies", "%05d", func(_ int, s Series) int64 {
		if empty(s) {
			return 0
		}
		return int64(s.us(s.Hist.Max()))
	})
	line("Histogram Overflows", "%05d", func(i int, _ Series) int64 { return overflow[i] })
	bw.WriteString("# Histogram Overflow at cycle number:\n")
	for i := range series {
		fmt.Fprintf(bw, "# Thread %d:\n", i)
	}
	return bw.Flush()
}

// ReadHistogramText reads cyclictest -h output (or WriteHistogramText's) into
// one series per thread, labelled "T<n>", source "cyclictest", in
// microseconds. Overflowed samples (beyond the last bucket) are recorded at
// the thread's reported maximum, so totals and the worst case are kept.
func ReadHistogramText(r io.Reader) ([]Series, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var rows [][]int64
	var maxes, overflows []int64
	threads := -1
	inHist := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case line == "# Histogram":
			inHist = true
		case strings.HasPrefix(line, "# Total:"):
			threads = len(strings.Fields(strings.TrimPrefix(line, "# Total:")))
		case strings.HasPrefix(line, "# Max Latencies:"):
			v, err := numbers(strings.TrimPrefix(line, "# Max Latencies:"))
			if err != nil {
				return nil, err
			}
			maxes = v
		case strings.HasPrefix(line, "# Histogram Overflows:"):
			v, err := numbers(strings.TrimPrefix(line, "# Histogram Overflows:"))
			if err != nil {
				return nil, err
			}
			overflows = v
		case strings.HasPrefix(line, "#"):
		case inHist:
			v, err := numbers(line)
			if err != nil || len(v) < 2 {
				return nil, fmt.Errorf("report: %w: line %q", ErrHistogramText, line)
			}
			rows = append(rows, v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if !inHist || len(rows) == 0 {
		return nil, fmt.Errorf("report: %w: no \"# Histogram\" section", ErrHistogramText)
	}
	if threads < 0 {
		threads = len(rows[0]) - 1
	}
	series := make([]Series, threads)
	for t := range series {
		series[t] = Series{Label: "T" + strconv.Itoa(t), Source: "cyclictest", Unit: time.Microsecond,
			Hist: hdrhistogram.New(1, 10_000_000, 3)}
	}
	for _, row := range rows {
		if len(row)-1 < threads {
			return nil, fmt.Errorf("report: %w: bucket %d has %d columns, want %d", ErrHistogramText, row[0], len(row)-1, threads)
		}
		for t := 0; t < threads; t++ {
			if row[t+1] > 0 {
				if err := series[t].Hist.RecordValues(row[0], row[t+1]); err != nil {
					return nil, fmt.Errorf("report: %w: bucket %d: %w", ErrHistogramText, row[0], err)
				}
			}
		}
	}
	for t := 0; t < threads && t < len(overflows) && t < len(maxes); t++ {
		if overflows[t] > 0 {
			if err := series[t].Hist.RecordValues(maxes[t], overflows[t]); err != nil {
				return nil, fmt.Errorf("report: %w: overflows of thread %d: %w", ErrHistogramText, t, err)
			}
		}
	}
	return series, nil
}

func numbers(s string) ([]int64, error) {
	f := strings.Fields(s)
	out := make([]int64, len(f))
	for i, x := range f {
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("report: %w: %q is not a count", ErrHistogramText, x)
		}
		out[i] = v
	}
	return out, nil
}
