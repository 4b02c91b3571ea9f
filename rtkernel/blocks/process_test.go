package blocks_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/tag"
)

// procRig is one process block b of typ reading tag x (and the bool tags
// r, h, ack), its outputs written to the tags named after the ports.
func procRig(t testing.TB, typ string, spec ...string) *rig {
	t.Helper()
	bt, ok := blocks.Lookup(typ)
	if !ok {
		t.Fatalf("no block type %s", typ)
	}
	tags := []string{"x", "r:bool", "h:bool", "ack:bool"}
	for _, p := range bt.Outputs {
		name := "o_" + p.Name
		if p.Kind == configs.PortBool {
			name += ":bool"
		}
		tags = append(tags, name)
		spec = append(spec, "out:"+p.Name+"=o_"+p.Name)
	}
	return newRig(t, config(tags, blk(1, "b", typ, append([]string{"in:in=x"}, spec...)...)), 10*time.Millisecond)
}

// A flow of 3600 m3/h totals 1 m3 a second with gain 1/3600; hold freezes
// the total, reset (dominant, also while holding) sets it to initial, a
// NaN or bad flow holds it and reports bad, the limits clamp it.
func TestIntegrator(t *testing.T) {
	r := procRig(t, "integrator", "in:reset=r", "in:hold=h", "p:gain=0.000277777777777778", "p:initial=5", "p:out_max=20")
	r.set("x", 3600)
	r.steps(100) // 1 s
	if got := r.get("o_out"); !near(got, 6, 1e-9) {
		t.Fatalf("after 1 s at 3600 m3/h: %v, want 5 + 1", got)
	}
	r.setBool("h", true)
	r.steps(100)
	if got := r.get("o_out"); !near(got, 6, 1e-9) {
		t.Fatalf("held: %v, want 6", got)
	}
	r.setBool("r", true) // reset while holding
	r.step()
	if got := r.get("o_out"); got != 5 {
		t.Fatalf("reset while holding: %v, want initial 5", got)
	}
	r.setBool("r", false)
	r.setBool("h", false)
	r.set("x", math.NaN())
	r.steps(10)
	if s := r.sample("o_out"); s.Value != 5 || s.Quality != tag.Bad {
		t.Fatalf("NaN in: %+v, want 5 held, bad", s)
	}
	r.set("x", 3600)
	r.setQuality("x", tag.Bad, tag.CommFailure)
	r.steps(10)
	if s := r.sample("o_out"); s.Value != 5 || s.Quality != tag.Bad {
		t.Fatalf("bad in: %+v, want 5 held, bad", s)
	}
	r.set("x", 3600*100)
	r.steps(100)
	if s := r.sample("o_out"); s.Value != 20 || s.Quality != tag.Good {
		t.Fatalf("beyond out_max: %+v, want 20, good", s)
	}
	// A restart: the total comes back from the retain tag out writes.
	cfg := config([]string{"x", "tot"}, blk(1, "b", "integrator", "in:in=x", "p:initial=5", "out:out=tot"))
	cfg.Tags[1].Retain = true
	rr := newRig(t, cfg, 10*time.Millisecond)
	rr.set("tot", 123.5) // as the supervisor restores it before the first cycle
	rr.set("x", 2)
	rr.step()
	if got := rr.get("tot"); !near(got, 123.52, 1e-9) {
		t.Fatalf("restart from the retained total 123.5: %v, want 123.52", got)
	}
	cfg.Tags[1].Retain = false
	rr = newRig(t, cfg, 10*time.Millisecond)
	rr.set("tot", 123.5)
	rr.set("x", 2)
	rr.step()
	if got := rr.get("tot"); !near(got, 5.02, 1e-9) {
		t.Fatalf("start with out not a retain tag: %v, want initial 5 + 0.02", got)
	}
	// The total is state: saved, and restored into a new program.
	saved := r.tp.SaveState(nil)
	r2 := procRig(t, "integrator", "in:reset=r", "in:hold=h", "p:gain=0.000277777777777778", "p:initial=5", "p:out_max=20")
	if err := r2.tp.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	r2.set("x", 0)
	r2.step()
	if got := r2.get("o_out"); got != 20 {
		t.Fatalf("restored total: %v, want 20", got)
	}
}

