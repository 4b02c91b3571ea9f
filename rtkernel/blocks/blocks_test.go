package blocks_test

import (
	"math"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm/tag"
)

// timerRig is one timer block between tags x (bool) and q, et.
func timerRig(t *testing.T, typ, pt string) *rig {
	return newRig(t, config([]string{"x:bool", "q:bool", "et"},
		blk(10, "tm", typ, "in:in=x", "out:q=q", "out:et=et", "p:pt="+pt)), 100*time.Millisecond)
}

// trace drives x through the inputs, one per 100 ms cycle, and checks q and
// et (in seconds) after each.
func (r *rig) trace(in []bool, q []bool, et []float64) {
	r.t.Helper()
	for k := range in {
		r.setBool("x", in[k])
		r.step()
		if r.on("q") != q[k] || !near(r.get("et"), et[k], 1e-9) {
			r.t.Fatalf("cycle %d (in=%v): q=%v et=%v, want q=%v et=%v", k, in[k], r.on("q"), r.get("et"), q[k], et[k])
		}
	}
}

const T, F = true, false

func TestTON(t *testing.T) {
	r := timerRig(t, "ton", "300ms")
	r.trace(
		[]bool{F, T, T, T, T, T, F, T, T, F, T},
		[]bool{F, F, F, F, T, T, F, F, F, F, F},
		[]float64{0, 0, .1, .2, .3, .3, 0, 0, .1, 0, 0})
}

func TestTONZero(t *testing.T) {
	r := timerRig(t, "ton", "0s")
	r.trace([]bool{F, T, F}, []bool{F, T, F}, []float64{0, 0, 0})
}

func TestTOF(t *testing.T) {
	r := timerRig(t, "tof", "200ms")
	r.trace(
		// off at start; on; falling edge starts the timer; re-trigger (in
		// back on) resets it; runs out after 200 ms and et stays at pt.
		[]bool{F, T, F, F, T, F, F, F, F, T},
		[]bool{F, T, T, T, T, T, T, F, F, T},
		[]float64{0, 0, 0, .1, 0, 0, .1, .2, .2, 0})
}

func TestTP(t *testing.T) {
	r := timerRig(t, "tp", "300ms")
	r.trace(
		// a rising edge starts a 300 ms pulse; edges during the pulse are
		// ignored; et stays at pt while in is still on, then resets; a new
		// edge starts a new pulse.
		[]bool{T, F, T, T, T, T, F, T, F, F},
		[]bool{T, T, T, F, F, F, F, T, T, T},
		[]float64{0, .1, .2, .3, .3, .3, 0, 0, .1, .2})
}

func TestAlarmDeadbandAndDelay(t *testing.T) {
	r := newRig(t, config([]string{"x", "hi:bool", "hihi:bool", "lo:bool", "any:bool"},
		blk(10, "al", "alarm", "in:in=x", "out:hi=hi", "out:hihi=hihi", "out:lo=lo", "out:active=any",
			"p:hi=80", "p:hihi=95", "p:lo=20", "p:deadband=2", "p:delay=300ms")), 100*time.Millisecond)
	steps := []struct {
		x                   float64
		hi, hihi, lo, anyOn bool
	}{
		{50, F, F, F, F},
		{81, F, F, F, F}, // on-delay starts
		{81, F, F, F, F},
		{79, F, F, F, F}, // dropped out: the delay restarts
		{80, F, F, F, F},
		{85, F, F, F, F},
		{85, F, F, F, F},
		{85, T, F, F, T}, // 300 ms at or above 80
		{79, T, F, F, T}, // inside the 2-unit deadband: still on
		{78.5, T, F, F, T},
		{77.9, F, F, F, F}, // below 80 - 2: clears at once
		{10, F, F, F, F},
		{10, F, F, F, F},
		{10, F, F, F, F},
		{10, F, F, T, T},
		{21, F, F, T, T},
		{22.5, F, F, F, F},
	}
	for k, s := range steps {
		r.set("x", s.x)
		r.step()
		if r.on("hi") != s.hi || r.on("hihi") != s.hihi || r.on("lo") != s.lo || r.on("any") != s.anyOn {
			t.Fatalf("step %d (x=%v): hi=%v hihi=%v lo=%v active=%v, want %v %v %v %v", k, s.x,
				r.on("hi"), r.on("hihi"), r.on("lo"), r.on("any"), s.hi, s.hihi, s.lo, s.anyOn)
		}
	}
}

