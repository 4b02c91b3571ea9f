package expr_test

import (
	"math"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/rtkernel/blocks/expr"
)

// env is a set of names: a float flow in m3/h, a float ratio, an int
// count, a bool run, a float level in m, block port fic.out.
var env = map[string]expr.Var{
	"flow":    {Slot: 0, Type: expr.Float, Unit: "m3/h"},
	"ratio":   {Slot: 1, Type: expr.Float},
	"count":   {Slot: 2, Type: expr.Int},
	"run":     {Slot: 3, Type: expr.Bool},
	"level":   {Slot: 4, Type: expr.Float, Unit: "m"},
	"fic.out": {Slot: 5, Type: expr.Float},
	"t-1":     {Slot: 6, Type: expr.Float},
}

var regs = []float64{10, 1.5, 7, 1, 2, 40, -3}

func resolve(name string) (expr.Var, string) {
	v, ok := env[name]
	if !ok {
		return v, "unknown name " + name
	}
	return v, ""
}

func compile(t testing.TB, src string) *expr.Program {
	t.Helper()
	p, err := expr.Compile(src, resolve)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return p
}

// IEC semantics and the defined results of failed operations.
func TestEval(t *testing.T) {
	for _, c := range []struct {
		src  string
		want float64
		ok   bool
		typ  expr.Type
	}{
		{"flow * ratio + 1", 16, true, expr.Float},
		{"fic.out * ratio + flow", 70, true, expr.Float},
		{`"t-1" + 1`, -2, true, expr.Float},
		{"7 / 2", 3, true, expr.Int},
		{"-7 / 2", -3, true, expr.Int},
		{"7.0 / 2", 3.5, true, expr.Float},
		{"count / 2", 3, true, expr.Int},
		{"-7 % 3", -1, true, expr.Int},
		{"7.5 % 2", 1.5, true, expr.Float},
		{"1 / 0", 0, false, expr.Int},
		{"flow / 0", 0, false, expr.Float},
		{"count % 0", 0, false, expr.Int},
		{"sqrt(-1)", 0, false, expr.Float},
		{"sqrt(16)", 4, true, expr.Float},
		{"ln(0)", 0, false, expr.Float},
		{"log(1000)", 3, true, expr.Float},
		{"exp(0)", 1, true, expr.Float},
		{"exp(1000)", math.MaxFloat64, false, expr.Float},
		{"asin(2)", 0, false, expr.Float},
		{"acos(1)", 0, true, expr.Float},
		{"expt(2, 10)", 1024, true, expr.Float},
		{"expt(0, -1)", 0, false, expr.Float},
		{"expt(-8, 0.5)", 0, false, expr.Float},
		{"2147483647 + 1", expr.IntMax, false, expr.Int},
		{"-2147483647 - 2", expr.IntMin, false, expr.Int},
		{"1e308 * 10", math.MaxFloat64, false, expr.Float},
		{"abs(-3)", 3, true, expr.Int},
		{"min(flow, 3, 20)", 3, true, expr.Float},
		{"max(1, 2)", 2, true, expr.Int},
		{"limit(0, flow, 5)", 5, true, expr.Float},
		{"limit(5, flow, 0)", 5, false, expr.Float},
		{"sel(run, 1, 2)", 2, true, expr.Int},
		{"if(flow > 5, sqrt(-1), 3)", 0, false, expr.Float},
		{"if(flow < 5, sqrt(-1), 3)", 3, true, expr.Float},
		{"if(run, 1, 2.5)", 1, true, expr.Float},
		{"run && flow > 5", 1, true, expr.Bool},
		{"!run || sqrt(-1) > 0", 0, false, expr.Bool},
		{"run || sqrt(-1) > 0", 1, true, expr.Bool},
		{"!run && sqrt(-1) > 0", 0, true, expr.Bool},
		{"run == true", 1, true, expr.Bool},
		{"trunc(-2.7)", -2, true, expr.Int},
		{"real_to_int(2.5)", 3, true, expr.Int},
		{"real_to_int(-2.5)", -3, true, expr.Int},
		{"real_to_int(1e10)", expr.IntMax, false, expr.Int},
		{"int_to_real(count) / 2", 3.5, true, expr.Float},
		{"bool_to_int(run) + 1", 2, true, expr.Int},
		{"int_to_bool(count)", 1, true, expr.Bool},
		{"real_to_bool(0.0)", 0, true, expr.Bool},
		{"level * 100 - -1", 201, true, expr.Float},
		// Fused instructions, and a jump landing on an operation.
		{"ratio + if(run, 1.0, flow)", 2.5, true, expr.Float},
		{"ratio - if(!run, 1.0, flow)", -8.5, true, expr.Float},
		{"ratio * bool_to_real(run || flow > ratio)", 1.5, true, expr.Float},
		{"flow / 0.0", 0, false, expr.Float},
		{"flow / ratio - 2", 10.0/1.5 - 2, true, expr.Float},
		{"flow < 2.0 || ratio > level", 0, true, expr.Bool},
		{"(flow > 2.0) == (ratio < level)", 1, true, expr.Bool},
	} {
		p := compile(t, c.src)
		got, ok := p.Eval(regs)
		if got != c.want || ok != c.ok || p.Type() != c.typ {
			t.Errorf("%s = %v, %v (%s); want %v, %v (%s)", c.src, got, ok, p.Type(), c.want, c.ok, c.typ)
		}
	}
}

