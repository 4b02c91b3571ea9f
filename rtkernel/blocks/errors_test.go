package blocks_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// compileErrs compiles cfg and returns its errors, failing if it compiled.
func compileErrs(t *testing.T, cfg *configs.Config) configs.Errors {
	t.Helper()
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := blocks.Compile(cfg, tab)
	if err == nil {
		t.Fatalf("compiled (%d tasks), want errors", len(p.Tasks()))
	}
	var es configs.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T %v is not configs.Errors", err, err)
	}
	return es
}

// Every kind of compile error, each at the exact place it was written and
// saying what to do.
func TestCompileErrors(t *testing.T) {
	tags := []string{"x", "y", "b:bool", "s:string", "t:float64:degC", "p:float64:bar", "out", "out2", "flag:bool"}
	for _, tc := range []struct {
		name  string
		block configs.Block
		pos   configs.Pos
		msg   string // a part of the message
	}{
		{"unknown type", blk(10, "a", "pdi", "in:in=x"), pos(10, 5), `unknown block type "pdi" (did you mean "pid"?) (one of pid, lag`},
		{"unknown input port", blk(10, "a", "lag", "in:in=x", "in:inp=y", "p:tau=1s"), pos(12, 7), `has no input "inp" (inputs: in)`},
		{"unknown output port", blk(10, "a", "lag", "in:in=x", "out:y=out", "p:tau=1s"), pos(10, 5), `has no output "y" (outputs: out)`},
		{"missing required input", blk(10, "a", "pid", "in:pv=x"), pos(10, 5), `needs input "sp"`},
		{"track without man_out", blk(10, "a", "pid", "in:pv=x", "in:sp=y", "in:track=b"), pos(10, 5), `has input track but no man_out`},
		{"counter without up or down", blk(10, "a", "counter", "in:reset=b"), pos(10, 5), `needs input up or down`},
		{"too few logic inputs", blk(10, "a", "and", "in:in1=b"), pos(10, 5), `needs at least 2 inputs`},
		{"gap in variadic inputs", blk(10, "a", "or", "in:in1=b", "in:in3=b"), pos(10, 5), `no in2 (number them in1..in2 without gaps)`},
		{"number into bool input", blk(10, "a", "not", "in:in=x"), pos(11, 7), `is a bool but tag "x" is a float64`},
		{"number output into bool input", blk(10, "a", "not", "in:in=z.out"), pos(11, 7), `is a bool but z.out is a number`},
		{"non-0/1 literal into bool", blk(10, "a", "ton", "in:in=2", "p:pt=1s"), pos(11, 7), `a literal must be true, false, 0 or 1, not "2"`},
		{"number output to bool tag", blk(10, "a", "scale", "in:in=x", "out:out=flag"), pos(10, 5), `is a number but tag "flag" is a bool`},
		{"string tag in", blk(10, "a", "scale", "in:in=s"), pos(11, 7), `reads string tag "s"`},
		{"unknown tag or block", blk(10, "a", "scale", "in:in=nosuch"), pos(11, 7), `"nosuch" is not a tag, a block.port or a number`},
		{"unknown block output", blk(10, "a", "scale", "in:in=z.q"), pos(11, 7), `lag block "z" has no output "q" (outputs: out)`},
		{"unknown output tag", blk(10, "a", "scale", "in:in=x", "out:out=nosuch"), pos(10, 5), `writes unknown tag "nosuch"`},
		{"empty input", blk(10, "a", "scale", "in:in="), pos(11, 7), `input "in" of scale block "a" is empty`},
		{"unknown param", blk(10, "a", "lag", "in:in=x", "p:tau=1s", "p:tua=2s"), pos(13, 7), `has no parameter "tua" (parameters: tau)`},
		{"missing param", blk(10, "a", "lag", "in:in=x"), pos(10, 5), `needs parameter "tau"`},
		{"time without unit", blk(10, "a", "pid", "in:pv=x", "in:sp=y", "p:ti=10"), pos(13, 7), `duration "10" has no unit`},
		{"time for a gain", blk(10, "a", "pid", "in:pv=x", "in:sp=y", "p:kp=2s"), pos(13, 7), `is a number, not a time`},
		{"bool for a gain", blk(10, "a", "pid", "in:pv=x", "in:sp=y", "p:kp=true"), pos(13, 7), `must be a number, not "true"`},
		{"bad bool param", blk(10, "a", "pid", "in:pv=x", "in:sp=y", "p:direct=maybe"), pos(13, 7), `is a bool`},
		{"bad enum", blk(10, "a", "compare", "in:a=x", "in:b=y", "p:op=gte"), pos(13, 7), `must be one of gt, ge, lt, le, eq, ne, not "gte"`},
		{"negative width", blk(10, "a", "deadband", "in:in=x", "p:width=-1"), pos(12, 7), `must be 0 or more`},
		{"limits crossed", blk(10, "a", "pid", "in:pv=x", "in:sp=y", "p:out_min=50", "p:out_max=10"), pos(14, 7), `out_max must be above out_min`},
		{"hysteresis off above on", blk(10, "a", "hysteresis", "in:in=x", "p:on=1", "p:off=2"), pos(13, 7), `off must be below on`},
		{"alarm limits disordered", blk(10, "a", "alarm", "in:in=x", "p:hi=10", "p:hihi=5"), pos(13, 7), `ordered lolo <= lo < hi <= hihi`},
		{"alarm without limits", blk(10, "a", "alarm", "in:in=x"), pos(10, 5), `needs at least one of hi`},
		{"pid units", blk(10, "a", "pid", "in:pv=t", "in:sp=p"), pos(12, 7), `pv is in degC but sp is in bar`},
		{"compare units through a lag", blk(10, "a", "compare", "in:a=z.out", "in:b=p", "p:op=gt"), pos(12, 7), `a is in degC but b is in bar`},
		{"average units", blk(10, "a", "average", "in:in1=t", "in:in2=x", "in:in3=p"), pos(13, 7), `in1 is in degC but in3 is in bar`},
		{"select units", blk(10, "a", "select", "in:sel=b", "in:in1=t", "in:in2=p"), pos(13, 7), `in1 is in degC but in2 is in bar`},
		{"unit through a lag into a tag", blk(10, "a", "lag", "in:in=t", "out:out=p", "p:tau=1s"), pos(10, 5), `tag t is in "degC" but tag p is in "bar"; a lag block does not convert units`},
		{"unit through two blocks into a tag", blk(10, "a", "limit", "in:in=z.out", "out:out=p"), pos(10, 5), `z.out is in "degC" but tag p is in "bar"`},
		{"bad block name", blk(10, "a.b", "scale", "in:in=x"), pos(10, 5), `may not contain '.'`},
		{"second writer", blk(10, "a", "scale", "in:in=x", "out:out=y"), pos(10, 5), `writes tag "y", which z.out already writes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(tags, blk(1, "z", "lag", "in:in=t", "out:out=y", "p:tau=1s"), tc.block)
			es := compileErrs(t, cfg)
			if len(es) != 1 || es[0].Pos != tc.pos || !strings.Contains(es[0].Msg, tc.msg) {
				t.Fatalf("got\n%v\nwant one error at %s containing %q", es, tc.pos, tc.msg)
			}
		})
	}
}

// Every problem is reported at once, sorted by position.
func TestCompileReportsEverything(t *testing.T) {
	cfg := config([]string{"x"},
		blk(30, "c", "lag", "in:in=x"),
		blk(10, "a", "nosuch"),
		blk(20, "b", "scale", "in:in=q"),
	)
	es := compileErrs(t, cfg)
	if len(es) != 3 || es[0].Pos.Line != 10 || es[1].Pos.Line != 21 || es[2].Pos.Line != 30 {
		t.Fatalf("got\n%v\nwant three errors at lines 10, 21, 30", es)
	}
}

func TestDuplicateBlockAcrossTasks(t *testing.T) {
	cfg := config([]string{"x"}, blk(10, "a", "scale", "in:in=x"))
	cfg.Tasks = append(cfg.Tasks, configs.Task{Name: "slow", Blocks: []configs.Block{blk(40, "a", "scale", "in:in=x"), blk(50, "c", "scale", "in:in=a.out")}})
	es := compileErrs(t, cfg)
	if len(es) != 2 || es[0].Pos != pos(40, 5) || !strings.Contains(es[0].Msg, "already used at plant.yaml:10:5") ||
		es[1].Pos != pos(51, 7) || !strings.Contains(es[1].Msg, `reads block "a" of task "main" (connect tasks through a tag)`) {
		t.Fatalf("got\n%v", es)
	}
}

func TestLoopIsAnError(t *testing.T) {
	cfg := config([]string{"x", "y"},
		blk(10, "in", "scale", "in:in=x"),
		blk(20, "sum", "average", "in:in1=in.out", "in:in2=fb.out"),
		blk(30, "lim", "limit", "in:in=sum.out", "p:max=5"),
		blk(40, "fb", "scale", "in:in=lim.out", "p:gain=0.5"),
		blk(50, "self", "scale", "in:in=self.out"),
		blk(60, "after", "scale", "in:in=lim.out", "out:out=y"),
	)
	es := compileErrs(t, cfg)
	if len(es) != 2 {
		t.Fatalf("got\n%v\nwant two loops", es)
	}
	if es[0].Pos != pos(20, 5) || !strings.Contains(es[0].Msg, "blocks sum -> lim -> fb -> sum form a loop") || !strings.Contains(es[0].Msg, "delay") {
		t.Fatalf("first loop: %v", es[0])
	}
	if es[1].Pos != pos(50, 5) || !strings.Contains(es[1].Msg, "blocks self -> self form a loop") {
		t.Fatalf("second loop: %v", es[1])
	}
}

// The same loop through a delay compiles; a delay of a bool carries a bool
// (the seal-in of a motor starter).
func TestLoopThroughDelay(t *testing.T) {
	r := newRig(t, config([]string{"start:bool", "stop:bool", "run:bool"},
		blk(10, "held", "delay", "in:in=latch.out", "p:initial=false"),
		blk(20, "either", "or", "in:in1=start", "in:in2=held.out"),
		blk(30, "ok", "not", "in:in=stop"),
		blk(40, "latch", "and", "in:in1=either.out", "in:in2=ok.out", "out:out=run"),
	), 0)
	for k, c := range []struct{ start, stop, run bool }{
		{F, F, F}, {T, F, T}, {F, F, T}, {F, F, T}, {F, T, F}, {F, F, F},
	} {
		r.setBool("start", c.start)
		r.setBool("stop", c.stop)
		r.step()
		if r.on("run") != c.run {
			t.Fatalf("step %d: run=%v, want %v", k, r.on("run"), c.run)
		}
	}
}

func TestDelayOfNumberIntoBoolIsAnError(t *testing.T) {
	es := compileErrs(t, config([]string{"x"},
		blk(10, "d", "delay", "in:in=x"),
		blk(20, "n", "not", "in:in=d.out"),
	))
	if len(es) != 1 || es[0].Pos != pos(21, 7) || !strings.Contains(es[0].Msg, "is a bool but d.out is a number") {
		t.Fatalf("got\n%v", es)
	}
}

func TestCompileNeedsConfigAndTable(t *testing.T) {
	if _, err := blocks.Compile(nil, nil); err == nil {
		t.Fatal("Compile(nil, nil) succeeded")
	}
}
