// Package shmtest has fakes and helpers for code that uses the shared-memory
// channel (shm) in tests: layouts of any shape, a writer and reader
// pair over a real temporary file mapping, a sysfs-shaped PCI device
// directory, and a deterministic fake executive that answers commands the
// way the real one does. Nothing here needs privileges; it needs Linux for
// the mappings (tests elsewhere are skipped by Pair with a reason).
package shmtest

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Params returns layout parameters for n float64 tags named t0..t{n-1}
// (writable, range -1e6..1e6), s string tags named s0.. of length 32 after
// them, and the given number of tasks named task0.. with 1ms periods.
func Params(n, s, tasks int) shm.Params {
	p := shm.Params{Partition: "test", Latency: configs.Latency{Highest: configs.Duration(10 * time.Millisecond), Digits: 3}}
	for i := 0; i < n; i++ {
		p.Tags = append(p.Tags, tag.Info{Name: fmt.Sprintf("t%d", i), Type: tag.Float64, Unit: "m", Access: tag.ReadWrite,
			Writable: true, Min: -1e6, Max: 1e6})
	}
	for i := 0; i < s; i++ {
		p.Tags = append(p.Tags, tag.Info{Name: fmt.Sprintf("s%d", i), Type: tag.String, Access: tag.ReadWrite,
			Writable: true, Min: math.Inf(-1), Max: math.Inf(1), Length: 32})
	}
	for i := 0; i < tasks; i++ {
		p.Tasks = append(p.Tasks, shm.Task{Name: fmt.Sprintf("task%d", i), Period: time.Millisecond})
	}
	p.ConfigHash[0] = 0x42
	return p
}

// Layout computes the layout of p or fails the test.
func Layout(t testing.TB, p shm.Params) *shm.Layout {
	t.Helper()
	l, err := shm.NewLayout(p)
	if err != nil {
		t.Fatalf("NewLayout: %v", err)
	}
	return l
}

// Skip skips the test with a reason when this platform cannot map regions.
func Skip(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("shared-memory mappings are implemented for Linux only (this is %s)", runtime.GOOS)
	}
}

// File creates a region file of l's size in a temporary directory and
// returns its path.
func File(t testing.TB, l *shm.Layout) string {
	t.Helper()
	Skip(t)
	path := filepath.Join(t.TempDir(), "region")
	r, err := shm.Open(shm.File(path, l.Size(), true))
	if err != nil {
		t.Fatalf("create region: %v", err)
	}
	r.Close()
	return path
}

// Map maps the region file at path; the mapping is closed at the test's end.
func Map(t testing.TB, path string) *shm.Region {
	t.Helper()
	r, err := shm.Open(shm.File(path, 0, false))
	if err != nil {
		t.Fatalf("map region: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Pair formats a fresh region file for l and attaches a writer and a reader
// to it through two separate mappings, as two processes would.
func Pair(t testing.TB, l *shm.Layout) (*shm.Writer, *shm.Reader) {
	t.Helper()
	path := File(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := shm.AttachWriter(ctx, Map(t, path), l, shm.WriterOptions{})
	if err != nil {
		t.Fatalf("AttachWriter: %v", err)
	}
	r, err := shm.AttachReader(Map(t, path), l, shm.ReaderOptions{})
	if err != nil {
		t.Fatalf("AttachReader: %v", err)
	}
	return w, r
}

// PCIDevice makes a sysfs-shaped PCI device directory under dir — a
// resource2 file of size bytes and an enable file reading 0 — and returns
// its path, for shm.Location{Kind: shm.KindPCI, Path: ..., BAR: 2}.
func PCIDevice(t testing.TB, dir string, size int64) string {
	t.Helper()
	dev := filepath.Join(dir, "0000:00:04.0")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dev, "enable"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dev, "resource2"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return dev
}

// Executive is a deterministic stand-in for the real executive: each Step
// is one cycle that applies up to Commands queued commands to Tags (checked
// with wire.CheckTagWrite), publishes the image and beats. Tests call Step
// themselves; nothing runs in the background.
type Executive struct {
	W        *shm.Writer
	Tags     *tag.Table
	Cycle    uint64
	Commands int // per cycle; default 16
	// Halted is set by a wire.Halt.
	Halted bool
}

// Step runs one cycle and returns how many commands it applied.
func (e *Executive) Step() int {
	e.Cycle++
	max := e.Commands
	if max == 0 {
		max = 16
	}
	n := 0
	var c wire.Command
	for n < max && e.W.PollCommand(&c) {
		n++
		res := wire.Result{ID: c.ID, Cycle: e.Cycle, Status: wire.Applied}
		switch c.Kind {
		case wire.WriteTag:
			res.Status = wire.CheckTagWrite(e.Tags.Info, c.Tag, c.Value)
			if res.Status == wire.Applied {
				res.Old = e.Tags.Samples[c.Tag].Value
				if c.Value.IsText {
					e.Tags.Text[c.Tag] = string(c.Value.Text)
				} else {
					e.Tags.Samples[c.Tag].Value = c.Value.Num
				}
				e.Tags.Samples[c.Tag].Quality = tag.Good
			}
		case wire.Halt:
			e.Halted = true
		default:
			res.Status = wire.Unsupported
		}
		e.W.Reply(res)
	}
	e.W.Publish(e.Cycle, e.Tags.Samples, e.Tags.Text)
	e.W.Beat(e.Cycle, int64(e.Cycle)*int64(time.Millisecond))
	return n
}

// Table makes a tag table holding p's tags, all good and zero.
func Table(p shm.Params) *tag.Table {
	t := &tag.Table{Info: p.Tags, Samples: make([]tag.Sample, len(p.Tags)), Text: make([]string, len(p.Tags))}
	for i := range t.Samples {
		t.Samples[i].Quality = tag.Good
	}
	return t
}
