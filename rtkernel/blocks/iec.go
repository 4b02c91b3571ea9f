package blocks

import (
	"math"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// The IEC 61131-3 standard functions and function blocks, under their IEC
// names in lower case, and expr. The functions (add ... real_to_bool)
// compute the formula of the same name of an expression (package expr),
// so a block and an expression give the same result, the same defined
// result of a failed operation (division by zero, a square root of a
// negative number, an overflow) and bad quality with it. The function
// blocks with memory (sr ... ctud) are instructions of their own.
//
// An input of a standard function is an int when it reads an int16,
// uint16 or int32 tag or is written as a whole number, else a float (a bool counts as the int 0
// or 1): div and mod of two ints are IEC's integer division, truncating
// toward zero, and its remainder.
var iecCatalogue = []*blockType{
	{BlockType: configs.BlockType{Name: "expr", Doc: "out is the expression expr: over tags, block ports, literals and the inputs in1..inN",
		Variadic: true, VariadicKind: num, Outputs: outNum, KindFrom: []string{"in*"}, Expression: true},
		op: opExpr},
	fn("add", "IEC ADD: out = in1 + in2 + ... + inN", nil, num, fold("+"), true),
	fn("sub", "IEC SUB: out = in1 - in2", two, num, fixed("in1 - in2"), true),
	fn("mul", "IEC MUL: out = in1 * in2 * ... * inN", nil, num, fold("*"), false),
	fn("div", "IEC DIV: out = in1 / in2 (ints: truncated toward zero); by zero: 0, bad", two, num, fixed("in1 / in2"), false),
	fn("mod", "IEC MOD: out = the remainder of in1 / in2, with the sign of in1; by zero: 0, bad", two, num, fixed("in1 % in2"), false),
	fn("expt", "IEC EXPT: out = in1 to the power in2; 0 to a negative power, a negative number to a fractional one: 0, bad", two, num, fixed("expt(in1, in2)"), false),
	fn("abs", "IEC ABS: out = |in|", inNum, num, fixed("abs(in)"), true),
	fn("sqrt", "IEC SQRT: out = the square root of in; of a negative number: 0, bad", inNum, num, fixed("sqrt(in)"), false),
	fn("ln", "IEC LN: out = the natural logarithm of in; of 0 or less: 0, bad", inNum, num, fixed("ln(in)"), false),
	fn("log", "IEC LOG: out = the base-10 logarithm of in; of 0 or less: 0, bad", inNum, num, fixed("log(in)"), false),
	fn("exp", "IEC EXP: out = e to the power in; an overflow: the largest float, bad", inNum, num, fixed("exp(in)"), false),
	fn("sin", "IEC SIN: out = sin(in), in radians", inNum, num, fixed("sin(in)"), false),
	fn("cos", "IEC COS: out = cos(in), in radians", inNum, num, fixed("cos(in)"), false),
	fn("tan", "IEC TAN: out = tan(in), in radians", inNum, num, fixed("tan(in)"), false),
	fn("asin", "IEC ASIN: out = asin(in), in radians; beyond [-1, 1]: 0, bad", inNum, num, fixed("asin(in)"), false),
	fn("acos", "IEC ACOS: out = acos(in), in radians; beyond [-1, 1]: 0, bad", inNum, num, fixed("acos(in)"), false),
	fn("atan", "IEC ATAN: out = atan(in), in radians", inNum, num, fixed("atan(in)"), false),
	cmp("gt", "IEC GT: out = in1 > in2 > ... > inN", chain(">")),
	cmp("ge", "IEC GE: out = in1 >= in2 >= ... >= inN", chain(">=")),
	cmp("eq", "IEC EQ: out = in1 = in2 = ... = inN", chain("==")),
	{BlockType: configs.BlockType{Name: "ne", Doc: "IEC NE: out = in1 <> in2",
		Inputs: two, Outputs: outBool, SameUnit: []string{"in1", "in2"}}, op: opExpr, formula: fixed("in1 != in2")},
	cmp("le", "IEC LE: out = in1 <= in2 <= ... <= inN", chain("<=")),
	cmp("lt", "IEC LT: out = in1 < in2 < ... < inN", chain("<")),
	{BlockType: configs.BlockType{Name: "sel", Doc: "IEC SEL: out is in1 while g is on, else in0",
		Inputs:  []configs.BlockPort{needs("g", boolean), needs("in0", num), needs("in1", num)},
		Outputs: outNum, SameUnit: []string{"in0", "in1"}, PassUnit: []string{"in0", "in1"}, KindFrom: []string{"in0", "in1"}},
		op: opSel},
	{BlockType: configs.BlockType{Name: "mux", Doc: "IEC MUX: out is input number k of in0, in1, ..., inN; k beyond them: the nearest, bad",
		Inputs:   []configs.BlockPort{needs("k", num), needs("in0", num)},
		Variadic: true, VariadicKind: num, MinInputs: 1,
		Outputs: outNum, SameUnit: []string{"in0", "in*"}, PassUnit: []string{"in0", "in*"}, KindFrom: []string{"in0", "in*"}},
		op: opMux},
	{BlockType: configs.BlockType{Name: "move", Doc: "IEC MOVE: out = in",
		Inputs: []configs.BlockPort{needs("in", num)}, Outputs: outNum, PassUnit: passIn, KindFrom: passIn},
		op: opMove},
	{BlockType: configs.BlockType{Name: "sr", Doc: "IEC SR: set-dominant latch, q1 = s1 or (not r and q1)",
		Inputs: []configs.BlockPort{needs("s1", boolean), needs("r", boolean)}, Outputs: []configs.BlockPort{port("q1", boolean)}},
		op: opSR, state: 1, hold: true},
	{BlockType: configs.BlockType{Name: "rs", Doc: "IEC RS: reset-dominant latch, q1 = not r1 and (s or q1)",
		Inputs: []configs.BlockPort{needs("s", boolean), needs("r1", boolean)}, Outputs: []configs.BlockPort{port("q1", boolean)}},
		op: opRS, state: 1, hold: true},
	{BlockType: configs.BlockType{Name: "r_trig", Doc: "IEC R_TRIG: q is on for the one cycle in which clk turns on",
		Inputs: []configs.BlockPort{needs("clk", boolean)}, Outputs: []configs.BlockPort{port("q", boolean)}},
		op: opRTrig, state: 1, hold: true},
	{BlockType: configs.BlockType{Name: "f_trig", Doc: "IEC F_TRIG: q is on for the one cycle in which clk turns off (and, as IEC defines it, in the first cycle when clk starts off)",
		Inputs: []configs.BlockPort{needs("clk", boolean)}, Outputs: []configs.BlockPort{port("q", boolean)}},
		op: opFTrig, state: 1, hold: true},
	{BlockType: configs.BlockType{Name: "ctu", Doc: "IEC CTU: cv counts rising edges of cu up to the int limit; r resets it to 0; q = cv >= pv",
		Inputs: []configs.BlockPort{needs("cu", boolean), port("r", boolean)}, Outputs: []configs.BlockPort{port("q", boolean), port("cv", num)},
		Params: pvParam},
		op: opCTU, state: 2, hold: true},
	{BlockType: configs.BlockType{Name: "ctd", Doc: "IEC CTD: cv counts rising edges of cd down to the int limit; ld loads pv; q = cv <= 0",
		Inputs: []configs.BlockPort{needs("cd", boolean), port("ld", boolean)}, Outputs: []configs.BlockPort{port("q", boolean), port("cv", num)},
		Params: pvParam},
		op: opCTD, state: 2, hold: true},
	{BlockType: configs.BlockType{Name: "ctud", Doc: "IEC CTUD: cv counts rising edges of cu up and of cd down (both at once: neither); r resets to 0, ld loads pv; qu = cv >= pv, qd = cv <= 0",
		Inputs:   []configs.BlockPort{port("cu", boolean), port("cd", boolean), port("r", boolean), port("ld", boolean)},
		AnyInput: []string{"cu", "cd"},
		Outputs:  []configs.BlockPort{port("qu", boolean), port("qd", boolean), port("cv", num)},
		Params:   pvParam},
		op: opCTUD, state: 3, hold: true},
	conv("trunc", "IEC TRUNC: out = in truncated toward zero, an int; beyond the int range: the nearest limit, bad", num, num, "trunc(in)"),
	conv("real_to_int", "IEC REAL_TO_INT: out = in rounded to the nearest int, halves away from zero; beyond the int range: the nearest limit, bad", num, num, "real_to_int(in)"),
	conv("int_to_real", "IEC INT_TO_REAL: out = in", num, num, "int_to_real(in)"),
	conv("bool_to_int", "IEC BOOL_TO_INT: out = 1 when in is on, else 0", boolean, num, "bool_to_int(in)"),
	conv("bool_to_real", "IEC BOOL_TO_REAL: out = 1.0 when in is on, else 0.0", boolean, num, "bool_to_real(in)"),
	conv("int_to_bool", "IEC INT_TO_BOOL: out is on when in is not 0", num, boolean, "int_to_bool(in)"),
	conv("real_to_bool", "IEC REAL_TO_BOOL: out is on when in is not 0", num, boolean, "real_to_bool(in)"),
}

var (
	two     = []configs.BlockPort{needs("in1", num), needs("in2", num)}
	pvParam = []configs.BlockParam{mustWrite("pv", configs.ParamNumber, "preset value", "10")}
)

// fn is a standard function of numbers: fixed inputs, or in1..inN (at
// least 2) when inputs is nil; same: the inputs share a unit and out
// carries it.
func fn(name, doc string, inputs []configs.BlockPort, out configs.PortKind, f func(int) string, same bool) *blockType {
	t := &blockType{BlockType: configs.BlockType{Name: name, Doc: doc, Inputs: inputs,
		Outputs: []configs.BlockPort{port("out", out)}}, op: opExpr, formula: f}
	if inputs == nil {
		t.Variadic, t.VariadicKind, t.MinInputs = true, num, 2
	}
	if same {
		t.SameUnit, t.PassUnit = []string{"in*"}, []string{"in*"}
		if inputs != nil {
			t.SameUnit, t.PassUnit = portList(inputs), portList(inputs)
		}
	}
	return t
}

// cmp is an extensible IEC comparison of in1..inN (2 or more).
func cmp(name, doc string, f func(int) string) *blockType {
	return &blockType{BlockType: configs.BlockType{Name: name, Doc: doc, Variadic: true, VariadicKind: num, MinInputs: 2,
		Outputs: outBool, SameUnit: passVar}, op: opExpr, formula: f}
}

// conv is a type conversion of in.
func conv(name, doc string, in, out configs.PortKind, f string) *blockType {
	t := &blockType{BlockType: configs.BlockType{Name: name, Doc: doc, Inputs: []configs.BlockPort{needs("in", in)},
		Outputs: []configs.BlockPort{port("out", out)}}, op: opExpr, formula: fixed(f)}
	if in == num && out == num {
		t.PassUnit = passIn
	}
	return t
}

func portList(ps []configs.BlockPort) []string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names
}

