package blocks_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/rtkernel/blocks/expr"
	"github.com/mkrt/mkrt/shm/tag"
)

// one runs a single block of typ with literal inputs ("port=value") for a
// cycle and returns its output tag "o" (a number tag, or a bool one when
// the output is a bool).
func one(t *testing.T, typ string, ins ...string) tag.Sample {
	t.Helper()
	spec := []string{}
	for _, in := range ins {
		spec = append(spec, "in:"+in)
	}
	bt, _ := blocks.Lookup(typ)
	out := "o"
	if bt.Outputs[0].Kind == configs.PortBool {
		out = "o:bool"
	}
	spec = append(spec, "out:"+bt.Outputs[0].Name+"=o")
	r := newRig(t, config([]string{out}, blk(1, "b", typ, spec...)), 10*time.Millisecond)
	r.step()
	return r.sample("o")
}

// The IEC standard functions: results, and the defined result and bad
// quality of a failed operation.
func TestIECFunctions(t *testing.T) {
	good, bad := true, false
	for _, c := range []struct {
		typ  string
		ins  []string
		want float64
		ok   bool
	}{
		{"add", []string{"in1=2", "in2=3", "in3=4.5"}, 9.5, good},
		{"add", []string{"in1=2147483647", "in2=1"}, expr.IntMax, bad},
		{"sub", []string{"in1=5", "in2=7"}, -2, good},
		{"mul", []string{"in1=2", "in2=3", "in3=4"}, 24, good},
		{"div", []string{"in1=7", "in2=2"}, 3, good},
		{"div", []string{"in1=-7", "in2=2"}, -3, good},
		{"div", []string{"in1=7.0", "in2=2"}, 3.5, good},
		{"div", []string{"in1=7.0", "in2=0"}, 0, bad},
		{"div", []string{"in1=7", "in2=0"}, 0, bad},
		{"mod", []string{"in1=7", "in2=3"}, 1, good},
		{"mod", []string{"in1=-7", "in2=3"}, -1, good},
		{"mod", []string{"in1=7", "in2=0"}, 0, bad},
		{"expt", []string{"in1=2", "in2=10"}, 1024, good},
		{"expt", []string{"in1=0", "in2=-1"}, 0, bad},
		{"abs", []string{"in=-3.5"}, 3.5, good},
		{"sqrt", []string{"in=9"}, 3, good},
		{"sqrt", []string{"in=-1"}, 0, bad},
		{"ln", []string{"in=1"}, 0, good},
		{"ln", []string{"in=0"}, 0, bad},
		{"log", []string{"in=100"}, 2, good},
		{"log", []string{"in=-5"}, 0, bad},
		{"exp", []string{"in=0"}, 1, good},
		{"exp", []string{"in=1000"}, math.MaxFloat64, bad},
		{"sin", []string{"in=0"}, 0, good},
		{"cos", []string{"in=0"}, 1, good},
		{"tan", []string{"in=0"}, 0, good},
		{"asin", []string{"in=1"}, math.Pi / 2, good},
		{"asin", []string{"in=2"}, 0, bad},
		{"acos", []string{"in=1"}, 0, good},
		{"acos", []string{"in=-1.5"}, 0, bad},
		{"atan", []string{"in=0"}, 0, good},
		{"gt", []string{"in1=3", "in2=2", "in3=1"}, 1, good},
		{"gt", []string{"in1=3", "in2=2", "in3=2"}, 0, good},
		{"ge", []string{"in1=3", "in2=2", "in3=2"}, 1, good},
		{"eq", []string{"in1=2", "in2=2", "in3=2"}, 1, good},
		{"eq", []string{"in1=2", "in2=2.5"}, 0, good},
		{"ne", []string{"in1=1", "in2=2"}, 1, good},
		{"le", []string{"in1=1", "in2=2", "in3=2"}, 1, good},
		{"lt", []string{"in1=1", "in2=2", "in3=2"}, 0, good},
		{"sel", []string{"g=true", "in0=1", "in1=2"}, 2, good},
		{"sel", []string{"g=false", "in0=1", "in1=2"}, 1, good},
		{"mux", []string{"k=2", "in0=10", "in1=11", "in2=12"}, 12, good},
		{"mux", []string{"k=0", "in0=10", "in1=11"}, 10, good},
		{"mux", []string{"k=5", "in0=10", "in1=11", "in2=12"}, 12, bad},
		{"mux", []string{"k=-1", "in0=10", "in1=11"}, 10, bad},
		{"move", []string{"in=4.25"}, 4.25, good},
		{"trunc", []string{"in=-2.7"}, -2, good},
		{"real_to_int", []string{"in=2.5"}, 3, good},
		{"real_to_int", []string{"in=-2.5"}, -3, good},
		{"real_to_int", []string{"in=1.4"}, 1, good},
		{"real_to_int", []string{"in=1e10"}, expr.IntMax, bad},
		{"int_to_real", []string{"in=3"}, 3, good},
		{"bool_to_int", []string{"in=true"}, 1, good},
		{"bool_to_real", []string{"in=false"}, 0, good},
		{"int_to_bool", []string{"in=5"}, 1, good},
		{"real_to_bool", []string{"in=0.0"}, 0, good},
		{"limit", []string{"in=150"}, 150, good}, // no min, max: unbounded
		{"limit", []string{"in=150", "mn=0", "mx=100"}, 100, good},
		{"limit", []string{"in=-3", "mn=0"}, 0, good},
		{"limit", []string{"in=50", "mn=60", "mx=40"}, 60, bad},
	} {
		s := one(t, c.typ, c.ins...)
		if !near(s.Value, c.want, 1e-12) || (s.Quality == tag.Good) != c.ok {
			t.Errorf("%s(%s) = %v %v; want %v, good %v", c.typ, strings.Join(c.ins, ", "), s.Value, s.Quality, c.want, c.ok)
		}
		if !c.ok && s.Reason != tag.OutOfRange {
			t.Errorf("%s(%s): reason %v, want out of range", c.typ, strings.Join(c.ins, ", "), s.Reason)
		}
	}
}