// lead_lag's step response: a jump to gain*lead/lag, then an exponential
// approach to gain with time constant lag.
func TestLeadLag(t *testing.T) {
	for _, c := range []struct {
		lead, lag   string
		gain        float64
		jump, atLag float64 // out right after the step and one lag later
	}{
		{"10s", "5s", 1, 2, 1 + math.Exp(-1)},
		{"0", "1s", 2, 0, 2 * (1 - math.Exp(-1))},
		{"1s", "4s", 1, 0.25, 1 - 0.75*math.Exp(-1)},
	} {
		t.Run(c.lead+"/"+c.lag, func(t *testing.T) {
			r := procRig(t, "lead_lag", "p:lead="+c.lead, "p:lag="+c.lag, fmt.Sprintf("p:gain=%v", c.gain))
			r.set("x", 0)
			r.step()
			r.set("x", 1)
			r.step()
			if got := r.get("o_out"); !near(got, c.gain*c.jump+c.gain*(1-c.jump)*(1-math.Exp(-0.01/lagSeconds(c.lag))), 1e-9) {
				t.Fatalf("right after the step: %v, want about %v", got, c.gain*c.jump)
			}
			r.steps(int(lagSeconds(c.lag)*100) - 1)
			if got := r.get("o_out"); !near(got, c.atLag, 1e-9) {
				t.Fatalf("one lag after the step: %v, want %v", got, c.atLag)
			}
		})
	}
}

func lagSeconds(s string) float64 {
	d, _ := configs.ParseDuration(s)
	return d.Seconds()
}

// A moving average over 64 cycles (0.64 s at 10 ms) is exactly the mean of
// the last 64 inputs; a live change of window restarts it.
func TestMovingAverage(t *testing.T) {
	r := procRig(t, "moving_average", "p:window=640ms")
	for i := 1; i <= 100; i++ {
		r.set("x", float64(i))
		r.step()
	}
	if got := r.get("o_out"); !near(got, (37.0+100)/2, 1e-9) {
		t.Fatalf("mean of 37..100: got %v", got)
	}
	r.set("x", math.NaN())
	r.step()
	if s := r.sample("o_out"); s.Quality != tag.Bad || !near(s.Value, 68.5, 1e-9) {
		t.Fatalf("NaN in: %+v, want 68.5 held, bad", s)
	}
	if err := r.tp.SetParam("b", "window", 1.28); err != nil {
		t.Fatal(err)
	}
	r.set("x", 7)
	r.step()
	if got := r.get("o_out"); got != 7 {
		t.Fatalf("after a change of window: %v, want the average restarted at 7", got)
	}
	// A window of 1 s at 10 ms: 64 parts of 15.6 ms, each 1 or 2 cycles;
	// a step is averaged in within 65/64 of the window.
	r = procRig(t, "moving_average", "p:window=1s")
	r.set("x", 0)
	r.steps(200)
	r.set("x", 1)
	r.steps(50)
	if got := r.get("o_out"); !near(got, 0.5, 0.02) {
		t.Fatalf("half a window after a step: %v, want about 0.5", got)
	}
	r.steps(52)
	if got := r.get("o_out"); got != 1 {
		t.Fatalf("65/64 of a window after a step: %v, want 1", got)
	}
	// The running sums do not drift over a long run: they are summed afresh
	// once a round, so the rounding left is that of one round of 1e6s.
	for i := range 100000 {
		r.set("x", 1e6+float64(i%7)*0.1)
		r.step()
	}
	r.set("x", 0.1)
	r.steps(110)
	if got := r.get("o_out"); math.Abs(got-0.1) > 1e-8 {
		t.Fatalf("after 100000 cycles of 1e6 and 110 of 0.1: %v, want 0.1", got)
	}
}

