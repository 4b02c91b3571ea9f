package blocks_test

import (
	"math"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
)

// plant is a first-order process y' = (K u - y)/T, advanced exactly for a
// constant u over one cycle (zero-order hold).
type plant struct {
	k, tau, y float64
}

func (p *plant) advance(u float64, dt time.Duration) {
	p.y += (p.k*u - p.y) * -math.Expm1(-dt.Seconds()/p.tau)
}

func pidConfig(params ...string) *configs.Config {
	spec := []string{"in:pv=pv", "in:sp=sp", "out:out=u"}
	for _, p := range params {
		spec = append(spec, "p:"+p)
	}
	return config([]string{"pv", "sp", "u", "track:bool", "man"}, blk(10, "fic", "pid", spec...))
}

// loop closes the loop around the plant for n cycles, calling each after
// every cycle.
func (r *rig) loop(p *plant, n int, each func(k int)) {
	for k := range n {
		r.set("pv", p.y)
		r.step()
		p.advance(r.get("u"), r.dt)
		if each != nil {
			each(k)
		}
	}
}

// A PI controller whose integral time cancels the plant's time constant
// makes the closed loop first order with time constant T/(kp K): the step
// response is sp (1 - exp(-t/Tc)).
func TestPIDClosedLoopFirstOrder(t *testing.T) {
	const K, T, kp = 2.0, 5.0, 1.25
	r := newRig(t, pidConfig("kp=1.25", "ti=5s", "out_min=-1000", "out_max=1000"), 10*time.Millisecond)
	p := &plant{k: K, tau: T}
	r.set("sp", 10)
	tc := T / (kp * K)
	worst := 0.0
	r.loop(p, 3000, func(k int) {
		tt := float64(k+1) * r.dt.Seconds()
		want := 10 * (1 - math.Exp(-tt/tc))
		worst = math.Max(worst, math.Abs(p.y-want))
	})
	// The one-cycle measurement delay costs about sp*dt/Tc.
	if worst > 0.1 {
		t.Fatalf("closed-loop response deviates from 1-exp(-t/%gs) by up to %.4f", tc, worst)
	}
	if !near(p.y, 10, 1e-3) {
		t.Fatalf("pv settled at %v, want 10 (no steady-state error with integral action)", p.y)
	}
}

func TestPIDProportionalAndDirection(t *testing.T) {
	for _, tc := range []struct {
		direct string
		want   float64
	}{{"false", 50 + 2*5}, {"true", 50 - 2*5}} {
		r := newRig(t, pidConfig("kp=2", "bias=50", "direct="+tc.direct), 10*time.Millisecond)
		r.set("sp", 20)
		r.set("pv", 15)
		r.step()
		if got := r.get("u"); got != tc.want {
			t.Errorf("direct=%s: out = %v, want %v (error = sp - pv, out rises when pv < sp)", tc.direct, got, tc.want)
		}
	}
}

// The integral stops at the output limit (clamping: it does not integrate
// further into a limit): after 200 s of an unreachable setpoint the output
// leaves the limit on the first cycle after the setpoint becomes reachable.
// Without anti-windup the integral would have grown by kp/ti*30*200 = 1200
// and held the output at 100 for minutes; here pv settles on the new
// setpoint with an undershoot under 5% of the change.
func TestPIDAntiWindup(t *testing.T) {
	r := newRig(t, pidConfig("kp=1", "ti=5s", "out_min=0", "out_max=100"), 10*time.Millisecond)
	p := &plant{k: 0.5, tau: 5}
	r.set("sp", 80) // the plant reaches at most 50
	r.loop(p, 20000, nil)
	if u := r.get("u"); u != 100 {
		t.Fatalf("out = %v during an unreachable setpoint, want the limit 100", u)
	}
	r.set("sp", 30)
	r.loop(p, 1, nil)
	if u := r.get("u"); u >= 100 {
		t.Fatalf("out = %v one cycle after the setpoint came in range: integral wound up", u)
	}
	lowest := math.Inf(1)
	r.loop(p, 15000, func(int) { lowest = math.Min(lowest, p.y) })
	if lowest < 30-0.05*20 {
		t.Fatalf("pv undershot the new setpoint 30 down to %.3f", lowest)
	}
	if !near(p.y, 30, 0.01) {
		t.Fatalf("pv = %v, want 30", p.y)
	}
}