// latch drives a two-input block through a sequence of (a, b) and checks
// its output after each cycle.
func sequence(t *testing.T, typ string, ports [2]string, out string, steps [][3]bool) {
	t.Helper()
	r := newRig(t, config([]string{"a:bool", "b:bool", "q:bool"},
		blk(1, "x", typ, "in:"+ports[0]+"=a", "in:"+ports[1]+"=b", "out:"+out+"=q")), 10*time.Millisecond)
	for i, s := range steps {
		r.setBool("a", s[0])
		r.setBool("b", s[1])
		r.step()
		if r.on("q") != s[2] {
			t.Fatalf("%s step %d (%v, %v): q %v, want %v", typ, i, s[0], s[1], r.on("q"), s[2])
		}
	}
}

func TestIECBistablesAndEdges(t *testing.T) {
	// sr: set dominant.
	sequence(t, "sr", [2]string{"s1", "r"}, "q1", [][3]bool{{false, false, false}, {true, false, true}, {false, false, true}, {true, true, true}, {false, true, false}})
	// rs: reset dominant.
	sequence(t, "rs", [2]string{"s", "r1"}, "q1", [][3]bool{{true, false, true}, {false, false, true}, {true, true, false}, {true, false, true}})
	// r_trig: one cycle per rising edge; clk on in the first cycle is an edge.
	r := newRig(t, config([]string{"c:bool", "q:bool", "f:bool"},
		blk(1, "rt", "r_trig", "in:clk=c", "out:q=q"), blk(3, "ft", "f_trig", "in:clk=c", "out:q=f")), 10*time.Millisecond)
	for i, c := range []struct{ clk, rising, falling bool }{
		{false, false, true}, // IEC F_TRIG: M starts FALSE, so a clk off at start is an edge
		{false, false, false}, {true, true, false}, {true, false, false}, {false, false, true}, {false, false, false}, {true, true, false},
	} {
		r.setBool("c", c.clk)
		r.step()
		if r.on("q") != c.rising || r.on("f") != c.falling {
			t.Fatalf("step %d clk %v: r_trig %v f_trig %v, want %v %v", i, c.clk, r.on("q"), r.on("f"), c.rising, c.falling)
		}
	}
}