// rate_of_change: 0 in the first cycle, then the slope in units per
// second, filtered by tau.
func TestRateOfChange(t *testing.T) {
	r := procRig(t, "rate_of_change")
	r.set("x", 10)
	r.step()
	if got := r.get("o_out"); got != 0 {
		t.Fatalf("first cycle: %v, want 0", got)
	}
	for i := 1; i <= 5; i++ {
		r.set("x", 10+0.02*float64(i)) // 2 units a second
		r.step()
		if got := r.get("o_out"); !near(got, 2, 1e-9) {
			t.Fatalf("ramp of 2/s: %v", got)
		}
	}
	r = procRig(t, "rate_of_change", "p:tau=1s")
	r.set("x", 0)
	r.step()
	for i := 1; i <= 100; i++ {
		r.set("x", 0.02*float64(i))
		r.step()
	}
	if got := r.get("o_out"); !near(got, 2*(1-math.Exp(-1)), 1e-9) {
		t.Fatalf("filtered ramp after tau: %v, want %v", got, 2*(1-math.Exp(-1)))
	}
	r.set("x", math.Inf(1))
	r.step()
	if s := r.sample("o_out"); s.Quality != tag.Bad || !finite(s.Value) {
		t.Fatalf("infinite in: %+v, want the last rate held, bad", s)
	}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// A tank's level to its volume: interpolated inside the table, the end
// points beyond it (uncertain), 0 and bad for NaN; a table point changed
// live takes effect at once.
func TestCharacterizer(t *testing.T) {
	r := procRig(t, "characterizer", "p:x1=0", "p:y1=0", "p:x2=1", "p:y2=10", "p:x3=2", "p:y3=40")
	for _, c := range []struct {
		in, want float64
		q        tag.Quality
	}{
		{0, 0, tag.Good}, {0.5, 5, tag.Good}, {1, 10, tag.Good}, {1.5, 25, tag.Good}, {2, 40, tag.Good},
		{-1, 0, tag.Uncertain}, {3, 40, tag.Uncertain}, {math.Inf(1), 40, tag.Uncertain}, {math.NaN(), 0, tag.Bad},
	} {
		r.set("x", c.in)
		r.step()
		if s := r.sample("o_out"); s.Value != c.want || s.Quality != c.q {
			t.Errorf("in %v: %+v, want %v %v", c.in, s, c.want, c.q)
		}
	}
	if err := r.tp.SetParam("b", "y3", 20); err != nil {
		t.Fatal(err)
	}
	r.set("x", 1.5)
	r.step()
	if got := r.get("o_out"); got != 15 {
		t.Fatalf("after y3 = 20: %v, want 15", got)
	}
	if err := r.tp.SetParam("b", "x3", 0.5); err == nil {
		t.Fatal("SetParam took x3 below x2")
	}
}

// A table is checked at load: each error at the parameter's line and
// column, saying what to fix.
func TestCharacterizerTableErrors(t *testing.T) {
	tags := []string{"x", "out", "flag:bool", "flag2:bool"}
	for _, c := range []struct {
		name  string
		block configs.Block
		pos   configs.Pos
		msg   string
	}{
		{"one point", blk(10, "c", "characterizer", "in:in=x", "p:x1=0", "p:y1=0"), pos(10, 5), `needs parameter "x2"`},
		{"x not increasing", blk(10, "c", "characterizer", "in:in=x", "p:x1=0", "p:y1=0", "p:x2=1", "p:y2=1", "p:x3=1", "p:y3=2"), pos(16, 7), "x3 must be above x2"},
		{"x decreasing", blk(10, "c", "characterizer", "in:in=x", "p:x1=5", "p:y1=0", "p:x2=1", "p:y2=1"), pos(14, 7), "x2 must be above x1"},
		{"x without y", blk(10, "c", "characterizer", "in:in=x", "p:x1=0", "p:y1=0", "p:x2=1", "p:y2=1", "p:x3=2"), pos(16, 7), "x3 has no y3"},
		{"y without x", blk(10, "c", "characterizer", "in:in=x", "p:x1=0", "p:y1=0", "p:x2=1", "p:y2=1", "p:y3=2"), pos(16, 7), "y3 has no x3"},
		{"gap", blk(10, "c", "characterizer", "in:in=x", "p:x1=0", "p:y1=0", "p:x2=1", "p:y2=1", "p:x4=2", "p:y4=3"), pos(16, 7), "follows an unset point"},
		{"not a number", blk(10, "c", "characterizer", "in:in=x", "p:x1=low", "p:y1=0", "p:x2=1", "p:y2=1"), pos(12, 7), `must be a number, not "low"`},
		{"zero lag", blk(10, "c", "lead_lag", "in:in=x", "p:lag=0"), pos(12, 7), "lag must be above 0"},
		{"negative lag", blk(10, "c", "lead_lag", "in:in=x", "p:lag=-1s"), pos(12, 7), "is a time"},
		{"negative lead", blk(10, "c", "lead_lag", "in:in=x", "p:lead=-1s", "p:lag=1s"), pos(12, 7), "is a time"},
		{"zero window", blk(10, "c", "moving_average", "in:in=x", "p:window=0"), pos(12, 7), "window must be above 0"},
		{"negative tau", blk(10, "c", "rate_of_change", "in:in=x", "p:tau=-2s"), pos(12, 7), "is a time"},
		{"split outside", blk(10, "c", "split_range", "in:in=x", "p:split=120"), pos(12, 7), "split must be below in_max"},
		{"integrator limits", blk(10, "c", "integrator", "in:in=x", "p:out_min=5", "p:out_max=1"), pos(13, 7), "out_max must be above out_min"},
		{"alarm off_delay", blk(10, "c", "alarm", "in:in=x", "p:hi=1", "p:off_delay=-1s"), pos(13, 7), "is a time"},
		{"unacked without ack", blk(10, "c", "alarm", "in:in=x", "p:hi=1", "out:unacked=flag", "out:active=flag2"), pos(10, 5), "writes unacked but has no ack input, so unacked would never turn off (wire ack to a writable bool tag, e.g. flag2_ack)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			es := compileErrs(t, config(tags, c.block))
			for _, e := range es {
				if e.Pos == c.pos && strings.Contains(e.Msg, c.msg) {
					return
				}
			}
			t.Fatalf("want %v: …%s…, got\n%v", c.pos, c.msg, es)
		})
	}
}

