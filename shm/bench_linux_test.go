package shm_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
)

// threadCPU is the calling thread's CPU time: on a shared, loaded machine
// it shows the cost of the work itself, without the time spent waiting for
// a CPU.
func threadCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublish10k is the writer's cost per cycle for an image of 10,000
// tags: every tag written (all), every tag changed (changed-all), 1% changed
// (changed-1pct, the dirty-tracking path) and nothing changed. cpu-ns/op is
// the thread's CPU time per publish.
func BenchmarkPublish10k(b *testing.B) {
	p := shmtest.Params(10000, 0, 1)
	l := shmtest.Layout(b, p)
	w, _ := shmtest.Pair(b, l)
	tab := shmtest.Table(p)
	for _, bc := range []struct {
		name   string
		all    bool
		change int // tags changed per cycle
	}{{"all", true, 0}, {"changed-all", false, 10000}, {"changed-1pct", false, 100}, {"changed-none", false, 0}} {
		b.Run(bc.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			step := 1
			if bc.change > 0 {
				step = len(tab.Samples) / bc.change
			}
			b.ReportAllocs()
			cpu := threadCPU()
			for i := 0; i < b.N; i++ {
				cycle := uint64(i)
				for j := 0; j < bc.change; j++ {
					tab.Samples[j*step].Value = float64(i)
				}
				if bc.all {
					w.PublishAll(cycle, tab.Samples, tab.Text)
				} else {
					w.Publish(cycle, tab.Samples, tab.Text)
				}
			}
			b.ReportMetric(float64(threadCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkSnapshot is the bridge's cost to copy a consistent image of 100
// and of 10,000 number tags (Reader.Snapshot, no writer active, the image
// in this core's caches): what a scan pays on top of its period. ns/tag is
// the time per tag.
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			p := shmtest.Params(n, 0, 1)
			w, r := shmtest.Pair(b, shmtest.Layout(b, p))
			tab := shmtest.Table(p)
			w.PublishAll(1, tab.Samples, tab.Text)
			var im shm.Image
			ctx := context.Background()
			if err := r.Snapshot(ctx, &im); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := r.Snapshot(ctx, &im); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/tag")
		})
	}
}