func TestCounter(t *testing.T) {
	r := newRig(t, config([]string{"u:bool", "d:bool", "rs:bool", "cv", "q:bool", "qd:bool"},
		blk(10, "cnt", "counter", "in:up=u", "in:down=d", "in:reset=rs", "out:cv=cv", "out:q=q", "out:qd=qd", "p:pv=3")), time.Millisecond)
	steps := []struct {
		u, d, rs bool
		cv       float64
	}{
		{F, F, F, 0},
		{T, F, F, 1}, // rising edge
		{T, F, F, 1}, // held: no count
		{F, F, F, 1},
		{T, F, F, 2},
		{F, F, F, 2},
		{T, T, F, 2}, // up and down together
		{F, F, F, 2},
		{T, F, F, 3},
		{F, T, F, 2},
		{T, F, T, 0}, // reset wins and holds
		{F, F, T, 0},
		{T, F, F, 1}, // a new edge after the reset
		{F, T, F, 0},
		{F, F, F, 0},
		{F, T, F, -1},
	}
	for k, s := range steps {
		r.setBool("u", s.u)
		r.setBool("d", s.d)
		r.setBool("rs", s.rs)
		r.step()
		if r.get("cv") != s.cv || r.on("q") != (s.cv >= 3) || r.on("qd") != (s.cv <= 0) {
			t.Fatalf("step %d: cv=%v q=%v qd=%v, want cv=%v", k, r.get("cv"), r.on("q"), r.on("qd"), s.cv)
		}
	}
}

func TestLagStepResponse(t *testing.T) {
	r := newRig(t, config([]string{"x", "y"}, blk(10, "f", "lag", "in:in=x", "out:out=y", "p:tau=2s")), 10*time.Millisecond)
	r.set("x", 0)
	r.step()
	r.set("x", 1)
	for k := 1; k <= 1000; k++ {
		r.step()
		want := 1 - math.Exp(-float64(k)*0.01/2)
		if !near(r.get("y"), want, 1e-12) {
			t.Fatalf("t=%vs: lag out %v, want 1-exp(-t/tau) = %v", float64(k)*0.01, r.get("y"), want)
		}
	}
}

func TestLagVariableCycle(t *testing.T) {
	r := newRig(t, config([]string{"x", "y"}, blk(10, "f", "lag", "in:in=x", "out:out=y", "p:tau=1s")), 10*time.Millisecond)
	r.set("x", 0)
	r.step()
	r.set("x", 1)
	elapsed := 0.0
	for k := range 200 { // jittery cycle times: still exact
		r.dt = time.Duration(5+k%7) * time.Millisecond
		elapsed += r.dt.Seconds()
		r.step()
	}
	if want := 1 - math.Exp(-elapsed); !near(r.get("y"), want, 1e-12) {
		t.Fatalf("lag out %v after %vs, want %v", r.get("y"), elapsed, want)
	}
}

func TestStatelessBlocks(t *testing.T) {
	r := newRig(t, config([]string{"x", "y", "lim", "sc", "db", "mn", "mx", "avg", "sel", "s:bool"},
		blk(10, "l", "limit", "in:in=x", "out:out=lim", "p:min=-5", "p:max=5"),
		blk(20, "k", "scale", "in:in=x", "out:out=sc", "p:gain=2", "p:offset=1"),
		blk(30, "d", "deadband", "in:in=x", "out:out=db", "p:width=1.5"),
		blk(40, "a", "min", "in:in1=x", "in:in2=y", "in:in3=4", "out:out=mn"),
		blk(50, "b", "max", "in:in1=x", "in:in2=y", "out:out=mx"),
		blk(60, "c", "average", "in:in1=x", "in:in2=y", "in:in3=3", "out:out=avg"),
		blk(70, "e", "select", "in:sel=s", "in:in1=x", "in:in2=y", "out:out=sel"),
	), time.Millisecond)
	for _, c := range []struct {
		x, y                                float64
		s                                   bool
		lim, sc, db, mn, mx, avg, selWanted float64
	}{
		{7, 1, F, 5, 15, 5.5, 1, 7, 11.0 / 3, 7},
		{-7, 2, T, -5, -13, -5.5, -7, 2, -2.0 / 3, 2},
		{1, 9, F, 1, 3, 0, 1, 9, 13.0 / 3, 1},
		{-1.5, 0, F, -1.5, -2, 0, -1.5, 0, 0.5, -1.5},
	} {
		r.set("x", c.x)
		r.set("y", c.y)
		r.setBool("s", c.s)
		r.step()
		got := []float64{r.get("lim"), r.get("sc"), r.get("db"), r.get("mn"), r.get("mx"), r.get("avg"), r.get("sel")}
		want := []float64{c.lim, c.sc, c.db, c.mn, c.mx, c.avg, c.selWanted}
		for i := range got {
			if !near(got[i], want[i], 1e-12) {
				t.Fatalf("x=%v y=%v: limit, scale, deadband, min, max, average, select = %v, want %v", c.x, c.y, got, want)
			}
		}
	}
}

