package blocks

import (
	"fmt"
	"math"
	"strings"

	"github.com/mkrt/mkrt/configs"
)

// The pid's relay autotune (Åström–Hägglund relay feedback). Writing the
// parameter tune = d > 0 on a running pid starts an experiment: the
// output, centred on its value when the experiment starts (u0), switches
// between u0+d and u0-d on the sign of the error (with tune_hysteresis
// around it), the loop oscillates at its ultimate period, and once four
// periods in a row agree within 10% in period and amplitude the block
// stops and publishes the ultimate gain Ku = 4d/(π√(a²−h²)) (a the
// amplitude of the process value's fundamental over the last period, h the
// hysteresis; the fundamental rather than the peaks, which overstate it by
// up to π²/8 when the process is lag-dominant) and period Pu.
// tune_max_time bounds the experiment; running past it, tracking, a bad
// or non-finite input, or writing tune = 0 aborts it. Whenever the
// experiment ends the output returns to u0 and normal control resumes from
// there (bumpless). The
// experiment's state lives in the block's scratch slots, not in its saved
// state: a restart or a hand-over ends it. Only a change of tune from 0
// on a running program starts one: a tune > 0 in a config file (or carried
// into a new generation by a hand-over) does not.

// Tune states, the pid's tune_state output.
const (
	TuneIdle    = 0 // no experiment has run since tune was last 0
	TuneRunning = 1 // the relay drives the output
	TuneDone    = 2 // tune_ku and tune_pu hold the result
	TuneAborted = 3 // timed out, tracked, or stopped: the output went back to u0
)

// Parameter indices of the tune parameters (after bias, before scratch).
const pidTune, pidTuneHyst, pidTuneMaxTime = 9, 10, 11

// tuneParams are the pid's tune parameters, in index order.
var tuneParams = []configs.BlockParam{
	withDefault("tune", configs.ParamNonNeg, 0, "relay autotune: writing a relay amplitude d > 0 on a running block starts an experiment (output u0 ± d); 0 stops it (mkrt tune)", "5"),
	withDefault("tune_hysteresis", configs.ParamNonNeg, 0, "relay autotune: the error band, in pv units, the relay does not switch inside (above the pv noise)", "0.2"),
	withDefault("tune_max_time", configs.ParamDuration, 600, "relay autotune: the experiment aborts (output back to where it was) when it runs this long", "10m"),
}

// pidOutputs are the pid's outputs: out, then the autotune's.
var pidOutputs = []configs.BlockPort{port("out", num), port("tune_state", num), port("tune_ku", num), port("tune_pu", num)}

// Scratch slots of the experiment, after pidExtReset.
const (
	tuneStage  = pidExtReset + 1 + iota // a Tune state
	tuneD                               // the amplitude the experiment uses; -1: armed (tune was 0); 0: never seen 0
	tuneU0                              // the output when it started
	tuneRelay                           // +1 or -1: the relay's side
	tuneT                               // seconds since it started
	tuneLast                            // tuneT at the last rising switch
	tuneRises                           // rising switches seen
	tuneHi                              // pv's highest since the last rising switch
	tuneLo                              // and lowest
	tunePeriod                          // the last full period
	tuneAmp                             // the last half peak-to-peak
	tuneStable                          // periods in a row that agreed with the one before
	tuneCos                             // Σ e cos(2π τ/P) dt over this period (P the last)
	tuneSin                             // Σ e sin(2π τ/P) dt
	tuneKu                              // the result
	tunePu
	tuneEnd
)

// tuneSlots is the number of scratch slots the experiment uses.
const tuneSlots = tuneEnd - tuneStage

// tuneStablePeriods is how many periods in a row must agree (within
// tuneAgree) before the result is taken.
const (
	tuneStablePeriods = 4
	tuneAgree         = 0.10
)

