package latency

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
	"github.com/mkrt/mkrt/rtkernel/executive"
)

// BenchmarkCycle1000Blocks is one measurement task's cycle of the 1,000-block
// program outside the executive (whose loop cannot be driven a cycle at a
// time from here): inputs fed, the program compiled as the tasks get it,
// the image published to a shared region, heartbeat and latency recorded.
func BenchmarkCycle1000Blocks(b *testing.B) {
	o := Options{CPUs: []int{0}, Interval: time.Millisecond, Blocks: 1000}
	if err := o.defaults(); err != nil {
		b.Fatal(err)
	}
	cfg := measurementConfig(o)
	tab, err := cfg.TagTable()
	if err != nil {
		b.Fatal(err)
	}
	prog, err := newProgram(context.Background(), o, cfg, tab)
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	p, err := prog.programs(cfg.Tasks[0].Name, tab)
	if err != nil {
		b.Fatal(err)
	}
	var cycle uint64
	now := time.Unix(0, 0)
	step := func() {
		cycle++
		now = now.Add(o.Interval)
		prog.io.ReadInputs(tab, now)
		p.Run(time.Duration(cycle)*o.Interval, o.Interval)
		prog.ch.Publish(tab, cycle)
		prog.ch.Heartbeat(executive.Heartbeat{Cycle: cycle, Time: time.Duration(cycle) * o.Interval})
		prog.ch.RecordLatency(0, 10*time.Microsecond, 20*time.Microsecond)
	}
	for range 100 {
		step()
	}
	if n := testing.AllocsPerRun(100, step); n != 0 {
		b.Fatalf("a cycle allocates %v times", n)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	b.ReportMetric(float64(synth.Groups(o.Blocks)*synth.GroupSize), "blocks")
}
