package blocks

import "math"

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
)

// kind is the type of a port: a number or a bool (carried as 0 or 1).
type kind uint8

const (
	number kind = iota
	boolean
)

func (k kind) String() string {
	if k == boolean {
		return "bool"
	}
	return "number"
}

// port is an input or output of a block type.
type port struct {
	name     string
	kind     kind
	required bool
}

// paramKind is how a parameter is written in the config.
type paramKind uint8

const (
	pNumber   paramKind = iota // any number
	pNonNeg                    // a number >= 0
	pDuration                  // a duration with a unit; seconds in the program
	pBool                      // true or false; 1 or 0 in the program
	pEnum                      // one of enum; its index in the program
	pValue                     // a number or true/false (1/0)
	pRatio                     // a number > 0, or a duration stored in the block's first scratch slot
)

// param is a parameter of a block type.
type param struct {
	name     string
	kind     paramKind
	def      float64
	required bool
	// optional parameters may stay unset; they are NaN in the program.
	optional bool
	enum     []string
}

// blockType is everything the compiler knows about one block type.
type blockType struct {
	name string
	op   opcode
	in   []port
	// variadic inputs are named in1..inN, of this kind, at least minN of them.
	variadic bool
	varKind  kind
	minN     int
	out      []port
	params   []param
	// scratch is the number of slots after the parameters the block uses for
	// values derived from them (not part of its state).
	scratch int
	// state is the number of state slots saved by SaveState.
	state int
	// hold: the block keeps its state and outputs while an input is bad.
	hold bool
	// sameUnit lists input ports that must carry the same unit ("in*" is
	// every variadic input).
	sameUnit []string
	// passUnit is the input whose unit the outputs carry ("in*": the variadic
	// inputs' common unit); "" when the outputs have no known unit.
	passUnit []string
	// poly lists the data inputs whose kind the outputs take: the outputs
	// are bools when all of them are.
	poly []string
	// check verifies the parameters together; it names the parameter at fault.
	check func(p []float64) (param, msg string)
}

// Parameter, state and port indices used by the instructions.
const (
	pidKp, pidTi, pidTd, pidN, pidOutMin, pidOutMax, pidRate, pidDirect, pidBias, pidTf = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
	pidStInit, pidStI, pidStD, pidStPV, pidStOut, pidStErr                              = 0, 1, 2, 3, 4, 5
	alarmDeadband, alarmDelay                                                           = 4, 5
	compareGT, compareGE, compareLT, compareLE, compareEQ, compareNE                    = 0, 1, 2, 3, 4, 5
)

var (
	inNum   = []port{{name: "in", kind: number, required: true}}
	inBool  = []port{{name: "in", kind: boolean, required: true}}
	outNum  = []port{{name: "out", kind: number}}
	outBool = []port{{name: "out", kind: boolean}}
	timer   = []port{{name: "q", kind: boolean}, {name: "et", kind: number}}
	ptParam = []param{{name: "pt", kind: pDuration, required: true}}
	passIn  = []string{"in"}
	passVar = []string{"in*"}
)