func TestIECCounters(t *testing.T) {
	r := newRig(t, config([]string{"u:bool", "d:bool", "rst:bool", "ld:bool", "cv", "qu:bool", "qd:bool", "ucv", "uq:bool", "dcv", "dq:bool"},
		blk(1, "c", "ctud", "in:cu=u", "in:cd=d", "in:r=rst", "in:ld=ld", "p:pv=2", "out:cv=cv", "out:qu=qu", "out:qd=qd"),
		blk(10, "up", "ctu", "in:cu=u", "in:r=rst", "p:pv=2", "out:cv=ucv", "out:q=uq"),
		blk(20, "dn", "ctd", "in:cd=d", "in:ld=ld", "p:pv=2", "out:cv=dcv", "out:q=dq")), 10*time.Millisecond)
	type in struct{ u, d, rst, ld bool }
	for i, c := range []struct {
		in
		cv, ucv, dcv float64
	}{
		{in{u: true}, 1, 1, 0},           // cu on at start: an edge
		{in{u: true}, 1, 1, 0},           // held: no edge
		{in{}, 1, 1, 0},                  //
		{in{u: true}, 2, 2, 0},           // qu: cv >= pv
		{in{u: true, d: true}, 1, 2, -1}, // held up, new down edge: down
		{in{}, 1, 2, -1},
		{in{u: true, d: true}, 1, 3, -2},   // both edges: ctud does not count
		{in{ld: true}, 2, 3, 2},            // ld loads pv
		{in{rst: true, ld: true}, 0, 0, 2}, // r before ld
	} {
		r.setBool("u", c.u)
		r.setBool("d", c.d)
		r.setBool("rst", c.rst)
		r.setBool("ld", c.ld)
		r.step()
		if r.get("cv") != c.cv || r.get("ucv") != c.ucv || r.get("dcv") != c.dcv {
			t.Fatalf("step %d %+v: ctud %v ctu %v ctd %v, want %v %v %v", i, c.in, r.get("cv"), r.get("ucv"), r.get("dcv"), c.cv, c.ucv, c.dcv)
		}
		if r.on("qu") != (c.cv >= 2) || r.on("qd") != (c.cv <= 0) || r.on("uq") != (c.ucv >= 2) || r.on("dq") != (c.dcv <= 0) {
			t.Fatalf("step %d: qu %v qd %v uq %v dq %v", i, r.on("qu"), r.on("qd"), r.on("uq"), r.on("dq"))
		}
	}
}

// A counter saturates at the int limit instead of wrapping.
func TestCTUSaturates(t *testing.T) {
	r := newRig(t, config([]string{"u:bool", "cv"}, blk(1, "c", "ctu", "in:cu=u", "p:pv=1", "out:cv=cv")), time.Millisecond)
	st := r.tp.SaveState(nil)
	st[1] = math.MaxInt32 // cv
	if err := r.tp.LoadState(st); err != nil {
		t.Fatal(err)
	}
	r.setBool("u", true)
	r.step()
	if r.get("cv") != math.MaxInt32 {
		t.Fatalf("cv = %v", r.get("cv"))
	}
}

// exprBlock is an expr block b at line 1 writing tag o.
func exprBlock(src string, spec ...string) configs.Block {
	b := blk(1, "e", "expr", append(spec, "out:out=o")...)
	b.Expr = configs.Ref{Pos: pos(2, 11), Raw: src}
	return b
}