func TestLogic(t *testing.T) {
	r := newRig(t, config([]string{"a:bool", "b:bool", "c:bool", "and:bool", "or:bool", "xor:bool", "not:bool"},
		blk(10, "g1", "and", "in:in1=a", "in:in2=b", "in:in3=c", "out:out=and"),
		blk(20, "g2", "or", "in:in1=a", "in:in2=b", "in:in3=c", "out:out=or"),
		blk(30, "g3", "xor", "in:in1=a", "in:in2=b", "in:in3=c", "out:out=xor"),
		blk(40, "g4", "not", "in:in=a", "out:out=not"),
	), time.Millisecond)
	for bits := range 8 {
		a, b, c := bits&1 != 0, bits&2 != 0, bits&4 != 0
		r.setBool("a", a)
		r.setBool("b", b)
		r.setBool("c", c)
		r.step()
		n := bits&1 + bits>>1&1 + bits>>2&1
		if r.on("and") != (a && b && c) || r.on("or") != (a || b || c) || r.on("xor") != (n%2 == 1) || r.on("not") == a {
			t.Fatalf("a=%v b=%v c=%v: and=%v or=%v xor=%v not=%v", a, b, c, r.on("and"), r.on("or"), r.on("xor"), r.on("not"))
		}
	}
}

func TestCompareAndHysteresis(t *testing.T) {
	r := newRig(t, config([]string{"a", "gt:bool", "le:bool", "eq:bool", "ne:bool", "h:bool"},
		blk(10, "c1", "compare", "in:a=a", "in:b=10", "out:out=gt", "p:op=gt", "p:hysteresis=1"),
		blk(20, "c2", "compare", "in:a=a", "in:b=10", "out:out=le", "p:op=le"),
		blk(30, "c3", "compare", "in:a=a", "in:b=10", "out:out=eq", "p:op=eq", "p:hysteresis=0.5"),
		blk(40, "c4", "compare", "in:a=a", "in:b=10", "out:out=ne", "p:op=ne"),
		blk(50, "hy", "hysteresis", "in:in=a", "out:out=h", "p:on=11", "p:off=9"),
	), time.Millisecond)
	for k, c := range []struct {
		a                 float64
		gt, le, eq, ne, h bool
	}{
		{5, F, T, F, T, F},
		{10, F, T, T, F, F},
		{10.4, T, F, T, T, F},
		{9.5, T, T, T, T, F}, // gt holds within hysteresis 1
		{11, T, F, F, T, T},
		{9.2, T, T, F, T, T}, // hysteresis stays on above off
		{8.9, F, T, F, T, F},
	} {
		r.set("a", c.a)
		r.step()
		got := [5]bool{r.on("gt"), r.on("le"), r.on("eq"), r.on("ne"), r.on("h")}
		if got != [5]bool{c.gt, c.le, c.eq, c.ne, c.h} {
			t.Fatalf("step %d a=%v: gt le eq ne hysteresis = %v, want %v", k, c.a, got, [5]bool{c.gt, c.le, c.eq, c.ne, c.h})
		}
	}
}

func TestRamp(t *testing.T) {
	r := newRig(t, config([]string{"x", "y"}, blk(10, "rp", "ramp", "in:in=x", "out:out=y", "p:rate=2")), 100*time.Millisecond)
	r.set("x", 5)
	r.step() // starts at the input, no ramp from 0
	r.set("x", 6)
	for k, want := range []float64{5.2, 5.4, 5.6, 5.8, 6, 6} {
		r.step()
		if !near(r.get("y"), want, 1e-12) {
			t.Fatalf("cycle %d: ramp out %v, want %v", k, r.get("y"), want)
		}
	}
	r.set("x", 4)
	r.step()
	if !near(r.get("y"), 5.8, 1e-12) {
		t.Fatalf("ramp down: %v, want 5.8", r.get("y"))
	}
}

