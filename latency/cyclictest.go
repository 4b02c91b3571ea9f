package latency

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// findCyclictest resolves the cyclictest binary.
func findCyclictest(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoCyclictest, err)
	}
	return path, nil
}

// cyclictestArgs is one cyclictest round with the run's CPUs, priority and
// interval: locked memory, one thread per CPU, quiet, a histogram of MaxUS
// 1-µs buckets, and as many loops as an mkrt round.
func cyclictestArgs(o Options) []string {
	cpus := make([]string, len(o.CPUs))
	for i, c := range o.CPUs {
		cpus[i] = strconv.Itoa(c)
	}
	return []string{o.Cyclictest, "-m", "-p", strconv.Itoa(o.Priority),
		"-i", strconv.FormatInt(o.Interval.Microseconds(), 10),
		"-a", strings.Join(cpus, ","), "-t", strconv.Itoa(len(o.CPUs)),
		"-q", "-h", strconv.Itoa(o.MaxUS), "-l", strconv.FormatUint(o.roundCycles(), 10)}
}

// runCyclictest runs one cyclictest round and adds its histograms to res.
// cyclictest assigns its threads to the -a CPUs in order, so thread i
// measures Options.CPUs[i].
func runCyclictest(ctx context.Context, o Options, res *Result) error {
	args := res.CyclictestArgs
	limit := 2*time.Duration(o.roundCycles())*o.Interval + 30*time.Second
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(cctx, args[0], args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s: %v: %s", ErrCyclictestRun, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	hists, err := ParseCyclictest(&stdout)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCyclictestRun, strings.Join(args, " "), err)
	}
	if len(hists) != len(o.CPUs) {
		return fmt.Errorf("%w: %d threads in the histogram, want %d", ErrCyclictestRun, len(hists), len(o.CPUs))
	}
	if res.Cyclictest == nil {
		res.Cyclictest = make([]Micros, len(hists))
	}
	for i, h := range hists {
		res.Cyclictest[i].Merge(h)
	}
	return nil
}