// An expression's output has the worst quality of the names it reads; a
// failed operation makes it bad.
func TestExprQuality(t *testing.T) {
	r := newRig(t, config([]string{"a", "b", "o"}, exprBlock("a / b + 1")), 10*time.Millisecond)
	r.set("a", 6)
	r.set("b", 3)
	r.step()
	if s := r.sample("o"); s.Value != 3 || s.Quality != tag.Good {
		t.Fatalf("good: %+v", s)
	}
	r.setQuality("b", tag.Uncertain, tag.Timeout)
	r.step()
	if s := r.sample("o"); s.Quality != tag.Uncertain || s.Reason != tag.Timeout {
		t.Fatalf("uncertain input: %+v", s)
	}
	r.setQuality("a", tag.Bad, tag.CommFailure)
	r.step()
	if s := r.sample("o"); s.Quality != tag.Bad || s.Reason != tag.CommFailure {
		t.Fatalf("bad input: %+v", s)
	}
	r.set("a", 6)
	r.set("b", 0)
	r.step()
	if s := r.sample("o"); s.Value != 1 || s.Quality != tag.Bad || s.Reason != tag.OutOfRange {
		t.Fatalf("division by zero: %+v", s)
	}
}

// An expr block reads tags, block ports and its inputs; an input written
// as an expression runs before the block that reads it.
func TestExprWiring(t *testing.T) {
	flow := blk(5, "fic", "scale", "in:in=f", "p:gain=2")
	lim := blk(10, "lim", "limit", "in:in=fic.out * ratio + e.out", "p:max=100", "out:out=sp")
	cfg := config([]string{"f", "ratio", "o", "sp", "run:bool", "alarm:bool"},
		exprBlock(`if(run, in1 * 10, -1)`, "in:in1=f"), lim, flow,
		blk(15, "a", "not", "in:in=sp > 50 && run", "out:out=alarm"))
	r := newRig(t, cfg, 10*time.Millisecond)
	r.set("f", 3)
	r.set("ratio", 1.5)
	r.setBool("run", true)
	r.step()
	// e.out = 30; fic.out = 6; sp = 6*1.5 + 30 = 39.
	if r.get("o") != 30 || r.get("sp") != 39 || !r.on("alarm") {
		t.Fatalf("o %v sp %v alarm %v", r.get("o"), r.get("sp"), r.on("alarm"))
	}
	r.set("ratio", 100)
	r.step()
	if r.get("sp") != 100 || r.on("alarm") {
		t.Fatalf("limited sp %v alarm %v", r.get("sp"), r.on("alarm"))
	}
	if n := testing.AllocsPerRun(100, r.step); n != 0 {
		t.Fatalf("%v allocations per cycle", n)
	}
}

// A delay of an expression is the expression's value of the previous
// cycle, computed after the blocks it reads.
func TestDelayOfExpression(t *testing.T) {
	r := newRig(t, config([]string{"a", "o", "d"},
		blk(1, "d", "delay", "in:in=s.out * 10", "out:out=d"),
		blk(5, "s", "scale", "in:in=a", "p:gain=2", "out:out=o")), 10*time.Millisecond)
	for k := 1; k <= 3; k++ {
		r.set("a", float64(k))
		r.step()
		if want := 20 * float64(k-1); r.get("d") != want {
			t.Fatalf("cycle %d: delay %v, want %v", k, r.get("d"), want)
		}
	}
}

// exampleBlock is a block of type bt named b+type at line, its inputs
// reading x (numbers, the numbered ones an expression of x) and b
// (bools), its parameters at their examples.
func exampleBlock(bt configs.BlockType, line int) configs.Block {
	spec := []string{}
	for _, p := range bt.Inputs {
		v := "x"
		if p.Kind == configs.PortBool {
			v = "b"
		}
		spec = append(spec, "in:"+p.Name+"="+v)
	}
	for k := 1; bt.Variadic && k <= max(bt.MinInputs, 2); k++ {
		v := "x * 2"
		if bt.VariadicKind == configs.PortBool {
			v = "b"
		}
		spec = append(spec, "in:in"+string(rune('0'+k))+"="+v)
	}
	for _, p := range bt.Params {
		spec = append(spec, "p:"+p.Name+"="+p.Example)
	}
	return blk(line, "b"+bt.Name, bt.Name, spec...)
}

