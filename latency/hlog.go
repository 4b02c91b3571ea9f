package latency

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// intervalLog is an HdrHistogram interval log (format 1.3, readable by
// HdrHistogram's HistogramLogReader and HistogramLogProcessor), one tagged
// line per thread ("cpu<N>") and interval, values in nanoseconds.
type intervalLog struct {
	mu sync.Mutex
	f  *os.File
	w  *hdrhistogram.HistogramLogWriter
}

func createIntervalLog(path string, start time.Time, highest time.Duration) (*intervalLog, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	l := &intervalLog{f: f, w: hdrhistogram.NewHistogramLogWriter(f)}
	l.w.SetBaseTime(start.UnixMilli())
	err = l.w.OutputLogFormatVersion()
	if err == nil {
		err = l.w.OutputComment("[mkrt latency run: wake-up latency in ns, one tag per measured CPU, highest " + highest.String() + "]")
	}
	if err == nil {
		err = l.w.OutputStartTime(start.UnixMilli())
	}
	if err == nil {
		err = l.w.OutputBaseTime(start.UnixMilli())
	}
	if err == nil {
		err = l.w.OutputLegend()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("latency: writing %s: %w", path, err)
	}
	return l, nil
}

// write appends one interval of cpu. Errors are logged: the run goes on.
func (l *intervalLog) write(cpu int, h *hdrhistogram.Histogram, log *slog.Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h.SetTag("cpu" + strconv.Itoa(cpu))
	if err := l.w.OutputIntervalHistogram(h); err != nil {
		log.Warn("latency: interval log", "err", err)
	}
	h.SetTag("")
}

func (l *intervalLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