// split_range: heating and cooling from one controller output.
func TestSplitRange(t *testing.T) {
	r := procRig(t, "split_range", "p:reverse1=true")
	for _, c := range []struct{ in, out1, out2 float64 }{
		{-10, 100, 0}, {0, 100, 0}, {25, 50, 0}, {50, 0, 0}, {75, 0, 50}, {100, 0, 100}, {130, 0, 100},
	} {
		r.set("x", c.in)
		r.step()
		if a, b := r.get("o_out1"), r.get("o_out2"); a != c.out1 || b != c.out2 {
			t.Errorf("in %v: out1 %v out2 %v, want %v %v", c.in, a, b, c.out1, c.out2)
		}
	}
	if err := r.tp.SetParam("b", "reverse1", 0); err != nil {
		t.Fatal(err)
	}
	r.set("x", 25)
	r.step()
	if got := r.get("o_out1"); got != 50 {
		t.Fatalf("not reversed: %v", got)
	}
	r.set("x", math.NaN())
	r.step()
	if s := r.sample("o_out1"); s.Quality != tag.Bad || s.Value != 0 {
		t.Fatalf("NaN in: %+v, want 0, bad", s)
	}
}

// The alarm: on-delay, off-delay, deadband, and acknowledge: any raised
// limit turns unacked on until a rising edge of ack, also after the alarm
// cleared; an ack held on does not acknowledge a later alarm.
func TestAlarmAcknowledge(t *testing.T) {
	r := procRig(t, "alarm", "in:ack=ack", "p:hi=90", "p:deadband=2", "p:delay=50ms", "p:off_delay=100ms")
	step := func(x float64, n int) {
		r.set("x", x)
		r.steps(n)
	}
	want := func(when string, hi, unacked bool) {
		t.Helper()
		if r.on("o_hi") != hi || r.on("o_unacked") != unacked || r.on("o_active") != hi {
			t.Fatalf("%s: hi %v active %v unacked %v, want hi %v unacked %v", when, r.on("o_hi"), r.on("o_active"), r.on("o_unacked"), hi, unacked)
		}
	}
	step(95, 5)
	want("40 ms above hi", false, false)
	step(95, 1)
	want("50 ms above hi", true, true)
	step(89, 50)
	want("inside the limit, not by the deadband", true, true)
	step(87, 10)
	want("inside by the deadband for 90 ms", true, true)
	step(87, 1)
	want("inside by the deadband for 100 ms", false, true)
	r.setBool("ack", true)
	step(87, 1)
	want("acknowledged after clearing", false, false)
	step(95, 6) // ack still on: this alarm is not acknowledged by it
	want("raised while ack stays on", true, true)
	r.setBool("ack", false)
	step(95, 1)
	want("ack off", true, true)
	r.setBool("ack", true)
	step(95, 1)
	want("acknowledged while active", true, false)
	// A bad in holds the outputs, unacked too.
	r.setQuality("x", tag.Bad, tag.CommFailure)
	r.steps(20)
	if s := r.sample("o_unacked"); s.Quality != tag.Bad || s.Value != 0 {
		t.Fatalf("bad in: %+v", s)
	}
}

