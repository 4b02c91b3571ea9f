package blocks

import (
	"math"

	"github.com/mkrt/mkrt/shm/tag"
)

// exec runs the instructions once. dts is the cycle time in seconds, dtn in
// nanoseconds (timers count nanoseconds so whole cycles add up exactly).
//
// Hot path: no allocation.
func (tp *TaskProgram) exec(dts, dtn float64) {
	r, qual, args, params, state := tp.regs, tp.qual, tp.args, tp.params, tp.state
	for i := range tp.code {
		in := &tp.code[i]
		if in.gate != 0 && r[in.gate] == 0 {
			continue // not enabled by its sequence's step: state and outputs held
		}
		a := args[in.args : in.args+int32(in.nin)]
		var worst uint16
		for _, x := range a {
			if qual[x] > worst {
				worst = qual[x]
			}
		}
		o := in.out
		out := r[o : o+int32(in.nout)]
		if in.hold && worst >= badRank {
			if in.op == opPID {
				relayEnd(params[in.par:], out, state[in.st:]) // tune.go
			}
			setQual(qual[o:o+int32(in.nout)], worst)
			continue
		}
		p := params[in.par:]
		s := state[in.st:]
		switch in.op {
		case opPID:
			if !tp.pid(a, out, p, s, dts) {
				worst = qcode(tag.Bad, tag.OutOfRange)
				relayEnd(p, out, s)
			}
		case opLag:
			x := r[a[0]]
			switch {
			case s[0] == 0:
				s[0], s[1] = 1, x
			case p[0] <= 0:
				s[1] = x
			default:
				if p[1] != dts {
					p[1], p[2] = dts, -math.Expm1(-dts/p[0])
				}
				s[1] += p[2] * (x - s[1])
			}
			out[0] = s[1]
		case opRamp:
			x := r[a[0]]
			if s[0] == 0 {
				s[0], s[1] = 1, x
			} else {
				d := p[0] * dts
				s[1] = clamp(x, s[1]-d, s[1]+d)
			}
			out[0] = s[1]
		case opLimit:
			lo, hi := p[0], p[1]
			if p[2] != 0 {
				lo = r[a[1]]
			}
			if p[3] != 0 {
				hi = r[a[2]]
			}
			if !(lo <= hi) { // IEC leaves it open: the lower limit wins, bad
				worst = max(worst, qcode(tag.Bad, tag.OutOfRange))
			}
			out[0] = math.Max(lo, math.Min(r[a[0]], hi))
		case opScale:
			out[0] = r[a[0]]*p[0] + p[1]
		case opDeadband:
			x, w := r[a[0]], p[0]
			switch {
			case x > w:
				out[0] = x - w
			case x < -w:
				out[0] = x + w
			default:
				out[0] = 0
			}
		case opHysteresis:
			x := r[a[0]]
			if x >= p[0] {
				s[0] = 1
			} else if x <= p[1] {
				s[0] = 0
			}
			out[0] = s[0]
		case opAlarm:
			tp.alarm(a, out, p, s, dtn)
		case opTON:
			x, pt := r[a[0]] != 0, p[0]*1e9
			if x {
				if s[0] != 0 {
					s[1] = math.Min(s[1]+dtn, pt)
				} else {
					s[1] = math.Min(0, pt)
				}
				out[0] = b2f(s[1] >= pt)
			} else {
				s[1], out[0] = 0, 0
			}
			s[0] = b2f(x)
			out[1] = s[1] / 1e9
		case opTOF:
			x, pt := r[a[0]] != 0, p[0]*1e9
			switch {
			case x:
				s[1], s[2] = 0, 1
			case s[2] != 0:
				if s[0] != 0 { // falling edge
					s[1] = 0
				} else {
					s[1] += dtn
				}
				if s[1] >= pt {
					s[1], s[2] = pt, 0
				}
			}
			s[0] = b2f(x)
			out[0], out[1] = s[2], s[1]/1e9
		case opTP:
			x, pt := r[a[0]] != 0, p[0]*1e9
			if s[2] != 0 { // pulse running
				s[1] += dtn
				if s[1] >= pt {
					s[1], s[2] = pt, 0
				}
			}
			if s[2] == 0 {
				if x && s[0] == 0 {
					s[1], s[2] = 0, b2f(pt > 0)
				} else if !x {
					s[1] = 0
				}
			}
			s[0] = b2f(x)
			out[0], out[1] = s[2], s[1]/1e9
		case opCounter:
			up, down, reset := r[a[0]] != 0, r[a[1]] != 0, r[a[2]] != 0
			switch {
			case reset:
				s[0] = 0
			default:
				if up && s[1] == 0 {
					s[0]++
				}
				if down && s[2] == 0 {
					s[0]--
				}
			}
			s[1], s[2] = b2f(up), b2f(down)
			out[0], out[1], out[2] = s[0], b2f(s[0] >= p[0]), b2f(s[0] <= 0)
		case opAnd:
			v := 1.0
			for _, x := range a {
				if r[x] == 0 {
					v = 0
				}
			}
			out[0] = v
		case opOr:
			v := 0.0
			for _, x := range a {
				if r[x] != 0 {
					v = 1
				}
			}
			out[0] = v
		case opXor:
			n := 0
			for _, x := range a {
				if r[x] != 0 {
					n++
				}
			}
			out[0] = float64(n & 1)
		case opNot:
			out[0] = b2f(r[a[0]] == 0)
		case opCompare:
			out[0] = compare(r[a[0]], r[a[1]], int(p[0]), p[1], s)
		case opSelect:
			pick := a[1]
			if r[a[0]] != 0 {
				pick = a[2]
			}
			out[0] = r[pick]
			worst = max(qual[a[0]], qual[pick])
		case opMin:
			v := math.Inf(1)
			for _, x := range a {
				v = math.Min(v, r[x])
			}
			out[0] = v
		case opMax:
			v := math.Inf(-1)
			for _, x := range a {
				v = math.Max(v, r[x])
			}
			out[0] = v
		case opAverage:
			var sum float64
			for _, x := range a {
				sum += r[x]
			}
			out[0] = sum / float64(len(a))
		case opDelayOut:
			out[0], qual[o] = s[0], uint16(s[1])
			continue
		case opDelayIn:
			s[0], s[1] = r[a[0]], float64(qual[a[0]])
			continue
		case opExpr:
			v, ok := tp.exprs[in.x].Eval(r)
			out[0] = v
			if !ok {
				worst = max(worst, qcode(tag.Bad, tag.OutOfRange))
			}
		case opSequence:
			worst = tp.sequence(a, out, p, s, dtn)
		case opSR, opRS, opRTrig, opFTrig, opCTU, opCTD, opCTUD, opSel, opMux, opMove:
			worst = tp.iec(in.op, a, out, p, s, worst)
		case opIntegrator, opLeadLag, opMovingAverage, opRateOfChange, opCharacterizer, opSplitRange, opScheduler:
			worst = tp.process(in.op, a, out, p, s, worst, dts, dtn)
		}
		setQual(qual[o:o+int32(in.nout)], worst)
	}
}