// Auto -> manual (man_out initialised to the output, as an HMI does) ->
// auto: no output step either way.
func TestPIDBumpless(t *testing.T) {
	cfg := pidConfig("kp=1.5", "ti=4s", "out_min=0", "out_max=100")
	cfg.Tasks[0].Blocks[0].Inputs["track"] = configs.Ref{Raw: "track"}
	cfg.Tasks[0].Blocks[0].Inputs["man_out"] = configs.Ref{Raw: "man"}
	r := newRig(t, cfg, 10*time.Millisecond)
	p := &plant{k: 1, tau: 3}
	r.set("sp", 40)
	r.loop(p, 300, nil) // still moving
	last := r.get("u")
	r.set("man", last)
	r.setBool("track", true)
	r.loop(p, 1, nil)
	if got := r.get("u"); got != last {
		t.Fatalf("auto -> manual: out stepped from %v to %v", last, got)
	}
	var pvManual float64
	for k := range 200 { // the operator moves the output by hand
		r.set("man", last+float64(k)*0.1)
		pvManual = p.y
		r.loop(p, 1, nil)
	}
	manual := r.get("u")
	r.setBool("track", false)
	r.set("pv", p.y)
	e := 40 - p.y
	r.step()
	// The first automatic output is the manual one plus what one cycle of
	// control adds: P on the pv change since the last cycle and one cycle
	// of integral. Nothing else: no bump.
	want := manual + 1.5*(pvManual-p.y) + 1.5*0.01/4*e
	if got := r.get("u"); !near(got, want, 1e-9) {
		t.Fatalf("manual -> auto: out = %v, want %v (manual output %v)", got, want, manual)
	}
}

// Derivative on the measurement: a setpoint step gives no derivative kick,
// and a pv ramp gives -kp*td*slope once the filter settled.
func TestPIDDerivativeOnMeasurement(t *testing.T) {
	r := newRig(t, pidConfig("kp=2", "td=1s", "td_filter=10", "bias=50", "out_min=-1000", "out_max=1000"), 10*time.Millisecond)
	r.set("sp", 10)
	r.set("pv", 10)
	r.step()
	r.set("sp", 15)
	r.step()
	if got := r.get("u"); got != 50+2*5 {
		t.Fatalf("after a setpoint step out = %v, want %v (P only, no derivative kick)", got, 50.0+2*5)
	}
	r.set("sp", 10)
	slope := 3.0 // pv units per second
	pv := 10.0
	for range 300 { // 30 filter time constants
		pv += slope * r.dt.Seconds()
		r.set("pv", pv)
		r.step()
	}
	want := 50 + 2*(10-pv) - 2*1*slope
	if got := r.get("u"); !near(got, want, 1e-6) {
		t.Fatalf("out = %v on a pv ramp, want %v", got, want)
	}
}

func TestPIDRateLimit(t *testing.T) {
	r := newRig(t, pidConfig("kp=10", "rate_max=5", "out_min=0", "out_max=100"), 100*time.Millisecond)
	r.set("sp", 0)
	r.set("pv", 0)
	r.step()
	r.set("sp", 10) // P wants 100 at once
	prev := r.get("u")
	for range 30 {
		r.step()
		if d := r.get("u") - prev; d > 5*0.1+1e-9 {
			t.Fatalf("out moved %v in one 100ms cycle, limit is 0.5", d)
		}
		prev = r.get("u")
	}
	if prev != 15 {
		t.Fatalf("out = %v after 3s at 5/s, want 15", prev)
	}
}

// A bad pv holds the output and the integral; the output turns bad.
func TestPIDHoldsOnBadPV(t *testing.T) {
	r := newRig(t, pidConfig("kp=1", "ti=1s"), 10*time.Millisecond)
	r.set("sp", 50)
	r.set("pv", 40)
	r.steps(10)
	held := r.get("u")
	r.setQuality("pv", 0, 2) // bad, communication failure
	r.steps(100)
	s := r.sample("u")
	if s.Value != held || s.Quality.String() != "bad" || s.Reason.String() != "communication failure" {
		t.Fatalf("with a bad pv: %+v, want value %v held, bad, communication failure", s, held)
	}
	r.set("pv", 40)
	r.step()
	if d := r.get("u") - held; d <= 0 || d > 0.2 {
		t.Fatalf("after pv recovered out moved by %v, want one cycle of integral", d)
	}
}