// An alarm written before ack, unacked and off_delay existed runs as it did.
func TestAlarmOldParams(t *testing.T) {
	r := procRig(t, "alarm", "in:ack=ack", "p:lo=10", "p:lolo=5", "p:deadband=1", "p:delay=20ms")
	r.set("x", 4)
	r.steps(3)
	if !r.on("o_lo") || !r.on("o_lolo") || !r.on("o_active") || !r.on("o_unacked") {
		t.Fatal("lo/lolo not raised after the delay")
	}
	r.set("x", 5.5)
	r.step()
	if !r.on("o_lolo") {
		t.Fatal("lolo cleared inside the deadband")
	}
	r.set("x", 6.5)
	r.step()
	if r.on("o_lolo") || !r.on("o_lo") {
		t.Fatal("lolo not cleared at once beyond the deadband (off_delay 0)")
	}
}

// pid's ff adds to the output inside the limits; tracking sees it, so the
// return to automatic is bumpless.
func TestPIDFeedForward(t *testing.T) {
	tags := []string{"pv", "sp", "ff", "trk:bool", "man", "u"}
	r := newRig(t, config(tags, blk(1, "c", "pid", "in:pv=pv", "in:sp=sp", "in:ff=ff", "in:track=trk", "in:man_out=man",
		"p:kp=2", "p:ti=10s", "p:bias=5", "out:out=u")), 10*time.Millisecond)
	r.set("pv", 50)
	r.set("sp", 50)
	r.set("ff", 30)
	r.step()
	if got := r.get("u"); got != 35 {
		t.Fatalf("no error, ff 30, bias 5: %v, want 35", got)
	}
	r.set("ff", 200)
	r.step()
	if got := r.get("u"); got != 100 {
		t.Fatalf("ff beyond out_max: %v, want 100", got)
	}
	r.set("ff", 30)
	r.setBool("trk", true)
	r.set("man", 60)
	r.steps(5)
	r.setBool("trk", false)
	r.step()
	if got := r.get("u"); !near(got, 60, 1e-9) {
		t.Fatalf("back to automatic: %v, want 60 (bumpless with ff)", got)
	}
	wantBadAfter(t, r, "ff", math.NaN(), "u")
}

// wantBadAfter sets input to v, runs a cycle and wants output bad.
func wantBadAfter(t *testing.T, r *rig, input string, v float64, output string) {
	t.Helper()
	r.set(input, v)
	r.step()
	if s := r.sample(output); s.Quality != tag.Bad {
		t.Fatalf("%s = %v: %s is %+v, want bad", input, v, output, s)
	}
}

