package blocks_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// header is a minimal valid config; cases append to it from line 2.
const header = "metadata: {name: p}\n"

// loadProblems loads src with the blocks' rules, as mkrt validate does,
// and returns every problem (nil when it is valid).
func loadProblems(t *testing.T, src string, checks ...configs.Check) configs.Errors {
	t.Helper()
	_, err := configs.LoadBytes("testdata/x.yaml", []byte(src), checks...)
	var errs configs.Errors
	if err != nil && !errors.As(err, &errs) {
		t.Fatalf("error is not configs.Errors: %T %v", err, err)
	}
	return errs
}

// wantProblems checks that errs are exactly the wanted problems, in order,
// each given as "line:col: a piece of its message".
func wantProblems(t *testing.T, errs configs.Errors, want ...string) {
	t.Helper()
	got := make([]string, len(errs))
	for i, e := range errs {
		got[i] = fmt.Sprintf("%d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		at, msg, _ := strings.Cut(want[i], ": ")
		ok = strings.HasPrefix(got[i], at+": ") && strings.Contains(got[i], msg)
	}
	if !ok {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The block rules that were configs' before the catalogue owned them, at
// the same places and in the same words.
func TestValidateRules(t *testing.T) {
	tasks := "tasks:\n  - {name: t, period: 1ms, blocks: [%s]}\n"
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"unknown block type", header + fmt.Sprintf(tasks, "{name: a, type: pdi}"),
			[]string{`3:53: unknown block type "pdi" (did you mean "pid"?)`}},
		{"units differ through a lag", header + "tags: [{name: x, unit: m}, {name: y, unit: \"%\"}]\n" +
			fmt.Sprintf(tasks, "{name: a, type: lag, inputs: {in: x}, outputs: {out: y}, params: {tau: 1s}}"),
			[]string{`4:37: tag x is in "m" but tag y is in "%"`}},
		{"unit aliases match", header + "tags: [{name: x, unit: °C}, {name: y, unit: degc}]\n" +
			fmt.Sprintf(tasks, "{name: a, type: lag, inputs: {in: x}, outputs: {out: y}, params: {tau: 1s}}"), nil},
		// configs reported this one at the block as `tag x is in "m" but
		// tag s is in "bar"`; the catalogue's rule names the input at fault.
		{"pid pv and sp units", header + "tags: [{name: x, unit: m}, {name: s, unit: bar}, {name: o, unit: \"%\"}]\n" +
			fmt.Sprintf(tasks, "{name: a, type: pid, inputs: {pv: x, sp: s}, outputs: {out: o}}"),
			[]string{`4:78: pv is in m but sp is in bar`}},
		{"select in1 and in2 units", header + "tags: [{name: x, unit: m}, {name: s, unit: bar}, {name: b, type: bool}]\n" +
			fmt.Sprintf(tasks, "{name: a, type: select, inputs: {sel: b, in1: x, in2: s}}"),
			[]string{`4:91: in1 is in m but in2 is in bar`}},
		{"param at its value", header + fmt.Sprintf(tasks, "{name: a, type: lag, inputs: {in: 1}, params: {tau: 10}}"),
			[]string{`3:89: duration "10" has no unit`}},
		{"type at its value", header + fmt.Sprintf(tasks, "{name: a, type: lga}"),
			[]string{`3:53: unknown block type "lga" (did you mean "lag"?)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblems(t, loadProblems(t, tc.src, blocks.Validate), tc.want...)
		})
	}
}

// configs and the blocks report every problem together, in file order,
// each once: a block's wiring is configs' to report, its type, ports,
// parameters and units the catalogue's.
func TestEveryProblemOnce(t *testing.T) {
	src := header + `tags:
  - {name: level, unit: m}
  - {name: valve, unit: "%"}
  - {name: speed, unit: "%"}
tasks:
  - name: t
    period: 10
    blocks:
      - {name: a, type: pdi, inputs: {pv: level}}
      - {name: b, type: lag, inputs: {in: nope}, outputs: {out: valve}}
      - {name: c, type: pid, inputs: {pv: level, sp: valve}, params: {kp: fast}}
      - {name: d, type: not, inputs: {in: level}, outputs: {out: valve}}
      - {name: e, type: ramp, inputs: {in: level}, outputs: {out: speed}, params: {rate: 1}}
`
	wantProblems(t, loadProblems(t, src, blocks.Validate),
		`8:13: period: duration "10" has no unit`,
		`10:25: unknown block type "pdi" (did you mean "pid"?)`,
		`11:9: lag block "b" needs parameter "tau"`,
		`11:43: input in reads unknown tag "nope"`,
		`12:54: pv is in m but sp is in %`,
		`12:75: parameter "kp" of pid block "c" must be a number, not "fast"`,
		`13:43: input "in" of not block "d" is a bool but tag "level" is a float64`,
		`13:66: output out writes tag valve, which b.out already writes`,
		`14:9: ramp block "e": tag level is in "m" but tag speed is in "%"`,
	)
}

// What configs reports about a block's wiring, the catalogue does not
// report again.
func TestValidateLeavesWiringToConfigs(t *testing.T) {
	for _, src := range []string{
		header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: not, inputs: {in: nope}}]}\n",
		header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: not, inputs: {in: z.out}}]}\n",
		header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: not, inputs: {in: true}}]}\n  - {name: u, period: 1ms, blocks: [{name: b, type: not, inputs: {in: a.out}}]}\n",
		header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: not, inputs: {in: true}, outputs: {out: nope}}]}\n",
		header + "tags: [{name: y, type: bool}]\ntasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: not, inputs: {in: true}, outputs: {out: y}}, {name: b, type: not, inputs: {in: true}, outputs: {out: y}}]}\n",
		header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a.b, type: not, inputs: {in: true}}, {name: a, type: not, inputs: {in: \"\"}}]}\n",
		header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: not, inputs: {in: true}}, {name: a, type: not, inputs: {in: true}}]}\n",
		header + "tags: [{name: y}, {name: y}]\ntasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: scale, inputs: {in: y}}, {name: b}]}\n",
	} {
		alone, both := loadProblems(t, src), loadProblems(t, src, blocks.Validate)
		if len(alone) == 0 || alone.Error() != both.Error() {
			t.Errorf("configs alone:\n%v\nwith the blocks:\n%v", alone, both)
		}
	}
}

// A config that loads with the blocks' rules compiles: Compile finds
// nothing the two did not.
func TestValidatedConfigsCompile(t *testing.T) {
	files, _ := filepath.Glob("../../configs/examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example configs")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		loadsAndCompiles(t, data)
	}
}

// FuzzValidate: the blocks' rules never panic on what the loader decodes,
// every problem is at a place in the file, and what passes compiles.
func FuzzValidate(f *testing.F) {
	files, _ := filepath.Glob("../../configs/examples/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(header + "tags: [{name: a, unit: m}, {name: b, type: bool}, {name: a}]\ntasks:\n  - {name: t, period: 1ms, blocks: [{name: x, type: pid, inputs: {pv: a, sp: y.out, track: b}, outputs: {out: a}}, {name: y, type: delay, inputs: {in: x.out}}, {name: z, type: alarm, params: {hi: 1, delay: 1ms}}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		loadsAndCompiles(t, data)
	})
}

func loadsAndCompiles(t *testing.T, data []byte) {
	t.Helper()
	cfg, err := configs.LoadBytes("fuzz.yaml", data, blocks.Validate)
	var errs configs.Errors
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			if e.Pos.File != "fuzz.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 {
				t.Fatalf("problem without a position: %q at %+v", e.Msg, e.Pos)
			}
		}
		return
	case err != nil:
		t.Fatalf("error is not configs.Errors: %T %v", err, err)
	}
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocks.Compile(cfg, tab); err != nil {
		t.Fatalf("valid config does not compile:\n%v", err)
	}
}

func TestValidateNeedsAConfig(t *testing.T) {
	if err := blocks.Validate(nil); err == nil {
		t.Fatal("Validate(nil) succeeded")
	}
	if err := blocks.Validate(&configs.Config{}); err != nil {
		t.Fatalf("empty config: %v", err)
	}
	if !slices.Equal(typeNamesOf(blocks.Catalogue()), []string{"pid", "lag", "ramp", "limit", "scale", "deadband", "hysteresis", "alarm",
		"ton", "tof", "tp", "counter", "and", "or", "xor", "not", "compare", "select", "min", "max", "average", "delay",
		"expr", "add", "sub", "mul", "div", "mod", "expt", "abs", "sqrt", "ln", "log", "exp", "sin", "cos", "tan", "asin", "acos", "atan",
		"gt", "ge", "eq", "ne", "le", "lt", "sel", "mux", "move", "sr", "rs", "r_trig", "f_trig", "ctu", "ctd", "ctud",
		"trunc", "real_to_int", "int_to_real", "bool_to_int", "bool_to_real", "int_to_bool", "real_to_bool",
		"integrator", "lead_lag", "moving_average", "rate_of_change", "characterizer", "split_range", "scheduler", "sequence"}) {
		t.Fatalf("catalogue: %v", typeNamesOf(blocks.Catalogue()))
	}
}
