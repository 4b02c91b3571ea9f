package blocks

import (
	"math"

	"github.com/mkrt/mkrt/configs"
)

// opcode is an instruction of a flat program.
type opcode uint8

// The opcodes. A delay block compiles to two instructions: delayOut at the
// start of the cycle and delayIn at the end.
const (
	opNop opcode = iota
	opPID
	opLag
	opRamp
	opLimit
	opScale
	opDeadband
	opHysteresis
	opAlarm
	opTON
	opTOF
	opTP
	opCounter
	opAnd
	opOr
	opXor
	opNot
	opCompare
	opSelect
	opMin
	opMax
	opAverage
	opDelayOut
	opDelayIn
	opExpr // an expression (expr, an input written as one, a standard function)
	opSR
	opRS
	opRTrig
	opFTrig
	opCTU
	opCTD
	opCTUD
	opSel
	opMux
	opMove
)

// blockType is one entry of the catalogue: the description a config is
// checked against (ports, parameters, unit rules: what Catalogue shows),
// and what the compiler and the program need to run a block of the type.
type blockType struct {
	configs.BlockType
	op opcode
	// scratch is the number of slots after the parameters the block uses for
	// values derived from them (not part of its state).
	scratch int
	// state is the number of state slots saved by SaveState.
	state int
	// hold: the block keeps its state and outputs while an input is bad.
	hold bool
	// check verifies the parameters together; it names the parameter at fault.
	check func(p []float64) (param, msg string)
	// formula is what a standard function block computes, as an
	// expression over its inputs, for n numbered inputs.
	formula func(n int) string
}

// Parameter, state and port indices used by the instructions.
const (
	pidKp, pidTi, pidTd, pidN, pidOutMin, pidOutMax, pidRate, pidDirect, pidBias, pidTf = 0, 1, 2, 3, 4, 5, 6, 7, 8, 12 // 9-11: tune.go
	pidStInit, pidStI, pidStD, pidStPV, pidStOut, pidStErr                              = 0, 1, 2, 3, 4, 5
	alarmDeadband, alarmDelay, alarmOffDelay                                            = 4, 5, 6
	compareGT, compareGE, compareLT, compareLE, compareEQ, compareNE                    = 0, 1, 2, 3, 4, 5
)

// Shorthands for the catalogue: a required input; an optional input or an
// output; a parameter with a default, one that must be written, one that
// may stay unset.
func needs(name string, k configs.PortKind) configs.BlockPort {
	return configs.BlockPort{Name: name, Kind: k, Required: true}
}
func port(name string, k configs.PortKind) configs.BlockPort {
	return configs.BlockPort{Name: name, Kind: k}
}
func withDefault(name string, k configs.ParamKind, def float64, doc, example string) configs.BlockParam {
	return configs.BlockParam{Name: name, Kind: k, Default: def, Doc: doc, Example: example}
}
func mustWrite(name string, k configs.ParamKind, doc, example string) configs.BlockParam {
	return configs.BlockParam{Name: name, Kind: k, Required: true, Doc: doc, Example: example}
}
func unset(name string, k configs.ParamKind, doc, example string) configs.BlockParam {
	return configs.BlockParam{Name: name, Kind: k, Default: math.NaN(), Optional: true, Doc: doc, Example: example}
}

// The port kinds, short.
const (
	num     = configs.PortNumber
	boolean = configs.PortBool
)

var (
	inNum   = []configs.BlockPort{needs("in", num)}
	inBool  = []configs.BlockPort{needs("in", boolean)}
	outNum  = []configs.BlockPort{port("out", num)}
	outBool = []configs.BlockPort{port("out", boolean)}
	timer   = []configs.BlockPort{port("q", boolean), port("et", num)}
	ptParam = []configs.BlockParam{mustWrite("pt", configs.ParamDuration, "preset time", "5s")}
	passIn  = []string{"in"}
	passVar = []string{"in*"}
)

// compareOps are compare's op words; SetParam takes an op as its index.
var compareOps = []string{"gt", "ge", "lt", "le", "eq", "ne"}