// BenchmarkProcessBlocks runs 100 blocks of each process-control type and
// reports the time per block.
func BenchmarkProcessBlocks(b *testing.B) {
	for _, typ := range []string{"integrator", "lead_lag", "moving_average", "rate_of_change", "characterizer", "split_range", "scheduler", "alarm", "pid"} {
		b.Run(typ, func(b *testing.B) {
			bt, _ := blocks.Lookup(typ)
			var bs []configs.Block
			for i := range 100 {
				blkI := exampleBlock(bt, 100*(i+1))
				blkI.Name = fmt.Sprintf("b%d", i)
				bs = append(bs, blkI)
			}
			r := newRig(b, config([]string{"x", "b:bool"}, bs...), 10*time.Millisecond)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			k := 0.0
			for b.Loop() {
				k++
				r.set("x", math.Mod(k, 7)*10)
				r.setBool("b", int(k)%5 == 0)
				r.step()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/block")
		})
	}
}

// schedRig is a scheduler b in the time zone tz, its clock at start
// (stepping a minute a cycle); outputs o_on, o_window.
func schedRig(t *testing.T, tz string, start time.Time, spec ...string) *rig {
	t.Helper()
	cfg := config([]string{"fon:bool", "foff:bool", "o_on:bool", "o_window"},
		blk(1, "b", "scheduler", append(spec, "in:force_on=fon", "in:force_off=foff", "out:on=o_on", "out:window=o_window")...))
	cfg.Metadata.Timezone = tz
	r := newRig(t, cfg, time.Minute)
	r.tp.SetEpoch(start.UnixNano() - int64(time.Minute)) // the first step runs at start
	return r
}

// changes runs the scheduler for d and lists the UTC times at which on
// changed, as "15:04 on" or "15:04 off".
func changes(r *rig, start time.Time, d time.Duration) []string {
	var out []string
	was := false
	for at := start; at.Before(start.Add(d)); at = at.Add(time.Minute) {
		r.step()
		if on := r.on("o_on"); on != was || at == start && on {
			out = append(out, at.UTC().Format("Mon 15:04")+map[bool]string{true: " on", false: " off"}[on])
			was = on
		}
	}
	return out
}

// Weekly windows: weekdays 06:30-18:00, and Friday 22:00 into Saturday
// 06:00; the forces override them.
func TestSchedulerWeekly(t *testing.T) {
	monday := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	r := schedRig(t, "", monday, "p:days1=weekdays", "p:on1=6h30m", "p:off1=18h", "p:days2=fri", "p:on2=22h", "p:off2=6h")
	got := changes(r, monday, 7*24*time.Hour)
	want := []string{"Mon 06:30 on", "Mon 18:00 off", "Tue 06:30 on", "Tue 18:00 off", "Wed 06:30 on", "Wed 18:00 off",
		"Thu 06:30 on", "Thu 18:00 off", "Fri 06:30 on", "Fri 18:00 off", "Fri 22:00 on", "Sat 06:00 off"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("windows opened and closed\n%v\nwant\n%v", got, want)
	}
	// Monday 10:00 again: window 1; the forces.
	r = schedRig(t, "UTC", monday.Add(10*time.Hour), "p:days1=weekdays", "p:on1=6h30m", "p:off1=18h")
	r.step()
	if !r.on("o_on") || r.get("o_window") != 1 {
		t.Fatalf("Monday 10:00: on %v window %v", r.on("o_on"), r.get("o_window"))
	}
	r.setBool("foff", true)
	r.setBool("fon", true)
	r.step()
	if r.on("o_on") {
		t.Fatal("force_off does not dominate")
	}
	// A live change of the window.
	r.setBool("foff", false)
	r.setBool("fon", false)
	if err := r.tp.SetParam("b", "on1", 11*3600); err != nil {
		t.Fatal(err)
	}
	r.step()
	if r.on("o_on") {
		t.Fatal("on1 moved to 11:00 live, still on at 10:02")
	}
	if err := r.tp.SetParam("b", "on1", 25*3600); err == nil {
		t.Fatal("SetParam took on1 = 25h")
	}
}

// Across the changes of daylight-saving time in Europe/Berlin: a window
// in the hour that is skipped opens at the jump, one in the hour that
// repeats stays open for both.
func TestSchedulerDST(t *testing.T) {
	spring := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC) // 02:00 CET -> 03:00 CEST at 01:00 UTC
	r := schedRig(t, "Europe/Berlin", spring, "p:days1=sun", "p:on1=2h30m", "p:off1=4h")
	if got := changes(r, spring, 4*time.Hour); strings.Join(got, ", ") != "Sun 01:00 on, Sun 02:00 off" {
		t.Fatalf("spring forward: %v, want on at the jump (03:00 CEST = 01:00 UTC) until 04:00 CEST", got)
	}
	autumn := time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC) // 03:00 CEST -> 02:00 CET at 01:00 UTC
	r = schedRig(t, "Europe/Berlin", autumn.Add(-time.Hour), "p:days1=sun", "p:on1=2h", "p:off1=3h")
	if got := changes(r, autumn.Add(-time.Hour), 4*time.Hour); strings.Join(got, ", ") != "Sun 00:00 on, Sun 02:00 off" {
		t.Fatalf("fall back: %v, want 02:00-03:00 local open twice: 00:00-02:00 UTC", got)
	}
}

