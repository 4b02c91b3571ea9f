package blocks_test

import (
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// loadTank loads the tank example with each replace[i] in its text
// replaced by replace[i+1].
func loadTank(t *testing.T, replace ...string) *configs.Config {
	t.Helper()
	b, err := os.ReadFile("../../configs/examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if strings.Count(text, replace[i]) != 1 {
			t.Fatalf("%q is not once in the example", replace[i])
		}
		text = strings.Replace(text, replace[i], replace[i+1], 1)
	}
	cfg, err := configs.LoadBytes("tank-level.yaml", []byte(text), blocks.Validate)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestParamChanges(t *testing.T) {
	old := loadTank(t)
	for _, tc := range []struct {
		name    string
		replace []string
		want    []blocks.ParamChange
		err     string
	}{
		{name: "same config"},
		{name: "gain", replace: []string{"kp: 100", "kp: 120"},
			want: []blocks.ParamChange{{Block: "level_pid", Param: "kp", Old: "100", New: "120", Value: 120}}},
		{name: "duration and alarm limit", replace: []string{"ti: 40s", "ti: 1m", "hi: 2.6", "hi: 2.55"},
			want: []blocks.ParamChange{{Block: "level_alarms", Param: "hi", Old: "2.6", New: "2.55", Value: 2.55}, {Block: "level_pid", Param: "ti", Old: "40s", New: "1m", Value: 60}}},
		{name: "period", replace: []string{"period: 20ms", "period: 10ms"}, err: "structural"},
		{name: "wiring", replace: []string{"in: high_switch", "in: low_switch"}, err: "structural"},
		{name: "bridge", replace: []string{"node: tank-1", "node: tank-2"}, err: "structural"},
		{name: "parameter added", replace: []string{"td: 0s", "td: 0s\n          bias: 10"},
			want: []blocks.ParamChange{{Block: "level_pid", Param: "bias", Old: "", New: "10", Value: 10}}},
		{name: "parameter removed", replace: []string{"          td: 0s\n", ""}, err: "removed"},
		{name: "bool", replace: []string{"td: 0s", "td: 0s\n          direct: true"},
			want: []blocks.ParamChange{{Block: "level_pid", Param: "direct", Old: "", New: "true", Value: 1}}},
		// A ratio is the program's td_filter; a filter time is set once, by
		// a new program.
		{name: "filter ratio", replace: []string{"td: 0s", "td: 0s\n          td_filter: 5"},
			want: []blocks.ParamChange{{Block: "level_pid", Param: "td_filter", Old: "", New: "5", Value: 5}}},
		{name: "filter time", replace: []string{"td: 0s", "td: 0s\n          td_filter: 1s"}, err: "structural"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := blocks.ParamChanges(old, loadTank(t, tc.replace...))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParamChanges = %v, %v; want an error containing %q", got, err, tc.err)
				}
				if tc.err == "structural" && !errors.Is(err, blocks.ErrStructural) {
					t.Fatalf("%v is not ErrStructural", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ParamChanges = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("change %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParamValue(t *testing.T) {
	param := func(typ, name string) configs.BlockParam {
		bt, ok := blocks.Lookup(typ)
		for _, p := range bt.Params {
			if ok && p.Name == name {
				return p
			}
		}
		t.Fatalf("no parameter %s of %s", name, typ)
		return configs.BlockParam{}
	}
	for _, c := range []struct {
		typ, param, raw string
		want            float64
	}{
		{"pid", "kp", "1.5", 1.5}, {"ton", "pt", "250ms", 0.25}, {"pid", "ti", "2m", 120},
		{"compare", "op", "lt", 2}, {"compare", "op", "ne", 5}, {"pid", "direct", "true", 1},
		{"delay", "initial", "false", 0}, {"pid", "td_filter", "12", 12},
	} {
		if got, err := blocks.ParamValue(param(c.typ, c.param), configs.Value{Raw: c.raw, Set: true}); err != nil || got != c.want {
			t.Errorf("ParamValue(%s.%s, %q) = %v, %v; want %v", c.typ, c.param, c.raw, got, err, c.want)
		}
	}
	for _, c := range [][3]string{{"compare", "op", "gte"}, {"pid", "kp", "fast"}, {"pid", "kp", "2s"}, {"pid", "ti", "10"}, {"deadband", "width", "-1"}} {
		if _, err := blocks.ParamValue(param(c[0], c[1]), configs.Value{Raw: c[2], Set: true}); !errors.Is(err, blocks.ErrParamValue) {
			t.Errorf("ParamValue(%s.%s, %q) = %v, want ErrParamValue", c[0], c[1], c[2], err)
		}
	}
}

// Every parameter of every block type: what the apply side encodes
// (ParamValue) is what the compiler reads from the config, and SetParam
// of it leaves the block running with exactly that value; and SetParam
// takes a value exactly when the compiler takes the config.
func TestParamValueIsWhatTheProgramRuns(t *testing.T) {
	candidates := map[configs.ParamKind][]string{
		configs.ParamNumber:   {"2.5", "-3", "50", "150", "0", "1_000", "inf", "fast", "2s", "true"},
		configs.ParamNonNeg:   {"0", "0.25", "7", "-1", "1s"},
		configs.ParamDuration: {"0", "250ms", "2m", "1.5s", "10", "-1s"},
		configs.ParamBool:     {"true", "false", "1", "0", "on", "maybe"},
		configs.ParamValue:    {"2.5", "true", "false", "-4", "x"},
		configs.ParamRatio:    {"3", "12.5", "0", "-1"},
	}
	for _, bt := range blocks.Catalogue() {
		for _, p := range bt.Params {
			tries := candidates[p.Kind]
			if p.Kind == configs.ParamEnum {
				tries = append(append([]string(nil), p.Enum...), "nope")
			}
			if len(tries) == 0 {
				t.Fatalf("%s.%s: no values to try for kind %v", bt.Name, p.Name, p.Kind)
			}
			base := compileExample(t, bt)
			changed := false
			for _, raw := range tries {
				enc, encErr := blocks.ParamValue(p, configs.Value{Raw: raw, Set: true})
				prog, cfgErr := compileBlock(bt, p.Name, raw)
				if encErr != nil {
					if cfgErr == nil {
						t.Errorf("%s.%s = %q: the compiler takes it, ParamValue refuses: %v", bt.Name, p.Name, raw, encErr)
					}
					continue
				}
				was, _ := base.Param("b", p.Name)
				setErr := base.SetParam("b", p.Name, enc)
				if (setErr == nil) != (cfgErr == nil) {
					t.Errorf("%s.%s = %q (%v): SetParam says %v, the compiler %v", bt.Name, p.Name, raw, enc, setErr, cfgErr)
					continue
				}
				if setErr != nil {
					continue
				}
				live, _ := base.Param("b", p.Name)
				compiled, _ := prog.Param("b", p.Name)
				if !same(live, enc) || !same(compiled, enc) {
					t.Errorf("%s.%s = %q: ParamValue %v, after SetParam %v, compiled %v", bt.Name, p.Name, raw, enc, live, compiled)
				}
				changed = changed || !same(live, was)
			}
			if !changed {
				t.Errorf("%s.%s: no value tried changed it live", bt.Name, p.Name)
			}
		}
	}
}

func same(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

// compileExample compiles one block "b" of type bt with every parameter
// at its example and the inputs it needs.
func compileExample(t *testing.T, bt configs.BlockType) *blocks.TaskProgram {
	t.Helper()
	tp, err := compileBlock(bt, "", "")
	if err != nil {
		t.Fatalf("%s with every parameter at its example: %v", bt.Name, err)
	}
	return tp
}

// compileBlock is compileExample with param written as raw.
func compileBlock(bt configs.BlockType, param, raw string) (*blocks.TaskProgram, error) {
	spec := []string{}
	for _, p := range bt.Inputs {
		if p.Kind == configs.PortBool {
			spec = append(spec, "in:"+p.Name+"=b")
		} else {
			spec = append(spec, "in:"+p.Name+"=x")
		}
	}
	for i := 1; bt.Variadic && i <= bt.MinInputs; i++ {
		spec = append(spec, "in:in"+strconv.Itoa(i)+"="+map[configs.PortKind]string{configs.PortBool: "b", configs.PortNumber: "x"}[bt.VariadicKind])
	}
	for _, p := range bt.Params {
		v := p.Example
		if p.Name == param {
			v = raw
		}
		spec = append(spec, "p:"+p.Name+"="+v)
	}
	cfg := config([]string{"x", "b:bool"}, blk(1, "b", bt.Name, spec...))
	tab, err := cfg.TagTable()
	if err != nil {
		return nil, err
	}
	p, err := blocks.Compile(cfg, tab)
	if err != nil {
		return nil, err
	}
	return p.Task("main"), nil
}
