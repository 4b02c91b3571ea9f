package blocks_test

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/tag"
)

// fopdt is a first-order-plus-dead-time process K e^{-Ls}/(Ts+1): the
// first-order plant fed with the output of L/dt cycles before.
type fopdt struct {
	plant
	buf []float64
	at  int
}

func newFOPDT(k, tau, dead float64, dt time.Duration, u0 float64) *fopdt {
	n := int(math.Round(dead / dt.Seconds()))
	f := &fopdt{plant: plant{k: k, tau: tau, y: k * u0}, buf: make([]float64, n)}
	for i := range f.buf {
		f.buf[i] = u0
	}
	return f
}

func (f *fopdt) advance(u float64, dt time.Duration) {
	if len(f.buf) > 0 {
		f.buf[f.at], u = u, f.buf[f.at]
		f.at = (f.at + 1) % len(f.buf)
	}
	f.plant.advance(u, dt)
}

// ultimate is the FOPDT's ultimate gain and period: the frequency w where
// the phase w L + atan(w T) reaches π, found by bisection.
func ultimate(k, tau, dead float64) (ku, pu float64) {
	lo, hi := 1e-6, math.Pi/dead
	for range 200 {
		w := (lo + hi) / 2
		if w*dead+math.Atan(w*tau) < math.Pi {
			lo = w
		} else {
			hi = w
		}
	}
	w := (lo + hi) / 2
	return math.Sqrt(1+w*w*tau*tau) / k, 2 * math.Pi / w
}

func tuneRig(t testing.TB, params ...string) *rig {
	spec := []string{"in:pv=pv", "in:sp=sp", "in:track=track", "in:man_out=man", "out:out=u", "out:tune_state=state", "out:tune_ku=ku", "out:tune_pu=pu",
		"p:kp=1", "p:ti=20s", "p:out_min=0", "p:out_max=100", "p:bias=40"}
	for _, p := range params {
		spec = append(spec, "p:"+p)
	}
	return newRig(t, config([]string{"pv", "sp", "u", "track:bool", "man", "state", "ku", "pu"}, blk(10, "tic", "pid", spec...)), 10*time.Millisecond)
}

// run closes the loop around p for at most n cycles, stopping when stop
// says so; it returns the cycles run.
func (r *rig) run(p interface {
	advance(float64, time.Duration)
}, y func() float64, n int, stop func() bool) int {
	for k := range n {
		r.set("pv", y())
		r.step()
		p.advance(r.get("u"), r.dt)
		if stop != nil && stop() {
			return k + 1
		}
	}
	return n
}