// noAllocs runs a program over changing inputs and wants no allocation
// per cycle.
func noAllocs(t *testing.T, tags []string, bs ...configs.Block) {
	t.Helper()
	r := newRig(t, config(tags, bs...), 10*time.Millisecond)
	k := 0.0
	if n := testing.AllocsPerRun(500, func() {
		r.set("x", math.Mod(k, 5)-1)
		r.setBool("b", int(k)%3 == 0)
		k++
		r.step()
	}); n != 0 {
		t.Fatalf("%v allocations per cycle", n)
	}
}

// Every block type, alone and all together with expressions: no
// allocation per cycle.
func TestIECBlocksDoNotAllocate(t *testing.T) {
	var bs []configs.Block
	for i, bt := range blocks.Catalogue() {
		if bt.Name == "sequence" {
			continue // it needs steps: TestSequenceRuns counts its allocations
		}
		if bt.Name == "expr" {
			t.Run(bt.Name, func(t *testing.T) {
				noAllocs(t, []string{"x", "b:bool", "o"}, exprBlock("if(b, sqrt(x) / (x - 2), ln(x)) + in1", "in:in1=x * 3"))
			})
			continue
		}
		b := exampleBlock(bt, 100*(i+1))
		bs = append(bs, b)
		t.Run(bt.Name, func(t *testing.T) { noAllocs(t, []string{"x", "b:bool"}, b) })
	}
	bs = append(bs, exprBlock("if(b, sqrt(x) / (x - 2), ln(x)) + bsqrt.out"))
	noAllocs(t, []string{"x", "b:bool", "o"}, bs...)
}

// writeConfig writes a config file with the body's blocks in task main.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plant.yaml")
	text := `metadata: {name: plant}
tags:
  - {name: flow, type: float64, unit: m3/h}
  - {name: level, type: float64, unit: m}
  - {name: ratio, type: float64}
  - {name: out, type: float64}
  - {name: out2, type: float64}
  - {name: run, type: bool}
tasks:
  - name: main
    period: 10ms
    blocks:
` + body
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Expression errors are reported at the exact line and column inside the
// YAML string: plain, double-quoted (with escapes) and single-quoted.
func TestExprErrorPositions(t *testing.T) {
	for _, c := range []struct {
		body string
		want string // line:col: message part
	}{
		{"      - {name: e, type: expr, outputs: {out: out}, expr: flow * nosuch}\n", "13:65: expr of expr block \"e\": unknown name \"nosuch\""},
		{"      - {name: e, type: expr, outputs: {out: out}, expr: \"flow + level\"}\n", "13:64: expr of expr block \"e\": +: flow is in m3/h but level is in m"},
		{"      - {name: e, type: expr, outputs: {out: out}, expr: \"\\\"flow\\\" + nosuch\"}\n", "13:70: expr of expr block \"e\": unknown name"},
		{"      - {name: e, type: expr, outputs: {out: out}, expr: 'flow + ''x'''}\n", "13:66: expr of expr block \"e\": 'x': characters are not values"},
		{"      - name: e\n        type: expr\n        outputs: {out: out}\n        expr: \"  ratio *\"\n", "16:25: expr of expr block \"e\": syntax error"},
		{"      - name: l\n        type: limit\n        inputs: {in: \"ratio * run\"}\n        outputs: {out: out}\n", "15:29: input \"in\" of limit block \"l\": * takes numbers; run is a bool"},
		{"      - name: l\n        type: not\n        inputs:\n          in: ratio * 2\n        outputs: {out: run}\n", "16:15: input \"in\" of not block \"l\" is a bool but the expression"},
		{"      - {name: e, type: expr, outputs: {out: out}}\n", "13:9: expr block \"e\" needs its expression"},
		// Multi-line scalars: a block scalar, a folded plain scalar, a
		// double-quoted one broken over lines, and a character of two bytes.
		{"      - name: e\n        type: expr\n        outputs: {out: out}\n        expr: |\n          flow *\n            nosuch\n", "18:13: expr of expr block \"e\": unknown name \"nosuch\""},
		{"      - name: e\n        type: expr\n        outputs: {out: out}\n        expr: flow +\n          ratio + nosuch\n", "17:19: expr of expr block \"e\": unknown name"},
		{"      - name: e\n        type: expr\n        outputs: {out: out}\n        expr: \"flow +\n          nosuch\"\n", "17:11: expr of expr block \"e\": unknown name"},
		{"      - {name: e, type: expr, outputs: {out: out}, expr: \"flow + \\\"é\\\" + nosuch\"}\n", "13:66: expr of expr block \"e\": unknown name \"é\""},
		{"      - {name: e, type: scale, inputs: {in: flow}, outputs: {out: out}, expr: flow}\n", "13:79: scale block \"e\" takes no expr:"},
		{"      - {name: e, type: expr, outputs: {out: level}, expr: flow + 1}\n", "13:9: expr block \"e\": the expression is in \"m3/h\" but tag level is in \"m\""},
	} {
		path := writeConfig(t, c.body)
		_, err := configs.Load(path, blocks.Validate)
		if err == nil || !strings.Contains(err.Error(), path+":"+c.want) {
			t.Errorf("%s\nerror:\n%v\nwant at %s", c.body, err, c.want)
		}
	}
}