// A time zone that does not exist and a time of day beyond a day are
// load errors at their places.
func TestSchedulerErrors(t *testing.T) {
	cfg := config([]string{"o:bool"}, blk(10, "s", "scheduler", "p:days1=daily", "p:on1=6h", "p:off1=18h"))
	cfg.Metadata = configs.Metadata{Pos: pos(1, 1), Name: "plant", Timezone: "Europe/Berln"}
	if es := compileErrs(t, cfg); len(es) != 1 || es[0].Pos != pos(1, 1) || !strings.Contains(es[0].Msg, `metadata.timezone "Europe/Berln" is not a time zone`) {
		t.Fatalf("unknown time zone: %v", es)
	}
	for _, c := range []struct {
		spec []string
		pos  configs.Pos
		msg  string
	}{
		{[]string{"p:days1=daily", "p:on1=24h", "p:off1=18h"}, pos(12, 7), "on1 is a time of day: below 24h"},
		{[]string{"p:days1=daily", "p:on1=6h", "p:off1=6h"}, pos(13, 7), "opens and closes at the same time"},
		{[]string{"p:days1=someday"}, pos(11, 7), "must be one of never, daily, weekdays"},
		{[]string{"p:on1=6h"}, pos(10, 5), `needs parameter "days1"`},
	} {
		es := compileErrs(t, config([]string{"o:bool"}, blk(10, "s", "scheduler", c.spec...)))
		found := false
		for _, e := range es {
			found = found || e.Pos == c.pos && strings.Contains(e.Msg, c.msg)
		}
		if !found {
			t.Errorf("%v: want %v …%s…, got %v", c.spec, c.pos, c.msg, es)
		}
	}
}

// A scheduler in a time zone with daylight-saving time allocates nothing
// per cycle.
func TestSchedulerDoesNotAllocate(t *testing.T) {
	r := schedRig(t, "Europe/Berlin", time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC), "p:days1=weekend", "p:on1=2h30m", "p:off1=4h",
		"p:days2=daily", "p:on2=22h", "p:off2=6h")
	if n := testing.AllocsPerRun(3000, r.step); n != 0 {
		t.Fatalf("%v allocations per cycle", n)
	}
}

// pid's ext_reset: the integral follows it through a lag of ti, so out
// settles at kp*error + ext_reset, and a loop whose output is not used
// (an override) does not wind up.
func TestPIDExternalReset(t *testing.T) {
	tags := []string{"pv", "sp", "er", "u"}
	r := newRig(t, config(tags, blk(1, "c", "pid", "in:pv=pv", "in:sp=sp", "in:ext_reset=er",
		"p:kp=2", "p:ti=1s", "out:out=u")), 10*time.Millisecond)
	r.set("pv", 50)
	r.set("sp", 50)
	r.set("er", 40)
	r.steps(100) // the integral starts at 0: one ti
	if got := r.get("u"); !near(got, 40*(1-math.Exp(-1)), 1e-9) {
		t.Fatalf("one ti after start: %v, want 40(1 - 1/e)", got)
	}
	// An error of 40 for a minute: the output stays at kp*e + ext_reset
	// (clamped), the integral does not run away.
	r.set("sp", 90)
	r.steps(6000)
	if got := r.get("u"); got != 100 {
		t.Fatalf("large error: %v, want 100 (clamped)", got)
	}
	r.set("sp", 50)
	r.step()
	if got := r.get("u"); !near(got, 40, 1e-6) {
		t.Fatalf("error gone: %v, want 40 at once (no windup)", got)
	}
	wantBadAfter(t, r, "er", math.NaN(), "u")
}