// The relay experiment on a first-order-plus-dead-time process finds its
// ultimate gain and period within the describing-function method's
// accuracy, and the output goes back to where it was.
func TestPIDTuneRelayFOPDT(t *testing.T) {
	for _, tc := range []struct {
		k, tau, dead, hyst, noise float64
	}{{2, 10, 2, 0, 0}, {1.5, 5, 5, 0, 0}, {2, 10, 2, 0.05, 0}, {2, 10, 2, 0.3, 0.1}} {
		r := tuneRig(t, "tune_hysteresis="+ftoa(tc.hyst))
		p := newFOPDT(tc.k, tc.tau, tc.dead, r.dt, 40)
		r.set("sp", tc.k*40)
		r.run(p, func() float64 { return p.y }, 2000, nil) // settle at u = 40
		u0 := r.get("u")
		if err := r.tp.SetParam("tic", "tune", 5); err != nil {
			t.Fatal(err)
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		measured := func() float64 { return p.y + tc.noise*(2*rnd.Float64()-1) } // ± noise, uniform
		n := r.run(p, measured, 60000, func() bool { return r.get("state") != blocks.TuneRunning })
		if st := r.get("state"); st != blocks.TuneDone {
			t.Fatalf("%+v: tune_state %v after %d cycles, want %d (done)", tc, st, n, blocks.TuneDone)
		}
		ku, pu := ultimate(tc.k, tc.tau, tc.dead)
		gotKu, gotPu := r.get("ku"), r.get("pu")
		t.Logf("%+v: Ku %.3f (exact %.3f), Pu %.2fs (exact %.2fs), %d cycles", tc, gotKu, ku, gotPu, pu, n)
		// Hysteresis moves the oscillation off the -180° point (by
		// asin(h/a)): the period comes out longer, here by about 10%.
		tol := 0.10
		if tc.hyst > 0.1 {
			tol = 0.15
		}
		if math.Abs(gotKu-ku) > tol*ku || math.Abs(gotPu-pu) > tol*pu {
			t.Errorf("%+v: Ku %.3f Pu %.2f, want within %g%% of %.3f %.2f", tc, gotKu, gotPu, tol*100, ku, pu)
		}
		if got := r.get("u"); math.Abs(got-u0) > 0.5 {
			t.Errorf("%+v: output %v after the experiment, want back near %v", tc, got, u0)
		}
		// Control resumes: the loop settles back on its set point.
		r.run(p, func() float64 { return p.y }, 20000, nil)
		if !near(p.y, tc.k*40, 0.5) {
			t.Errorf("%+v: pv %v after the experiment, want back at %v", tc, p.y, tc.k*40)
		}
	}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// runningExperiment is a loop at rest on its set point with an experiment
// of amplitude 5 a second into its run; u0 is the output before it.
func runningExperiment(t *testing.T, params ...string) (r *rig, p *fopdt, u0 float64) {
	t.Helper()
	r = tuneRig(t, params...)
	p = newFOPDT(2, 10, 2, r.dt, 40)
	r.set("sp", 80)
	r.run(p, func() float64 { return p.y }, 500, nil)
	u0 = r.get("u")
	if err := r.tp.SetParam("tic", "tune", 5); err != nil {
		t.Fatal(err)
	}
	r.run(p, func() float64 { return p.y }, 100, nil)
	if st, u := r.get("state"), r.get("u"); st != blocks.TuneRunning || math.Abs(math.Abs(u-u0)-5) > 1e-9 {
		t.Fatalf("tune_state %v output %v, want running at %v ± 5", st, u, u0)
	}
	return r, p, u0
}

// An experiment that cannot settle in tune_max_time aborts with the output
// back where it was; writing tune = 0 aborts one too.
func TestPIDTuneAborts(t *testing.T) {
	for _, how := range []string{"max time", "stopped", "tracked"} {
		r, p, u0 := runningExperiment(t, "tune_max_time=3s")
		switch how {
		case "stopped":
			if err := r.tp.SetParam("tic", "tune", 0); err != nil {
				t.Fatal(err)
			}
		case "tracked":
			r.setBool("track", true)
			r.set("man", 33)
		}
		r.run(p, func() float64 { return p.y }, 300, func() bool { return r.get("state") != blocks.TuneRunning })
		if st := r.get("state"); st != blocks.TuneAborted {
			t.Fatalf("%s: tune_state %v, want %d (aborted)", how, st, blocks.TuneAborted)
		}
		want := u0
		if how == "tracked" {
			want = 33
		}
		if got := r.get("u"); math.Abs(got-want) > 1e-6 {
			t.Errorf("%s: output %v on the cycle the experiment ended, want %v", how, got, want)
		}
		if r.get("ku") != 0 || r.get("pu") != 0 {
			t.Errorf("%s: an aborted experiment published Ku %v Pu %v", how, r.get("ku"), r.get("pu"))
		}
		// It does not restart by itself while tune stays where it is.
		r.setBool("track", false)
		r.run(p, func() float64 { return p.y }, 500, nil)
		if st := r.get("state"); st != blocks.TuneAborted {
			t.Errorf("%s: tune_state %v later, want it to stay aborted", how, st)
		}
	}
}

func TestPIDTuneNoAllocs(t *testing.T) {
	r := tuneRig(t, "tune_max_time=1000s")
	r.set("sp", 50)
	r.set("pv", 40)
	r.steps(10)
	if err := r.tp.SetParam("tic", "tune", 5); err != nil {
		t.Fatal(err)
	}
	k := 0
	if n := testing.AllocsPerRun(1000, func() {
		k++
		r.set("pv", restless(k))
		r.step()
	}); n != 0 {
		t.Fatalf("%v allocations per cycle in tuning mode, want 0", n)
	}
	if r.get("state") != blocks.TuneRunning {
		t.Fatalf("tune_state %v, want running", r.get("state"))
	}
}

func TestPIDTuneParamsChecked(t *testing.T) {
	r := tuneRig(t)
	if err := r.tp.SetParam("tic", "tune_max_time", 0); err == nil {
		t.Fatal("tune_max_time = 0 accepted; the experiment must be bounded")
	}
	if err := r.tp.SetParam("tic", "tune", -1); err == nil {
		t.Fatal("tune = -1 accepted")
	}
}

func TestTuneGains(t *testing.T) {
	kp, ti, td, err := blocks.TuneGains("zn", 2, 8)
	if err != nil || !near(kp, 1.2, 1e-12) || !near(ti, 4, 1e-12) || !near(td, 1, 1e-12) {
		t.Fatalf("zn: %v %v %v %v", kp, ti, td, err)
	}
	kp, ti, td, err = blocks.TuneGains("tyreus-luyben", 2.2, 6.3)
	if err != nil || !near(kp, 1, 1e-12) || !near(ti, 13.86, 1e-9) || !near(td, 1, 1e-12) {
		t.Fatalf("tyreus-luyben: %v %v %v %v", kp, ti, td, err)
	}
	if _, ti, td, err = blocks.TuneGains("ah", 1, 10); err != nil || !near(ti, 4*td, 1e-12) {
		t.Fatalf("ah: %v %v %v", ti, td, err)
	}
	for _, bad := range [][2]float64{{0, 1}, {1, 0}, {math.NaN(), 1}, {math.Inf(1), 1}} {
		if _, _, _, err := blocks.TuneGains("zn", bad[0], bad[1]); err == nil {
			t.Errorf("Ku %v Pu %v accepted", bad[0], bad[1])
		}
	}
	if _, _, _, err := blocks.TuneGains("fast", 1, 1); err == nil {
		t.Error("unknown rule accepted")
	}
}

// A tune > 0 that a program starts with (from its config file, or carried
// into a new generation by a hand-over) starts no experiment.
func TestPIDTuneNotFromConfig(t *testing.T) {
	r := tuneRig(t, "tune=5")
	r.set("sp", 50)
	r.set("pv", 40)
	r.steps(100)
	if st := r.get("state"); st != blocks.TuneIdle {
		t.Fatalf("tune_state %v with tune = 5 in the config, want %d (idle)", st, blocks.TuneIdle)
	}
}

// A bad or non-finite process value aborts the experiment: the held output
// is u0, not the relay's u0 ± d.
func TestPIDTuneAbortsOnBadInput(t *testing.T) {
	for _, how := range []string{"bad quality", "NaN"} {
		r, p, u0 := runningExperiment(t)
		if how == "NaN" {
			r.set("pv", math.NaN())
		} else {
			r.setQuality("pv", tag.Bad, tag.CommFailure)
		}
		r.step()
		if st, u := r.get("state"), r.get("u"); st != blocks.TuneAborted || u != u0 {
			t.Fatalf("%s: tune_state %v output %v, want aborted at %v", how, st, u, u0)
		}
		r.run(p, func() float64 { return p.y }, 10, nil) // good again: control resumes near u0
		if st, u := r.get("state"), r.get("u"); st != blocks.TuneAborted || math.Abs(u-u0) > 1 {
			t.Fatalf("%s: tune_state %v output %v after pv came back, want aborted near %v", how, st, u, u0)
		}
	}
}

// BenchmarkPIDTune is one cycle of a pid in tuning mode, against a normal
// pid's cycle (the relay switching every few cycles).
func BenchmarkPIDTune(b *testing.B) {
	for _, tuning := range []bool{false, true} {
		b.Run(map[bool]string{false: "control", true: "relay"}[tuning], func(b *testing.B) {
			r := tuneRig(b, "tune_max_time=1000000s", "td=1s")
			r.set("sp", 50)
			r.set("pv", 50)
			r.steps(10)
			if tuning {
				if err := r.tp.SetParam("tic", "tune", 5); err != nil {
					b.Fatal(err)
				}
			}
			k := 0
			b.ReportAllocs()
			for b.Loop() {
				k++
				r.set("pv", restless(k))
				r.step()
			}
			if st := r.get("state"); tuning && st != blocks.TuneRunning {
				b.Fatalf("tune_state %v, want running", st)
			}
		})
	}
}

// restless is a process value around 50 at cycle k that switches a relay
// at periods of 2 and 6 cycles, which never agree: the experiment runs on.
func restless(k int) float64 {
	if k%8 == 1 || k%8 >= 5 {
		return 60
	}
	return 40
}