func TestNaNInputIsBad(t *testing.T) {
	p := compile(t, "flow + 1")
	if v, ok := p.Eval([]float64{math.NaN()}); v != 0 || ok {
		t.Fatalf("NaN + 1 = %v, %v; want 0, false", v, ok)
	}
}

func TestUnits(t *testing.T) {
	if u := compile(t, "flow + 1").Unit(); u != "m3/h" {
		t.Fatalf("unit %q", u)
	}
	if u := compile(t, "flow * ratio").Unit(); u != "" {
		t.Fatalf("unit of a product %q", u)
	}
	if u := compile(t, "if(run, flow, 0)").Unit(); u != "m3/h" {
		t.Fatalf("unit of if %q", u)
	}
}

// Errors are at the byte offset of what is wrong, with the fix.
func TestErrors(t *testing.T) {
	for _, c := range []struct {
		src  string
		off  int
		want string
	}{
		{"flow * ", 7, "syntax error"},
		{"flow + nosuch", 7, "unknown name nosuch"},
		{"flow + level", 5, "flow is in m3/h but level is in m"},
		{"level < flow", 6, "units must match"},
		{"run + 1", 4, "bool_to_int"},
		{"!flow", 0, "! takes a bool"},
		{"flow && run", 5, "&& takes bools"},
		{"flow & 1", 5, "for bools write &&"},
		{"sqrt(1, 2)", 0, "sqrt takes 1 argument, not 2"},
		{"foo(1)", 0, `unknown function "foo"`},
		{"if(flow, 1, 2)", 3, "if's condition is a bool"},
		{"if(run, run, 2)", 13, "chooses between a bool and a number"},
		{"run < true", 4, "bools are only == or !="},
		{"a.b.c", 0, "is not a name"},
		{"flow[1]", 0, "not allowed"},
		{"99999999999", 0, "beyond the int range"},
		{"'x'", 0, "not values"},
		{"", 0, "empty"},
		{"sel(flow, 1, 2)", 4, "sel's first argument is a bool"},
		{"min(1)", 0, "2 or more"},
		{strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300), 0, ""},
	} {
		_, err := expr.Compile(c.src, resolve)
		e, ok := err.(*expr.Error)
		if c.want == "" {
			if err != nil && !ok {
				t.Errorf("%.20s: %v is not an *expr.Error", c.src, err)
			}
			continue
		}
		if !ok || e.Off != c.off || !strings.Contains(e.Msg, c.want) {
			t.Errorf("%s: error %v; want at offset %d: %q", c.src, err, c.off, c.want)
		}
	}
}

// Eval allocates nothing.
func TestEvalAllocatesNothing(t *testing.T) {
	p := compile(t, "if(run && flow > 2, limit(0, flow * ratio + sqrt(level), 100), -1) + count % 3")
	if n := testing.AllocsPerRun(100, func() { p.Eval(regs) }); n != 0 {
		t.Fatalf("%v allocations per Eval", n)
	}
}

// Bind moves the names to other registers.
func TestBind(t *testing.T) {
	p := compile(t, "flow + ratio")
	p.Bind(func(slot int) int32 { return int32(slot + 10) })
	r := make([]float64, 12)
	r[10], r[11] = 1, 2
	if v, ok := p.Eval(r); v != 3 || !ok {
		t.Fatalf("bound = %v %v", v, ok)
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"flow * ratio + 1", "if(run, sqrt(level), -1)", "limit(0, count % 3, 5)", `"t-1" / 0`, "run && !run || fic.out >= 2", "expt(2, 3) + real_to_int(2.5)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := expr.Compile(src, resolve)
		if err != nil {
			if e, ok := err.(*expr.Error); !ok || e.Off < 0 || e.Off > len(src) {
				t.Fatalf("%q: error %v outside the text", src, err)
			}
			return
		}
		// Fused instructions compute what the plain ones do.
		q, err := expr.CompileUnfused(src, resolve)
		if err != nil {
			t.Fatalf("%q compiles fused but not plain: %v", src, err)
		}
		v, ok := p.Eval(regs)
		w, okw := q.Eval(regs)
		if math.Float64bits(v) != math.Float64bits(w) || ok != okw {
			t.Fatalf("%q: fused %v %v, plain %v %v", src, v, ok, w, okw)
		}
	})
}