// catalogue is every block type, in documentation order: the blocks of
// the plant's own vocabulary, then expr and the IEC 61131-3 standard
// library (iec.go).
var catalogue = append([]*blockType{
	{BlockType: configs.BlockType{Name: "pid",
		Doc:        "PID controller: ideal (ISA) form, derivative on the measurement, clamping anti-windup, bumpless tracking",
		Inputs:     []configs.BlockPort{needs("pv", num), needs("sp", num), port("track", boolean), port("man_out", num), port("ff", num), port("ext_reset", num)},
		InputNeeds: [][2]string{{"track", "man_out"}},
		Outputs:    pidOutputs,
		Params: []configs.BlockParam{
			withDefault("kp", configs.ParamNumber, 1, "proportional gain", "2"),
			withDefault("ti", configs.ParamDuration, 0, "integral time; 0: no integral", "30s"),
			withDefault("td", configs.ParamDuration, 0, "derivative time; 0: no derivative", "1s"),
			withDefault("td_filter", configs.ParamRatio, 10, "derivative filter: the ratio N of td to the filter time, or the filter time itself", "8"),
			withDefault("out_min", configs.ParamNumber, 0, "lowest output", "0"),
			withDefault("out_max", configs.ParamNumber, 100, "highest output", "100"),
			withDefault("rate_max", configs.ParamNonNeg, 0, "fastest output change, in units per second; 0: no limit", "20"),
			withDefault("direct", configs.ParamBool, 0, "true: the output rises when pv rises (direct acting)", "false"),
			withDefault("bias", configs.ParamNumber, 0, "added to the output", "5"),
			tuneParams[0], tuneParams[1], tuneParams[2],
		},
		SameUnit: []string{"pv", "sp"}},
		op: opPID, scratch: 2 + tuneSlots, state: 6, hold: true,
		check: func(p []float64) (string, string) {
			if !(p[pidOutMin] < p[pidOutMax]) {
				return "out_max", "out_max must be above out_min"
			}
			if p[pidN] <= 0 {
				return "td_filter", "td_filter must be above 0 (typical 5 to 20)"
			}
			if p[pidTuneMaxTime] <= 0 {
				return "tune_max_time", "tune_max_time must be above 0 (the relay experiment is always bounded)"
			}
			return "", ""
		}},
	{BlockType: configs.BlockType{Name: "lag", Doc: "first-order lag: out follows in with time constant tau",
		Inputs: inNum, Outputs: outNum, PassUnit: passIn,
		Params: []configs.BlockParam{mustWrite("tau", configs.ParamDuration, "time constant; 0 passes in through", "5s")}},
		op: opLag, scratch: 2, state: 2, hold: true},
	{BlockType: configs.BlockType{Name: "ramp", Doc: "rate limiter: out follows in at most rate units per second",
		Inputs: inNum, Outputs: outNum, PassUnit: passIn,
		Params: []configs.BlockParam{mustWrite("rate", configs.ParamNonNeg, "fastest change, in units per second (above 0)", "10")}},
		op: opRamp, state: 2, hold: true,
		check: func(p []float64) (string, string) {
			if p[0] <= 0 {
				return "rate", "rate must be above 0 (units per second)"
			}
			return "", ""
		}},
	{BlockType: configs.BlockType{Name: "limit", Doc: "out is in held between min and max (IEC LIMIT: the inputs mn and mx, when wired, replace them)",
		Inputs: []configs.BlockPort{needs("in", num), port("mn", num), port("mx", num)}, Outputs: outNum, PassUnit: passIn,
		SameUnit: []string{"in", "mn", "mx"},
		Params: []configs.BlockParam{withDefault("min", configs.ParamNumber, math.Inf(-1), "lowest output", "0"),
			withDefault("max", configs.ParamNumber, math.Inf(1), "highest output", "100")}},
		op: opLimit, scratch: 2,
		check: func(p []float64) (string, string) {
			if p[0] > p[1] {
				return "max", "max must not be below min"
			}
			return "", ""
		}},
	{BlockType: configs.BlockType{Name: "scale", Doc: "out = in*gain + offset: the block that converts units",
		Inputs: inNum, Outputs: outNum,
		Params: []configs.BlockParam{withDefault("gain", configs.ParamNumber, 1, "factor", "2.5"),
			withDefault("offset", configs.ParamNumber, 0, "added after the gain", "-10")}},
		op: opScale},
	{BlockType: configs.BlockType{Name: "deadband", Doc: "dead zone: out is 0 while |in| <= width, else in moved toward 0 by width",
		Inputs: inNum, Outputs: outNum, PassUnit: passIn,
		Params: []configs.BlockParam{mustWrite("width", configs.ParamNonNeg, "half the width of the dead zone", "0.5")}},
		op: opDeadband},
	{BlockType: configs.BlockType{Name: "hysteresis", Doc: "two-point switch: out turns on when in >= on, off when in <= off",
		Inputs: inNum, Outputs: outBool,
		Params: []configs.BlockParam{mustWrite("on", configs.ParamNumber, "in at or above it turns out on", "80"),
			mustWrite("off", configs.ParamNumber, "in at or below it turns out off (below on)", "60")}},
		op: opHysteresis, state: 1, hold: true,
		check: func(p []float64) (string, string) {
			if !(p[1] < p[0]) {
				return "off", "off must be below on (on when in >= on, off when in <= off)"
			}
			return "", ""
		}},
	{BlockType: configs.BlockType{Name: "alarm", Doc: "limit alarms: each set limit alarms when in stays beyond it for delay, and clears when in stays inside it by deadband for off_delay; a raised alarm turns unacked on until a rising edge of ack",
		Inputs: []configs.BlockPort{needs("in", num), port("ack", boolean)},
		Outputs: []configs.BlockPort{port("hi", boolean), port("hihi", boolean), port("lo", boolean),
			port("lolo", boolean), port("active", boolean), port("unacked", boolean)},
		Params: []configs.BlockParam{unset("hi", configs.ParamNumber, "high limit", "90"), unset("hihi", configs.ParamNumber, "high-high limit", "95"),
			unset("lo", configs.ParamNumber, "low limit", "10"), unset("lolo", configs.ParamNumber, "low-low limit", "5"),
			withDefault("deadband", configs.ParamNonNeg, 0, "how far back inside a limit in must come to clear it", "0.5"),
			withDefault("delay", configs.ParamDuration, 0, "how long in must stay beyond a limit to set it", "2s"),
			withDefault("off_delay", configs.ParamDuration, 0, "how long in must stay back inside a limit to clear it", "1s")}},
		op: opAlarm, state: 14, hold: true, check: checkAlarm},
	{BlockType: configs.BlockType{Name: "ton", Doc: "on-delay timer (IEC 61131-3): q turns on when in has been on for pt",
		Inputs: inBool, Outputs: timer, Params: ptParam},
		op: opTON, state: 2, hold: true},
	{BlockType: configs.BlockType{Name: "tof", Doc: "off-delay timer (IEC 61131-3): q turns off when in has been off for pt",
		Inputs: inBool, Outputs: timer, Params: ptParam},
		op: opTOF, state: 3, hold: true},
	{BlockType: configs.BlockType{Name: "tp", Doc: "pulse timer (IEC 61131-3): q is on for pt from a rising edge of in",
		Inputs: inBool, Outputs: timer, Params: ptParam},
		op: opTP, state: 3, hold: true},
	{BlockType: configs.BlockType{Name: "counter", Doc: "up/down counter of rising edges; reset holds cv at 0",
		Inputs:   []configs.BlockPort{port("up", boolean), port("down", boolean), port("reset", boolean)},
		AnyInput: []string{"up", "down"},
		Outputs:  []configs.BlockPort{port("cv", num), port("q", boolean), port("qd", boolean)},
		Params:   []configs.BlockParam{withDefault("pv", configs.ParamNumber, 0, "preset: q is on while cv >= pv", "10")}},
		op: opCounter, state: 3, hold: true},
	{BlockType: configs.BlockType{Name: "and", Doc: "on when every input is on",
		Variadic: true, VariadicKind: boolean, MinInputs: 2, Outputs: outBool}, op: opAnd},
	{BlockType: configs.BlockType{Name: "or", Doc: "on when any input is on",
		Variadic: true, VariadicKind: boolean, MinInputs: 2, Outputs: outBool}, op: opOr},
	{BlockType: configs.BlockType{Name: "xor", Doc: "on when an odd number of inputs are on",
		Variadic: true, VariadicKind: boolean, MinInputs: 2, Outputs: outBool}, op: opXor},
	{BlockType: configs.BlockType{Name: "not", Doc: "on when in is off", Inputs: inBool, Outputs: outBool}, op: opNot},
	{BlockType: configs.BlockType{Name: "compare", Doc: "out is a op b, held by a hysteresis",
		Inputs: []configs.BlockPort{needs("a", num), needs("b", num)}, Outputs: outBool,
		Params: []configs.BlockParam{{Name: "op", Kind: configs.ParamEnum, Required: true, Enum: compareOps, Doc: "the comparison", Example: "gt"},
			withDefault("hysteresis", configs.ParamNonNeg, 0, "how far back a must come before out turns off (eq, ne: the tolerance)", "0.5")},
		SameUnit: []string{"a", "b"}},
		op: opCompare, state: 1},
	{BlockType: configs.BlockType{Name: "select", Doc: "out is in2 while sel is on, else in1",
		Inputs:  []configs.BlockPort{needs("sel", boolean), needs("in1", num), needs("in2", num)},
		Outputs: outNum, SameUnit: []string{"in1", "in2"}, PassUnit: []string{"in1", "in2"}, KindFrom: []string{"in1", "in2"}},
		op: opSelect},
	{BlockType: configs.BlockType{Name: "min", Doc: "the smallest input",
		Variadic: true, VariadicKind: num, MinInputs: 1, Outputs: outNum, SameUnit: passVar, PassUnit: passVar}, op: opMin},
	{BlockType: configs.BlockType{Name: "max", Doc: "the largest input",
		Variadic: true, VariadicKind: num, MinInputs: 1, Outputs: outNum, SameUnit: passVar, PassUnit: passVar}, op: opMax},
	{BlockType: configs.BlockType{Name: "average", Doc: "the mean of the inputs",
		Variadic: true, VariadicKind: num, MinInputs: 1, Outputs: outNum, SameUnit: passVar, PassUnit: passVar}, op: opAverage},
	{BlockType: configs.BlockType{Name: "delay", Doc: "out is in of the previous cycle: the block that breaks a loop",
		Inputs: inNum, Outputs: outNum, PassUnit: passIn, KindFrom: passIn,
		Params: []configs.BlockParam{withDefault("initial", configs.ParamValue, 0, "out in the first cycle", "0")}},
		op: opDelayOut, state: 2},
}, append(append(iecCatalogue, processCatalogue...), sequenceCatalogue...)...)