// A valid config with expressions loads and compiles; a changed
// parameter of a new block applies live, a changed expression is
// structural.
func TestExprLiveChanges(t *testing.T) {
	base := `      - {name: e, type: expr, outputs: {out: out}, expr: "flow * ratio + 1"}
      - {name: c, type: ctu, inputs: {cu: run}, params: {pv: %s}, outputs: {cv: out2}}
`
	load := func(body string) *configs.Config {
		cfg, err := configs.Load(writeConfig(t, body), blocks.Validate)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	old := load(strings.Replace(base, "%s", "5", 1))
	changes, err := blocks.ParamChanges(old, load(strings.Replace(base, "%s", "7", 1)))
	if err != nil || len(changes) != 1 || changes[0].Name() != "c.pv" || changes[0].Value != 7 {
		t.Fatalf("ParamChanges = %+v, %v", changes, err)
	}
	_, err = blocks.ParamChanges(old, load(strings.Replace(strings.Replace(base, "%s", "5", 1), "+ 1", "+ 2", 1)))
	if !errors.Is(err, blocks.ErrStructural) {
		t.Fatalf("a changed expression: %v, want ErrStructural", err)
	}
}

// A standard function with an input that reads nothing is reported once,
// at the input.
func TestFormulaInputErrorOnce(t *testing.T) {
	cfg := config([]string{"x", "o"}, blk(1, "a", "add", "in:in1=x", "in:in2=nosuch", "out:out=o"))
	err := blocks.Validate(cfg)
	if err == nil {
		tab, _ := cfg.TagTable()
		_, err = blocks.Compile(cfg, tab)
	}
	if err == nil || strings.Count(err.Error(), "\n") > 0 || !strings.Contains(err.Error(), "plant.yaml:3:7") {
		t.Fatalf("errors:\n%v\nwant one, at the input", err)
	}
}

// Ints are IEC's DINT: int16, uint16 and int32 tags divide as ints; a
// uint32 or int64 tag, which may hold more, is a float.
func TestIntTags(t *testing.T) {
	r := newRig(t, config([]string{"a:int32", "big:uint32", "o", "p"},
		blk(1, "d", "div", "in:in1=a", "in:in2=2", "out:out=o"),
		blk(5, "e", "add", "in:in1=big", "in:in2=1", "out:out=p")), 10*time.Millisecond)
	r.set("a", 7)
	r.set("big", 4e9)
	r.step()
	if s := r.sample("o"); s.Value != 3 || s.Quality != tag.Good {
		t.Fatalf("int32 7 / 2 = %+v", s)
	}
	if s := r.sample("p"); s.Value != 4e9+1 || s.Quality != tag.Good {
		t.Fatalf("uint32 4e9 + 1 = %+v", s)
	}
}