// A new config that changes process blocks' parameters applies live: the
// exchanger example's table point, shift start, lead-lag and averaging
// window are parameter changes, each taken by SetParam as the compiler
// would read it; x of a point moved past its neighbour is refused.
func TestProcessParamsChangeLive(t *testing.T) {
	text, err := os.ReadFile("../../configs/examples/feed-forward.yaml")
	if err != nil {
		t.Fatal(err)
	}
	load := func(s string) *configs.Config {
		cfg, err := configs.LoadBytes("feed-forward.yaml", []byte(s), blocks.Validate)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	old := load(string(text))
	s := string(text)
	for _, r := range [][2]string{{"y4: 7.85", "y4: 8"}, {"on1: 6h", "on1: 7h"}, {"lag: 60s", "lag: 90s"}, {"window: 1m", "window: 2m"}} {
		if strings.Count(s, r[0]) != 1 {
			t.Fatalf("feed-forward.yaml: %q occurs %d times", r[0], strings.Count(s, r[0]))
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	changes, err := blocks.ParamChanges(old, load(s))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range changes {
		names = append(names, fmt.Sprintf("%s=%v", c.Name(), c.Value))
	}
	if got := strings.Join(names, " "); got != "ff_dynamics.lag=90 shifts.on1=25200 tank_table.y4=8 temp_avg.window=120" {
		t.Fatalf("changes: %s", got)
	}
	tab, err := old.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := blocks.Compile(old, tab)
	if err != nil {
		t.Fatal(err)
	}
	tp := prog.Task("exchanger")
	for _, c := range changes {
		if err := tp.SetParam(c.Block, c.Param, c.Value); err != nil {
			t.Fatal(err)
		}
		if v, _ := tp.Param(c.Block, c.Param); v != c.Value {
			t.Fatalf("%s after SetParam: %v", c.Name(), v)
		}
	}
	if err := tp.SetParam("tank_table", "x3", 0.2); !errors.Is(err, blocks.ErrParamValue) {
		t.Fatalf("x3 below x2 live: %v", err)
	}
}

// Hostile inputs and cycle times: NaN, infinities, huge and tiny values,
// zero and huge cycles, and live parameter changes to odd values never
// panic a process block, and a bad output always carries bad quality when
// its value is not a finite number.
func TestProcessBlocksHostileInputs(t *testing.T) {
	vals := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e308, -1e308, 5e-324, 0, -1, 50, 99.999}
	dts := []time.Duration{0, time.Nanosecond, 10 * time.Millisecond, time.Hour, 1 << 62}
	for _, typ := range []string{"integrator", "lead_lag", "moving_average", "rate_of_change", "characterizer", "split_range", "scheduler", "alarm", "pid"} {
		t.Run(typ, func(t *testing.T) {
			bt, _ := blocks.Lookup(typ)
			b := exampleBlock(bt, 10)
			b.Outputs = map[string]string{bt.Outputs[0].Name: "o"}
			oTag := "o"
			if bt.Outputs[0].Kind == configs.PortBool {
				oTag = "o:bool"
			}
			r := newRig(t, config([]string{"x", "b:bool", oTag}, b), 10*time.Millisecond)
			for i := range 2000 {
				r.set("x", vals[i%len(vals)])
				r.setBool("b", i%3 == 0)
				r.dt = dts[(i/7)%len(dts)]
				r.step()
				if i%50 == 0 {
					for _, p := range bt.Params {
						_ = r.tp.SetParam("b"+typ, p.Name, vals[(i/50)%len(vals)])
					}
				}
				if s := r.sample("o"); !finite(s.Value) && s.Quality != tag.Bad {
					t.Fatalf("cycle %d (x %v, dt %v): %+v is not finite but not bad", i, vals[i%len(vals)], r.dt, s)
				}
			}
		})
	}
}
