package latency

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
)

// goTraceFile is where round's Go execution trace goes: Options.GoTrace
// itself for a run of one round, else that name with "-roundN" before its
// extension (one trace cannot be paused, and cyclictest's rounds are left
// out).
func goTraceFile(o Options, round int) string {
	if o.Rounds == 1 {
		return o.GoTrace
	}
	ext := filepath.Ext(o.GoTrace)
	return fmt.Sprintf("%s-round%d%s", strings.TrimSuffix(o.GoTrace, ext), round, ext)
}

// startGoTrace starts the runtime's execution tracer into path; stop ends
// it and closes the file.
func startGoTrace(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("latency: go trace: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("latency: go trace %s: %w", path, err)
	}
	return func() error {
		trace.Stop()
		if err := f.Close(); err != nil {
			return fmt.Errorf("latency: go trace: %w", err)
		}
		return nil
	}, nil
}
