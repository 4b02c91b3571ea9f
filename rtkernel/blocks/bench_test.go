package blocks_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
)

// plantConfig is a program of groups control loops of 20 mixed blocks
// (synth.Plant).
func plantConfig(groups int) *configs.Config { return synth.Plant(groups) }

func TestPlantProgramRuns(t *testing.T) {
	r := newRig(t, plantConfig(3), 10*time.Millisecond)
	if r.tp.Len() != 60 {
		t.Fatalf("Len() = %d, want 60", r.tp.Len())
	}
	runLoops(t, r, 3, 500)
}

// runLoops runs cycles of a program of control loops (plantConfig,
// exprPlantConfig) with moving inputs, then checks a cycle allocates
// nothing.
func runLoops(t *testing.T, r *rig, loops, cycles int) {
	t.Helper()
	for k := range cycles {
		feedLoops(r, loops, 5000+float64(k))
		r.step()
	}
	if n := testing.AllocsPerRun(100, r.step); n != 0 {
		t.Fatalf("Run allocates %v times per cycle", n)
	}
}

// feedLoops sets the inputs of a program of control loops.
func feedLoops(r *rig, loops int, pv float64) {
	f, err := synth.NewFeeder(r.tab, 0, loops)
	if err != nil {
		r.t.Fatal(err)
	}
	f.Feed(r.tab.Samples, pv)
}

// BenchmarkRun1000 runs one cycle of a 1,000-block program (50 control
// loops of 20 mixed blocks) and reports the time per block.
func BenchmarkRun1000(b *testing.B) { benchLoops(b, plantConfig(50)) }

// benchLoops runs cycles of a program of 50 control loops and reports the
// time per block, wall and the thread's CPU.
func benchLoops(b *testing.B, cfg *configs.Config) {
	r := newRig(b, cfg, 10*time.Millisecond)
	feedLoops(r, 50, 5000)
	blocks := r.tp.Len()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, cpuOK := threadCPU()
	for b.Loop() {
		r.step()
	}
	cpu1, _ := threadCPU()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(blocks), "ns/block")
	if cpuOK {
		// On a loaded machine the wall clock includes time spent waiting
		// for a core; the thread's CPU time does not.
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N)/float64(blocks), "cpu-ns/block")
	}
	b.ReportMetric(float64(blocks), "blocks")
}

// BenchmarkCompile1000 compiles the same program.
func BenchmarkCompile1000(b *testing.B) {
	cfg := plantConfig(50)
	r := newRig(b, cfg, time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := compileOnly(cfg, r); err != nil {
			b.Fatal(err)
		}
	}
}
