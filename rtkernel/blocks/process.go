package blocks

import (
	"math"
	"strconv"
	"time"
	_ "time/tzdata" // a partition's root may have no zoneinfo

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// The process-control blocks: integrator, lead_lag, moving_average,
// rate_of_change, characterizer, split_range and scheduler. Each keeps its
// state in the program's state slots (saved by SaveState and carried
// across a hand-over like every block's; an integrator's total also
// across a restart, from the retain tag its out writes), takes its
// parameters live, and allocates nothing per cycle. A NaN or infinite
// input, or a bad one, holds a block with memory: its state and outputs
// stay as they were, with the bad quality.
var processCatalogue = []*blockType{
	{BlockType: configs.BlockType{Name: "integrator",
		Doc:    "totalizer: out += gain * in * dt each cycle; reset (dominant) sets out to initial, hold freezes it; the total is carried across a hand-over, and across a restart when out writes a retain tag",
		Inputs: []configs.BlockPort{needs("in", num), port("reset", boolean), port("hold", boolean)}, Outputs: outNum,
		Params: []configs.BlockParam{
			withDefault("gain", configs.ParamNumber, 1, "factor per second (a flow in m3/h totals in m3 with 1/3600 = 0.000277778)", "0.000277778"),
			withDefault("initial", configs.ParamNumber, 0, "out after a reset (and at the first start)", "0"),
			withDefault("out_min", configs.ParamNumber, math.Inf(-1), "lowest out", "-1e9"),
			withDefault("out_max", configs.ParamNumber, math.Inf(1), "highest out", "1e9"),
		}},
		op: opIntegrator, scratch: 1, state: 2, hold: true,
		check: func(p []float64) (string, string) {
			if !(p[2] < p[3]) {
				return "out_max", "out_max must be above out_min"
			}
			return "", ""
		}},
	{BlockType: configs.BlockType{Name: "lead_lag",
		Doc:    "lead-lag: out follows gain * (lead*s + 1) / (lag*s + 1) of in, exact for any cycle time",
		Inputs: inNum, Outputs: outNum,
		Params: []configs.BlockParam{
			withDefault("lead", configs.ParamDuration, 0, "lead time constant; 0: a pure lag", "10s"),
			mustWrite("lag", configs.ParamDuration, "lag time constant (above 0)", "5s"),
			withDefault("gain", configs.ParamNumber, 1, "steady-state gain", "1"),
		}},
		op: opLeadLag, scratch: 3, state: 2, hold: true,
		check: func(p []float64) (string, string) {
			if p[1] <= 0 {
				return "lag", "lag must be above 0 (a time constant such as 5s)"
			}
			return "", ""
		}},
	{BlockType: configs.BlockType{Name: "moving_average",
		Doc:    "moving average of in over the last window, kept as " + strconv.Itoa(maBuckets) + " parts of it: exact when the window is a multiple of 64 cycles, otherwise within one part (a cycle longer than window/64: over 64 cycles); restarts on a change of window",
		Inputs: inNum, Outputs: outNum, PassUnit: passIn,
		Params: []configs.BlockParam{mustWrite("window", configs.ParamDuration, "the time averaged over (above 0)", "1m")}},
		op: opMovingAverage, state: maState, hold: true,
		check: func(p []float64) (string, string) {
			if p[0] <= 0 {
				return "window", "window must be above 0 (a time such as 1m)"
			}
			return "", ""
		}},
	{BlockType: configs.BlockType{Name: "rate_of_change",
		Doc:    "rate of change of in, in units per second, through a first-order filter of time constant tau; 0 in the first cycle",
		Inputs: inNum, Outputs: outNum,
		Params: []configs.BlockParam{withDefault("tau", configs.ParamDuration, 0, "filter time constant; 0: no filter", "2s")}},
		op: opRateOfChange, scratch: 3, state: 3, hold: true},
	{BlockType: configs.BlockType{Name: "characterizer",
		Doc:    "piecewise-linear table (x1,y1) ... (xN,yN), N from 2 to " + strconv.Itoa(charPoints) + ", x strictly increasing: out is y interpolated at in; beyond the table the end segment's y, with uncertain quality",
		Inputs: inNum, Outputs: outNum,
		Params: charParams()},
		op: opCharacterizer, check: checkCharacterizer},
	{BlockType: configs.BlockType{Name: "split_range",
		Doc:    "split range: in from in_min to split drives out1 from out_min to out_max, in from split to in_max drives out2 (each held at its ends); reverse1 turns out1 around (heat/cool)",
		Inputs: inNum, Outputs: []configs.BlockPort{port("out1", num), port("out2", num)},
		Params: []configs.BlockParam{
			withDefault("in_min", configs.ParamNumber, 0, "in at the low end", "0"),
			withDefault("split", configs.ParamNumber, 50, "in where out1's range ends and out2's begins", "50"),
			withDefault("in_max", configs.ParamNumber, 100, "in at the high end", "100"),
			withDefault("out_min", configs.ParamNumber, 0, "each output's low end", "0"),
			withDefault("out_max", configs.ParamNumber, 100, "each output's high end", "100"),
			withDefault("reverse1", configs.ParamBool, 0, "true: out1 falls from out_max to out_min as in rises to split", "false"),
		}},
		op: opSplitRange,
		check: func(p []float64) (string, string) {
			switch {
			case !(p[0] < p[1]):
				return "split", "split must be above in_min"
			case !(p[1] < p[2]):
				return "split", "split must be below in_max"
			case !(p[3] < p[4]):
				return "out_max", "out_max must be above out_min"
			}
			return "", ""
		}},
	schedCatalogue,
}

// schedCatalogue is the scheduler, after the process blocks.
var schedCatalogue = &blockType{BlockType: configs.BlockType{Name: "scheduler",
	Doc:     "weekly time windows in the plant's local time (metadata.timezone): on while a window is open; force_off (dominant) and force_on override it",
	Inputs:  []configs.BlockPort{port("force_on", boolean), port("force_off", boolean)},
	Outputs: []configs.BlockPort{port("on", boolean), port("window", num)},
	Params:  schedParams()},
	op: opScheduler, check: checkScheduler}

// pidExtReset is the pid's scratch slot saying ext_reset is wired.
const pidExtReset = pidTf + 1

// The process blocks' opcodes, after the ones of spec.go.
const (
	opIntegrator opcode = 200 + iota
	opLeadLag
	opMovingAverage
	opRateOfChange
	opCharacterizer
	opSplitRange
	opScheduler
)

// schedWindows is the number of windows a scheduler has; schedDays the
// words of its days parameters (a day's index is its time.Weekday + 4).
const schedWindows = 4

var schedDays = []string{"never", "daily", "weekdays", "weekend", "sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func schedParams() []configs.BlockParam {
	var ps []configs.BlockParam
	for k := 1; k <= schedWindows; k++ {
		n := strconv.Itoa(k)
		days := configs.BlockParam{Name: "days" + n, Kind: configs.ParamEnum, Enum: schedDays,
			Doc: "the days window " + n + " opens on (never: unused)", Example: "weekdays"}
		if k == 1 {
			days.Required = true
		}
		ps = append(ps, days,
			withDefault("on"+n, configs.ParamDuration, 0, "the local time of day window "+n+" opens (6h30m: 06:30)", strconv.Itoa(5+k)+"h30m"),
			withDefault("off"+n, configs.ParamDuration, 0, "the local time of day it closes; before on: the next day", strconv.Itoa(16+k)+"h"))
	}
	return ps
}

// checkScheduler wants each used window's times within a day and apart.
func checkScheduler(p []float64) (string, string) {
	for k := range schedWindows {
		n := strconv.Itoa(k + 1)
		on, off := p[3*k+1], p[3*k+2]
		switch {
		case p[3*k] == 0:
		case on >= 86400:
			return "on" + n, "on" + n + " is a time of day: below 24h"
		case off >= 86400:
			return "off" + n, "off" + n + " is a time of day: below 24h"
		case on == off:
			return "off" + n, "window " + n + " opens and closes at the same time: set off" + n + " apart from on" + n
		}
	}
	return "", ""
}

// processChecks checks metadata.timezone, and that an alarm whose
// unacked output is wired has its ack input wired too (else unacked would
// never turn off).
func (c *compiler) processChecks() {
	if tz := c.cfg.Metadata.Timezone; tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			c.errs.Add(c.cfg.Metadata.Pos, "metadata.timezone %q is not a time zone (an IANA name such as Europe/Berlin or UTC): %v", tz, err)
		}
	}
	for _, nodes := range c.nodes {
		for _, n := range nodes {
			if n.typ == nil || n.typ.op != opAlarm { // nil: an unknown type, reported already
				continue
			}
			if _, out := n.b.Outputs["unacked"]; out {
				if _, in := n.b.Inputs["ack"]; !in {
					c.errs.Add(n.b.Pos, "%s writes unacked but has no ack input, so unacked would never turn off (wire ack to a writable bool tag, e.g. %s_ack)", n.what(), n.b.Outputs["active"])
				}
			}
		}
	}
}

