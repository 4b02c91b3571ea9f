package blocks_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
)

// loopGroup is 20 blocks of one control loop with its conditioning, alarms
// and interlock logic, as found in a plant program: blocks of group g are
// named g<g>_<name> and read tags pv<g>, sp<g>, run<g>.
func loopGroup(g int) []configs.Block {
	n := func(s string) string { return fmt.Sprintf("g%d_%s", g, s) }
	ref := func(s, port string) string { return n(s) + "." + port }
	line := g * 1000
	l := func() int { line += 20; return line }
	return []configs.Block{
		blk(l(), n("scale"), "scale", fmt.Sprintf("in:in=pv%d", g), "p:gain=0.01", "p:offset=-2"),
		blk(l(), n("filter"), "lag", "in:in="+ref("scale", "out"), "p:tau=500ms"),
		blk(l(), n("clamp"), "limit", "in:in="+ref("filter", "out"), "p:min=0", "p:max=100"),
		blk(l(), n("sp_ramp"), "ramp", fmt.Sprintf("in:in=sp%d", g), "p:rate=5"),
		blk(l(), n("pid"), "pid", "in:pv="+ref("clamp", "out"), "in:sp="+ref("sp_ramp", "out"),
			"in:track="+ref("manual", "out"), "in:man_out=0",
			"p:kp=2", "p:ti=20s", "p:td=2s", "p:rate_max=10", fmt.Sprintf("out:out=out%d", g)),
		blk(l(), n("err"), "deadband", "in:in="+ref("clamp", "out"), "p:width=0.5"),
		blk(l(), n("alarm"), "alarm", "in:in="+ref("clamp", "out"), "p:hi=90", "p:hihi=95", "p:lo=10", "p:deadband=1", "p:delay=2s"),
		blk(l(), n("high"), "compare", "in:a="+ref("clamp", "out"), "in:b="+ref("sp_ramp", "out"), "p:op=gt", "p:hysteresis=2"),
		blk(l(), n("confirm"), "ton", "in:in="+ref("high", "out"), "p:pt=5s"),
		blk(l(), n("ok"), "not", "in:in="+ref("alarm", "active")),
		blk(l(), n("permit"), "and", fmt.Sprintf("in:in1=run%d", g), "in:in2="+ref("ok", "out"), "in:in3="+ref("held", "out")),
		blk(l(), n("manual"), "not", "in:in="+ref("permit", "out")),
		blk(l(), n("starts"), "counter", fmt.Sprintf("in:up=run%d", g), "in:reset="+ref("confirm", "q"), "p:pv=100"),
		blk(l(), n("pick"), "select", "in:sel="+ref("permit", "out"), "in:in1=0", "in:in2="+ref("pid", "out")),
		blk(l(), n("lo"), "min", "in:in1="+ref("pick", "out"), "in:in2="+ref("clamp", "out"), "in:in3=80"),
		blk(l(), n("hi"), "max", "in:in1="+ref("lo", "out"), "in:in2="+ref("err", "out")),
		blk(l(), n("avg"), "average", "in:in1="+ref("hi", "out"), "in:in2="+ref("lo", "out"), "in:in3="+ref("clamp", "out"), "in:in4="+ref("pick", "out")),
		blk(l(), n("level"), "hysteresis", "in:in="+ref("avg", "out"), "p:on=60", "p:off=40"),
		blk(l(), n("any"), "or", "in:in1="+ref("level", "out"), "in:in2="+ref("alarm", "hi"), fmt.Sprintf("out:out=flag%d", g)),
		blk(l(), n("held"), "delay", "in:in="+ref("permit", "out"), "p:initial=true"),
	}
}

func plantConfig(groups int) *configs.Config {
	var tags []string
	var bs []configs.Block
	for g := range groups {
		tags = append(tags, fmt.Sprintf("pv%d", g), fmt.Sprintf("sp%d", g), fmt.Sprintf("run%d:bool", g),
			fmt.Sprintf("out%d", g), fmt.Sprintf("flag%d:bool", g))
		bs = append(bs, loopGroup(g)...)
	}
	return config(tags, bs...)
}

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
	for g := range loops {
		r.set(fmt.Sprintf("pv%d", g), pv)
		r.set(fmt.Sprintf("sp%d", g), 40)
		r.setBool(fmt.Sprintf("run%d", g), true)
	}
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