// pid runs one cycle of a PID block; false when pv, sp or man_out is not a
// finite number (the block then holds).
//
// Hot path: no allocation.
func (tp *TaskProgram) pid(a []int32, out, p, s []float64, dt float64) bool {
	r := tp.regs
	pv, sp, track, man := r[a[0]], r[a[1]], r[a[2]] != 0, r[a[3]]
	if !finite(pv) || !finite(sp) || (track && !finite(man)) {
		return false
	}
	ff := r[a[4]] // feed-forward: added to the output like bias, with the anti-windup and the tracking seeing it
	ext, extWired := r[a[5]], p[pidExtReset] != 0
	if !finite(ff) || extWired && !finite(ext) {
		return false
	}
	kp, ti, td, lo, hi, bias := p[pidKp], p[pidTi], p[pidTd], p[pidOutMin], p[pidOutMax], p[pidBias]+ff
	sign := 1.0
	if p[pidDirect] != 0 {
		sign = -1
	}
	e := sign * (sp - pv)
	first := s[pidStInit] == 0
	if first {
		s[pidStInit], s[pidStPV], s[pidStD] = 1, pv, 0
	}
	// Derivative on the measurement through a first-order filter (backward Euler).
	d := 0.0
	if td > 0 {
		tf := p[pidTf]
		if tf <= 0 {
			tf = td / p[pidN]
		}
		if tf+dt > 0 {
			d = (tf*s[pidStD] - sign*kp*td*(pv-s[pidStPV])) / (tf + dt)
		}
	}
	pTerm := kp * e
	i := s[pidStI]
	var u float64
	if ru, on := relay(p, pv, e, s[pidStOut], lo, hi, dt, track); on { // autotune (tune.go)
		u = ru
		i = p[tuneU0] - bias - pTerm - d // when the experiment ends, control resumes from u0
	} else if track {
		u = clamp(man, lo, hi)
		i = u - bias - pTerm - d // back-calculated: the return to auto is bumpless
	} else {
		// The rate limit narrows the output range for this cycle.
		rlo, rhi := lo, hi
		if rate := p[pidRate]; rate > 0 && !first {
			rlo, rhi = math.Max(lo, s[pidStOut]-rate*dt), math.Min(hi, s[pidStOut]+rate*dt)
		}
		iNew := i
		switch {
		case ti > 0 && extWired: // external reset: the integral is ext_reset through a lag of ti
			iNew = i - math.Expm1(-dt/ti)*(ext-bias-i)
		case ti > 0:
			iNew = i + kp*dt/ti*e
		}
		u = bias + pTerm + iNew + d
		// Clamping anti-windup: the integral does not move further into a
		// limit (with external reset, ext_reset bounds it instead).
		if u > rhi {
			if iNew > i && !extWired {
				iNew = math.Max(i, rhi-bias-pTerm-d)
			}
			u = rhi
		} else if u < rlo {
			if iNew < i && !extWired {
				iNew = math.Min(i, rlo-bias-pTerm-d)
			}
			u = rlo
		}
		i = iNew
	}
	if !finite(u) || !finite(i) || !finite(d) { // an overflow: held, bad
		return false
	}
	s[pidStI], s[pidStD], s[pidStPV], s[pidStOut], s[pidStErr] = i, d, pv, u, e
	out[0], out[1], out[2], out[3] = u, p[tuneStage], p[tuneKu], p[tunePu]
	return true
}

// compare evaluates compare's op with hysteresis h; s[0] is its last result.
func compare(x, y float64, op int, h float64, s []float64) float64 {
	was := s[0] != 0
	var q bool
	switch op {
	case compareGT:
		q = x > y || (was && h > 0 && x >= y-h)
	case compareGE:
		q = x >= y || (was && h > 0 && x >= y-h)
	case compareLT:
		q = x < y || (was && h > 0 && x <= y+h)
	case compareLE:
		q = x <= y || (was && h > 0 && x <= y+h)
	case compareEQ:
		q = math.Abs(x-y) <= h
	case compareNE:
		q = math.Abs(x-y) > h
	}
	s[0] = b2f(q)
	return s[0]
}

func setQual(q []uint16, v uint16) {
	for k := range q {
		q[k] = v
	}
}

func clamp(x, lo, hi float64) float64 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