// byType indexes the catalogue by type name.
var byType = func() map[string]*blockType {
	m := make(map[string]*blockType, len(catalogue))
	for _, t := range catalogue {
		m[t.Name] = t
	}
	return m
}()

// typeNames lists the block types in documentation order (for messages).
var typeNames = func() []string {
	names := make([]string, len(catalogue))
	for i, t := range catalogue {
		names[i] = t.Name
	}
	return names
}()

// checkAlarm wants at least one limit and the set limits in the order
// lolo <= lo < hi <= hihi.
func checkAlarm(p []float64) (string, string) {
	names := [4]string{"hi", "hihi", "lo", "lolo"}
	seq := [4]int{3, 2, 0, 1} // lolo, lo, hi, hihi
	set := 0
	for i := range 4 {
		if !math.IsNaN(p[i]) {
			set++
		}
	}
	if set == 0 {
		return "", "alarm needs at least one of hi, hihi, lo, lolo"
	}
	for i := range seq {
		for j := i + 1; j < len(seq); j++ {
			a, b := p[seq[i]], p[seq[j]]
			if math.IsNaN(a) || math.IsNaN(b) {
				continue
			}
			strict := i < 2 && j >= 2 // a low limit against a high one
			if a > b || (strict && a == b) {
				return names[seq[j]], "alarm limits must be ordered lolo <= lo < hi <= hihi"
			}
		}
	}
	return "", ""
}