// relay runs one cycle of the experiment: on says the experiment sets
// the output this cycle (the relay's, or u0 on the cycle it ends), u is
// that output. u0 is the output the pid had before; track is the pid's
// track input, which wins over the experiment and ends it.
//
// Hot path: no allocation.
func relay(p []float64, pv, e, u0, lo, hi, dt float64, track bool) (u float64, on bool) {
	d := p[pidTune]
	if d <= 0 { // stopped (or never started)
		p[tuneD] = -1 // armed: a tune > 0 next starts an experiment
		if p[tuneStage] == TuneRunning {
			p[tuneStage] = TuneAborted
			return p[tuneU0], !track
		}
		return 0, false
	}
	if p[tuneD] < 0 { // tune went from 0 to d: start
		p[tuneD] = d
		if track {
			p[tuneStage] = TuneAborted
			return 0, false
		}
		p[tuneStage], p[tuneU0], p[tuneT], p[tuneLast], p[tuneRises] = TuneRunning, u0, 0, 0, 0
		p[tuneHi], p[tuneLo], p[tunePeriod], p[tuneAmp], p[tuneStable], p[tuneKu], p[tunePu] = pv, pv, 0, 0, 0, 0, 0
		p[tuneCos], p[tuneSin] = 0, 0
		p[tuneRelay] = 1
		if e < 0 {
			p[tuneRelay] = -1
		}
	}
	if p[tuneStage] != TuneRunning {
		return 0, false
	}
	p[tuneT] += dt
	if track || p[tuneT] > p[pidTuneMaxTime] {
		p[tuneStage] = TuneAborted
		return p[tuneU0], !track
	}
	p[tuneHi], p[tuneLo] = math.Max(p[tuneHi], pv), math.Min(p[tuneLo], pv)
	if pp := p[tunePeriod]; pp > 0 { // the fundamental of pv (of e: no large mean to leak in), at the last period's frequency
		sn, cs := math.Sincos(2 * math.Pi * (p[tuneT] - p[tuneLast]) / pp)
		p[tuneCos] += e * cs * dt
		p[tuneSin] += e * sn * dt
	}
	h := p[pidTuneHyst]
	switch {
	case e > h && p[tuneRelay] < 0: // a rising switch: one full period since the last
		p[tuneRelay] = 1
		if tuneRise(p, h) {
			p[tuneStage] = TuneDone
			return p[tuneU0], true
		}
	case e < -h && p[tuneRelay] > 0:
		p[tuneRelay] = -1
	}
	return clamp(p[tuneU0]+p[tuneRelay]*p[tuneD], lo, hi), true
}

// relayEnd aborts a running experiment when the pid holds (a bad or
// non-finite input): the held output goes back to u0, and the integral is
// set so that control resumes from there.
//
// Hot path: no allocation.
func relayEnd(p, out, s []float64) {
	if p[tuneStage] != TuneRunning {
		return
	}
	p[tuneStage] = TuneAborted
	u0 := p[tuneU0]
	s[pidStI] = u0 - p[pidBias] - p[pidKp]*s[pidStErr] - s[pidStD]
	s[pidStOut] = u0
	out[0], out[1] = u0, TuneAborted
}

// tuneRise measures the period that a rising switch ends; true when the
// last tuneStablePeriods periods agreed and Ku and Pu are set.
//
// Hot path: no allocation.
func tuneRise(p []float64, h float64) bool {
	t := p[tuneT]
	p[tuneRises]++
	if p[tuneRises] > 1 {
		period, amp := t-p[tuneLast], (p[tuneHi]-p[tuneLo])/2
		if p[tunePeriod] > 0 { // the fundamental's amplitude, not the peaks: it is what the relay's describing function balances
			amp = 2 / period * math.Hypot(p[tuneCos], p[tuneSin])
		}
		if p[tunePeriod] > 0 && math.Abs(period-p[tunePeriod]) <= tuneAgree*period && math.Abs(amp-p[tuneAmp]) <= tuneAgree*amp {
			p[tuneStable]++
		} else {
			p[tuneStable] = 0
		}
		p[tunePeriod], p[tuneAmp] = period, amp
		if p[tuneStable] >= tuneStablePeriods-1 && amp > h {
			p[tuneKu] = 4 * p[tuneD] / (math.Pi * math.Sqrt(amp*amp-h*h))
			p[tunePu] = period
			return true
		}
	}
	p[tuneLast], p[tuneHi], p[tuneLo], p[tuneCos], p[tuneSin] = t, math.Inf(-1), math.Inf(1), 0, 0
	return false
}

// TuneRules are the tuning rules TuneGains knows, conservative last.
var TuneRules = []string{"zn", "ah", "tyreus-luyben"}

// TuneGains turns an ultimate gain ku and period pu (seconds) into PID
// gains kp, ti and td (seconds) by a rule: "zn" (Ziegler–Nichols: quarter
// decay, fast and oscillatory), "ah" (Åström–Hägglund phase-margin design,
// 45° margin, ti = 4 td), or "tyreus-luyben" (more robust, less overshoot).
func TuneGains(rule string, ku, pu float64) (kp, ti, td float64, err error) {
	if !(ku > 0) || !(pu > 0) || math.IsInf(ku, 0) || math.IsInf(pu, 0) {
		return 0, 0, 0, fmt.Errorf("blocks: tune: ultimate gain %v and period %v must be finite and above 0", ku, pu)
	}
	switch rule {
	case "zn":
		return 0.6 * ku, pu / 2, pu / 8, nil
	case "tyreus-luyben":
		return ku / 2.2, 2.2 * pu, pu / 6.3, nil
	case "ah":
		const phi, alpha = math.Pi / 4, 4.0
		wu := 2 * math.Pi / pu
		t := math.Tan(phi)
		td = (t + math.Sqrt(4/alpha+t*t)) / (2 * wu)
		return ku * math.Cos(phi), alpha * td, td, nil
	}
	return 0, 0, 0, fmt.Errorf("blocks: tune: no rule %q (rules: %s)", rule, strings.Join(TuneRules, ", "))
}