// blockTypes is the block library, by type name.
var blockTypes = map[string]*blockType{
	"pid": {
		name: "pid", op: opPID,
		in: []port{{name: "pv", kind: number, required: true}, {name: "sp", kind: number, required: true},
			{name: "track", kind: boolean}, {name: "man_out", kind: number}},
		out: outNum,
		params: []param{{name: "kp", kind: pNumber, def: 1}, {name: "ti", kind: pDuration}, {name: "td", kind: pDuration},
			{name: "td_filter", kind: pRatio, def: 10}, {name: "out_min", kind: pNumber, def: 0}, {name: "out_max", kind: pNumber, def: 100},
			{name: "rate_max", kind: pNonNeg}, {name: "direct", kind: pBool}, {name: "bias", kind: pNumber}},
		scratch: 1, state: 6, hold: true, sameUnit: []string{"pv", "sp"},
		check: func(p []float64) (string, string) {
			if !(p[pidOutMin] < p[pidOutMax]) {
				return "out_max", "out_max must be above out_min"
			}
			if p[pidN] <= 0 {
				return "td_filter", "td_filter must be above 0 (typical 5 to 20)"
			}
			return "", ""
		},
	},
	"lag": {name: "lag", op: opLag, in: inNum, out: outNum, params: []param{{name: "tau", kind: pDuration, required: true}},
		scratch: 2, state: 2, hold: true, passUnit: passIn},
	"ramp": {name: "ramp", op: opRamp, in: inNum, out: outNum, params: []param{{name: "rate", kind: pNonNeg, required: true}},
		state: 2, hold: true, passUnit: passIn,
		check: func(p []float64) (string, string) {
			if p[0] <= 0 {
				return "rate", "rate must be above 0 (units per second)"
			}
			return "", ""
		}},
	"limit": {name: "limit", op: opLimit, in: inNum, out: outNum,
		params:   []param{{name: "min", kind: pNumber, def: math.Inf(-1)}, {name: "max", kind: pNumber, def: math.Inf(1)}},
		passUnit: passIn,
		check: func(p []float64) (string, string) {
			if p[0] > p[1] {
				return "max", "max must not be below min"
			}
			return "", ""
		}},
	"scale": {name: "scale", op: opScale, in: inNum, out: outNum,
		params: []param{{name: "gain", kind: pNumber, def: 1}, {name: "offset", kind: pNumber}}},
	"deadband": {name: "deadband", op: opDeadband, in: inNum, out: outNum,
		params: []param{{name: "width", kind: pNonNeg, required: true}}, passUnit: passIn},
	"hysteresis": {name: "hysteresis", op: opHysteresis, in: inNum, out: outBool,
		params: []param{{name: "on", kind: pNumber, required: true}, {name: "off", kind: pNumber, required: true}},
		state:  1, hold: true,
		check: func(p []float64) (string, string) {
			if !(p[1] < p[0]) {
				return "off", "off must be below on (on when in >= on, off when in <= off)"
			}
			return "", ""
		}},
	"alarm": {name: "alarm", op: opAlarm, in: inNum,
		out: []port{{name: "hi", kind: boolean}, {name: "hihi", kind: boolean}, {name: "lo", kind: boolean},
			{name: "lolo", kind: boolean}, {name: "active", kind: boolean}},
		params: []param{{name: "hi", kind: pNumber, optional: true}, {name: "hihi", kind: pNumber, optional: true},
			{name: "lo", kind: pNumber, optional: true}, {name: "lolo", kind: pNumber, optional: true},
			{name: "deadband", kind: pNonNeg}, {name: "delay", kind: pDuration}},
		state: 8, hold: true, check: checkAlarm},
	"ton":     {name: "ton", op: opTON, in: inBool, out: timer, params: ptParam, state: 2, hold: true},
	"tof":     {name: "tof", op: opTOF, in: inBool, out: timer, params: ptParam, state: 3, hold: true},
	"tp":      {name: "tp", op: opTP, in: inBool, out: timer, params: ptParam, state: 3, hold: true},
	"counter": {name: "counter", op: opCounter, in: []port{{name: "up", kind: boolean}, {name: "down", kind: boolean}, {name: "reset", kind: boolean}}, out: []port{{name: "cv", kind: number}, {name: "q", kind: boolean}, {name: "qd", kind: boolean}}, params: []param{{name: "pv", kind: pNumber}}, state: 3, hold: true},
	"and":     {name: "and", op: opAnd, variadic: true, varKind: boolean, minN: 2, out: outBool},
	"or":      {name: "or", op: opOr, variadic: true, varKind: boolean, minN: 2, out: outBool},
	"xor":     {name: "xor", op: opXor, variadic: true, varKind: boolean, minN: 2, out: outBool},
	"not":     {name: "not", op: opNot, in: inBool, out: outBool},
	"compare": {name: "compare", op: opCompare, in: []port{{name: "a", kind: number, required: true}, {name: "b", kind: number, required: true}}, out: outBool, params: []param{{name: "op", kind: pEnum, required: true, enum: []string{"gt", "ge", "lt", "le", "eq", "ne"}}, {name: "hysteresis", kind: pNonNeg}}, state: 1, sameUnit: []string{"a", "b"}},
	"select":  {name: "select", op: opSelect, in: []port{{name: "sel", kind: boolean, required: true}, {name: "in1", kind: number, required: true}, {name: "in2", kind: number, required: true}}, out: outNum, passUnit: []string{"in1", "in2"}, poly: []string{"in1", "in2"}},
	"min":     {name: "min", op: opMin, variadic: true, varKind: number, minN: 1, out: outNum, sameUnit: passVar, passUnit: passVar},
	"max":     {name: "max", op: opMax, variadic: true, varKind: number, minN: 1, out: outNum, sameUnit: passVar, passUnit: passVar},
	"average": {name: "average", op: opAverage, variadic: true, varKind: number, minN: 1, out: outNum, sameUnit: passVar, passUnit: passVar},
	"delay":   {name: "delay", op: opDelayOut, in: inNum, out: outNum, params: []param{{name: "initial", kind: pValue}}, state: 2, passUnit: passIn, poly: passIn},
}

// typeNames lists the block types in documentation order (for messages).
var typeNames = []string{"pid", "lag", "ramp", "limit", "scale", "deadband", "hysteresis", "alarm", "ton", "tof", "tp",
	"counter", "and", "or", "not", "xor", "compare", "select", "min", "max", "average", "delay"}

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