// location is the plant's time zone, UTC when none is set.
func location(cfg *configs.Config) *time.Location {
	if loc, err := time.LoadLocation(cfg.Metadata.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// dayIn reports whether the days word d (an index of schedDays) takes
// weekday wd.
func dayIn(d float64, wd time.Weekday) bool {
	switch d {
	case 1:
		return true
	case 2:
		return wd != time.Saturday && wd != time.Sunday
	case 3:
		return wd == time.Saturday || wd == time.Sunday
	}
	return d == float64(wd)+4
}

// schedule is the number (1 to schedWindows) of the first open window of
// a scheduler with parameters p at Unix time wall (nanoseconds) in loc;
// 0 when none is.
//
// Hot path: no allocation.
func schedule(p []float64, wall int64, loc *time.Location) int {
	t := time.Unix(0, wall).In(loc)
	wd := t.Weekday()
	yesterday := (wd + 6) % 7
	h, m, sec := t.Clock()
	tod := float64(h*3600+m*60+sec) + float64(t.Nanosecond())/1e9
	for k := range schedWindows {
		d, on, off := p[3*k], p[3*k+1], p[3*k+2]
		if d == 0 {
			continue
		}
		open := false
		if on < off {
			open = dayIn(d, wd) && tod >= on && tod < off
		} else { // past midnight
			open = dayIn(d, wd) && tod >= on || dayIn(d, yesterday) && tod < off
		}
		if open {
			return k + 1
		}
	}
	return 0
}

// moving_average's state: whether it started, the part being filled, its
// sum, count and age in nanoseconds, the window it runs with, the sum and
// count of the parts in the ring, then the ring of maBuckets sums and
// counts.
const (
	maBuckets = 64
	maState   = 8 + 2*maBuckets
)

// charPoints is the largest table a characterizer takes.
const charPoints = 8

// charExample are the x of the catalogue's example table.
var charExample = [charPoints]string{"-4", "-1", "1", "10", "100", "200", "500", "2000"}

func charParams() []configs.BlockParam {
	ps := make([]configs.BlockParam, 0, 2*charPoints)
	for k := 1; k <= charPoints; k++ {
		n := strconv.Itoa(k)
		doc := "x of point " + n
		ydoc := "y of point " + n
		x, y := unset("x"+n, configs.ParamNumber, doc, charExample[k-1]), unset("y"+n, configs.ParamNumber, ydoc, strconv.Itoa(k*k))
		if k <= 2 {
			x, y = mustWrite("x"+n, configs.ParamNumber, doc, x.Example), mustWrite("y"+n, configs.ParamNumber, ydoc, y.Example)
		}
		ps = append(ps, x, y)
	}
	return ps
}

// checkCharacterizer wants the points set from the first one on, each x
// with its y, and x strictly increasing.
func checkCharacterizer(p []float64) (string, string) {
	n := charLen(p)
	for k := range charPoints {
		x, y := p[2*k], p[2*k+1]
		name := strconv.Itoa(k + 1)
		switch {
		case k >= n && !math.IsNaN(x):
			return "x" + name, "point " + name + " follows an unset point: number the points from 1 without gaps"
		case k >= n && !math.IsNaN(y):
			return "y" + name, "y" + name + " has no x" + name + ": set both or neither"
		case k < n && math.IsNaN(y):
			return "x" + name, "x" + name + " has no y" + name + ": set both or neither"
		case k < n && math.IsInf(x, 0) || math.IsInf(y, 0):
			return "x" + name, "the points must be finite numbers"
		case k > 0 && k < n && !(x > p[2*k-2]):
			return "x" + name, "x must increase strictly from point to point: x" + name + " must be above x" + strconv.Itoa(k)
		}
	}
	if n < 2 {
		return "x2", "a characterizer needs at least 2 points (x1, y1, x2, y2)"
	}
	return "", ""
}

// charLen is the number of points set from x1 on.
func charLen(p []float64) int {
	n := 0
	for n < charPoints && !math.IsNaN(p[2*n]) {
		n++
	}
	return n
}

// process runs one cycle of a process-control block; worst is the quality
// of its outputs.
//
// Hot path: no allocation.
func (tp *TaskProgram) process(op opcode, a []int32, out, p, s []float64, worst uint16, dts, dtn float64) uint16 {
	r := tp.regs
	x := r[a[0]]
	if !finite(x) && op != opScheduler {
		if op == opIntegrator || op == opLeadLag || op == opMovingAverage || op == opRateOfChange {
			return qcode(tag.Bad, tag.OutOfRange) // outputs and state held
		}
	}
	switch op {
	case opIntegrator:
		if s[0] == 0 {
			s[0], s[1] = 1, p[1]
			// At start, a retain tag out writes holds the total it had.
			if id := int(p[4]); id >= 0 && id < len(tp.tab.Samples) && finite(tp.tab.Samples[id].Value) {
				s[1] = tp.tab.Samples[id].Value
			}
		}
		switch {
		case r[a[1]] != 0:
			s[1] = p[1]
		case r[a[2]] != 0:
		default:
			s[1] += p[0] * x * dts
		}
		s[1] = clamp(s[1], p[2], p[3])
		out[0] = s[1]
	case opLeadLag:
		// gain*(lead*s+1)/(lag*s+1) = gain*(lead/lag + (1-lead/lag)/(lag*s+1)):
		// a pass-through part and an exactly discretised lag.
		if s[0] == 0 {
			s[0], s[1] = 1, x
		} else {
			s[1] += lagCoef(p[3:6], dts, p[1]) * (x - s[1])
		}
		f := p[0] / p[1]
		out[0] = p[2] * (f*x + (1-f)*s[1])
	case opMovingAverage:
		out[0] = movingAverage(x, p[0]*1e9, s, dtn)
	case opRateOfChange:
		switch {
		case s[0] == 0:
			s[0], s[1], s[2] = 1, x, 0
		case dts > 0:
			v := (x - s[1]) / dts
			if p[0] > 0 {
				v = s[2] + lagCoef(p[1:4], dts, p[0])*(v-s[2])
			}
			s[1], s[2] = x, v
		}
		out[0] = s[2]
	case opCharacterizer:
		if x != x {
			out[0] = 0
			return qcode(tag.Bad, tag.OutOfRange)
		}
		n := charLen(p)
		k := 1
		for k < n-1 && x > p[2*k] {
			k++
		}
		x0, y0, x1, y1 := p[2*k-2], p[2*k-1], p[2*k], p[2*k+1]
		switch {
		case x < p[0]:
			out[0] = p[1]
			worst = max(worst, qcode(tag.Uncertain, tag.OutOfRange))
		case x > p[2*n-2]:
			out[0] = p[2*n-1]
			worst = max(worst, qcode(tag.Uncertain, tag.OutOfRange))
		default:
			out[0] = y0 + (y1-y0)*(x-x0)/(x1-x0)
		}
	case opScheduler:
		loc := tp.loc
		if loc == nil {
			loc = time.UTC
		}
		w := schedule(p, tp.wall, loc)
		on := w > 0
		switch {
		case r[a[1]] != 0:
			on = false
		case r[a[0]] != 0:
			on = true
		}
		out[0], out[1] = b2f(on), float64(w)
	case opSplitRange:
		lo, split, hi, omin, omax := p[0], p[1], p[2], p[3], p[4]
		f1 := clamp((x-lo)/(split-lo), 0, 1)
		if p[5] != 0 {
			f1 = 1 - f1
		}
		f2 := clamp((x-split)/(hi-split), 0, 1)
		if x != x {
			f1, f2 = 0, 0
			worst = max(worst, qcode(tag.Bad, tag.OutOfRange))
		}
		out[0], out[1] = omin+f1*(omax-omin), omin+f2*(omax-omin)
	}
	// An overflow (huge inputs, parameters or cycle times) is an output
	// that is not a finite number: bad. A filter whose state overflowed
	// starts again from its next input.
	for k := range out {
		if !finite(out[k]) {
			worst = max(worst, qcode(tag.Bad, tag.OutOfRange))
			if op == opLeadLag || op == opRateOfChange || op == opMovingAverage {
				s[0] = 0
			}
		}
	}
	return worst
}

// lagCoef is 1 - exp(-dt/tau), the step of a first-order lag of time
// constant tau in a cycle of dt, cached in c (dt, tau, the coefficient: a
// block's scratch slots) while dt and tau stay as they are.
func lagCoef(c []float64, dt, tau float64) float64 {
	if c[0] != dt || c[1] != tau {
		c[0], c[1], c[2] = dt, tau, -math.Expm1(-dt/tau)
	}
	return c[2]
}

// movingAverage adds x, sampled for dtn nanoseconds, to the average over
// window nanoseconds kept in s (maState slots) and returns the average.
// The window is cut in maBuckets parts; the average is over the full parts
// in the ring and the part being filled, each sample counted once.
//
// Hot path: no allocation.
func movingAverage(x, window float64, s []float64, dtn float64) float64 {
	const started, cur, sum, cnt, age, win, rsum, rcnt = 0, 1, 2, 3, 4, 5, 6, 7
	ring := s[8:]
	if s[started] == 0 || s[win] != window {
		clear(s)
		s[started], s[win] = 1, window
	}
	part := window / maBuckets
	s[sum] += x
	s[cnt]++
	s[age] += dtn
	k := int(s[cur])
	// Slot k holds the oldest part, which the one being filled replaces.
	avg := (s[rsum] - ring[2*k] + s[sum]) / (s[rcnt] - ring[2*k+1] + s[cnt])
	if s[age] >= part { // the part is full
		s[rsum] += s[sum] - ring[2*k]
		s[rcnt] += s[cnt] - ring[2*k+1]
		ring[2*k], ring[2*k+1] = s[sum], s[cnt]
		k = (k + 1) % maBuckets
		s[cur] = float64(k)
		if k == 0 { // once a round, the ring's sum afresh: no drift
			s[rsum], s[rcnt] = 0, 0
			for i := range maBuckets {
				s[rsum] += ring[2*i]
				s[rcnt] += ring[2*i+1]
			}
		}
		s[sum], s[cnt] = 0, 0
		// The time beyond the part counts toward the next one, so parts
		// of one and two cycles alternate to make up the window.
		if s[age] -= part; s[age] >= part {
			s[age] = 0 // cycles longer than a part: one cycle a part
		}
	}
	return avg
}

// alarm runs one cycle of an alarm block. State: the four limits' latches,
// their on-delay timers, their off-delay timers (nanoseconds, -1 when not
// running), ack of the last cycle, and whether an alarm is unacknowledged.
//
// Hot path: no allocation.
func (tp *TaskProgram) alarm(a []int32, out, p, s []float64, dtn float64) {
	r := tp.regs
	x := r[a[0]]
	db, onDelay, offDelay := p[alarmDeadband], p[alarmDelay]*1e9, p[alarmOffDelay]*1e9
	active, raised := 0.0, false
	for k := range 4 {
		lim := p[k]
		if math.IsNaN(lim) {
			s[k], out[k], s[4+k], s[8+k] = 0, 0, -1, -1
			continue
		}
		var cond, clear bool
		if k < 2 { // hi, hihi
			cond, clear = x >= lim, x < lim-db
		} else { // lo, lolo
			cond, clear = x <= lim, x > lim+db
		}
		if s[k] != 0 {
			s[4+k] = -1
			if tick(&s[8+k], clear, offDelay, dtn) {
				s[k] = 0
			}
		} else {
			s[8+k] = -1
			if tick(&s[4+k], cond, onDelay, dtn) {
				s[k], raised = 1, true
			}
		}
		out[k] = s[k]
		if s[k] != 0 {
			active = 1
		}
	}
	ack := r[a[1]] != 0
	if raised {
		s[13] = 1
	} else if ack && s[12] == 0 {
		s[13] = 0
	}
	s[12] = b2f(ack)
	out[4], out[5] = active, s[13]
}

// tick runs a delay timer et (nanoseconds, -1 when stopped) while cond
// holds; true when cond has held for delay.
func tick(et *float64, cond bool, delay, dtn float64) bool {
	if !cond {
		*et = -1
		return false
	}
	if *et < 0 {
		*et = 0
	} else {
		*et += dtn
	}
	if *et >= delay {
		*et = -1
		return true
	}
	return false
}