// An output carries its worst input's quality and reason; a select carries
// only the selected input's; stateful blocks hold on a bad input.
func TestQuality(t *testing.T) {
	r := newRig(t, config([]string{"x", "y", "s:bool", "sum", "sel", "f"},
		blk(10, "a", "average", "in:in1=x", "in:in2=y", "out:out=sum"),
		blk(20, "e", "select", "in:sel=s", "in:in1=x", "in:in2=y", "out:out=sel"),
		blk(30, "l", "lag", "in:in=x", "out:out=f", "p:tau=1s"),
	), 100*time.Millisecond)
	r.set("x", 1)
	r.set("y", 3)
	r.step()
	if s := r.sample("sum"); s.Quality != tag.Good || s.Time != int64(r.now) {
		t.Fatalf("good inputs: %+v, want good at %d", s, r.now)
	}
	r.setQuality("x", tag.Uncertain, tag.OutOfRange)
	r.setQuality("y", tag.Stale, tag.Timeout)
	r.setBool("s", false)
	r.step()
	if s := r.sample("sum"); s.Quality != tag.Stale || s.Reason != tag.Timeout {
		t.Fatalf("uncertain + stale: %v (%v), want stale (timeout)", s.Quality, s.Reason)
	}
	if s := r.sample("sel"); s.Quality != tag.Uncertain || s.Value != 1 {
		t.Fatalf("select of in1: %+v, want in1's value and uncertain", s)
	}
	r.setQuality("x", tag.Bad, tag.CommFailure)
	r.step()
	if s := r.sample("sum"); s.Quality != tag.Bad || s.Reason != tag.CommFailure {
		t.Fatalf("bad + stale: %v (%v), want bad (communication failure)", s.Quality, s.Reason)
	}
	held := r.get("f")
	r.set("y", 3) // good again; x stays bad
	r.setQuality("x", tag.Bad, tag.CommFailure)
	r.tab.Samples[r.id("x")].Value = 1000
	r.steps(5)
	if s := r.sample("f"); s.Value != held || s.Quality != tag.Bad {
		t.Fatalf("lag on a bad input: %+v, want %v held and bad", s, held)
	}
}

// Tags written and read by blocks of the same task wire the blocks
// together: the reader sees this cycle's value.
func TestTagWiresBlocksOfATask(t *testing.T) {
	r := newRig(t, config([]string{"x", "mid", "y"},
		blk(10, "second", "scale", "in:in=mid", "out:out=y", "p:gain=10"),
		blk(20, "first", "scale", "in:in=x", "out:out=mid", "p:offset=1"),
	), time.Millisecond)
	r.set("x", 2)
	r.step()
	if r.get("y") != 30 {
		t.Fatalf("y = %v, want (2+1)*10 in the same cycle", r.get("y"))
	}
	if got := r.tp.Blocks(); got[0] != "first" || got[1] != "second" {
		t.Fatalf("order %v, want first before second", got)
	}
	if in := r.tp.Inputs(); len(in) != 1 || in[0] != r.id("x") {
		t.Fatalf("Inputs() = %v, want only x", in)
	}
	if out := r.tp.Outputs(); len(out) != 2 {
		t.Fatalf("Outputs() = %v, want mid and y", out)
	}
}

// A loop through a delay: an accumulator sum = x + sum(previous cycle).
func TestDelayBreaksLoop(t *testing.T) {
	r := newRig(t, config([]string{"x", "sum", "late"},
		blk(10, "acc", "average", "in:in1=x", "in:in2=prev.out", "out:out=sum"), // (x + prev)/2
		blk(20, "prev", "delay", "in:in=acc.out", "p:initial=8"),
		blk(30, "later", "delay", "in:in=prev.out", "out:out=late"),
	), time.Millisecond)
	r.set("x", 0)
	want, prev, late := []float64{4, 2, 1, 0.5}, 8.0, 0.0
	for k, w := range want {
		r.step()
		if r.get("sum") != w {
			t.Fatalf("cycle %d: sum %v, want %v", k, r.get("sum"), w)
		}
		if k > 0 && r.get("late") != late {
			t.Fatalf("cycle %d: two-cycle delay %v, want %v", k, r.get("late"), late)
		}
		late, prev = prev, w
	}
}