// Counter limits: IEC's DINT.
const (
	cvMax = math.MaxInt32
	cvMin = math.MinInt32
)

// iec runs one cycle of the IEC function blocks with memory and of sel,
// mux and move; worst is the quality of the output.
//
// Hot path: no allocation.
func (tp *TaskProgram) iec(op opcode, a []int32, out, p, s []float64, worst uint16) uint16 {
	r, qual := tp.regs, tp.qual
	on := func(i int) bool { return r[a[i]] != 0 }
	switch op {
	case opSR:
		s[0] = b2f(on(0) || (!on(1) && s[0] != 0))
		out[0] = s[0]
	case opRS:
		s[0] = b2f(!on(1) && (on(0) || s[0] != 0))
		out[0] = s[0]
	case opRTrig:
		clk := on(0)
		out[0] = b2f(clk && s[0] == 0)
		s[0] = b2f(clk)
	case opFTrig:
		// IEC: Q := NOT CLK AND NOT M; M := NOT CLK (M starts FALSE).
		clk := on(0)
		out[0] = b2f(!clk && s[0] == 0)
		s[0] = b2f(!clk)
	case opCTU:
		cu := on(0)
		switch {
		case on(1):
			s[0] = 0
		case cu && s[1] == 0 && s[0] < cvMax:
			s[0]++
		}
		s[1] = b2f(cu)
		out[0], out[1] = b2f(s[0] >= p[0]), s[0]
	case opCTD:
		cd := on(0)
		switch {
		case on(1):
			s[0] = clamp(math.Round(p[0]), cvMin, cvMax)
		case cd && s[1] == 0 && s[0] > cvMin:
			s[0]--
		}
		s[1] = b2f(cd)
		out[0], out[1] = b2f(s[0] <= 0), s[0]
	case opCTUD:
		cu, cd := on(0), on(1)
		upEdge, downEdge := cu && s[1] == 0, cd && s[2] == 0
		switch {
		case on(2):
			s[0] = 0
		case on(3):
			s[0] = clamp(math.Round(p[0]), cvMin, cvMax)
		case upEdge && downEdge:
		case upEdge && s[0] < cvMax:
			s[0]++
		case downEdge && s[0] > cvMin:
			s[0]--
		}
		s[1], s[2] = b2f(cu), b2f(cd)
		out[0], out[1], out[2] = b2f(s[0] >= p[0]), b2f(s[0] <= 0), s[0]
	case opSel:
		pick := a[1]
		if on(0) {
			pick = a[2]
		}
		out[0] = r[pick]
		worst = max(qual[a[0]], qual[pick])
	case opMux:
		k, last := r[a[0]], float64(len(a)-2)
		i := clamp(math.Round(k), 0, last)
		if i != i { // NaN
			i = 0
		}
		pick := a[1+int(i)]
		out[0] = r[pick]
		worst = max(qual[a[0]], qual[pick])
		if k != i {
			worst = max(worst, qcode(tag.Bad, tag.OutOfRange))
		}
	case opMove:
		out[0] = r[a[0]]
	}
	return worst
}
