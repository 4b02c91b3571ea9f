package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// schemaOutput is what `mkrt config schema` prints.
func schemaOutput(t *testing.T) []byte {
	t.Helper()
	cmd := newConfigCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"schema"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// The schema's block types are the catalogue's, each with its inputs,
// outputs and params, and nothing else.
func TestConfigSchemaListsTheCatalogue(t *testing.T) {
	var schema struct {
		Defs struct {
			Block struct {
				Properties struct {
					Type struct{ Enum []string }
				}
				AllOf []struct {
					If struct {
						Properties struct {
							Type struct{ Const string }
						}
					}
					Then struct {
						Required   []string
						Properties map[string]struct {
							Properties        map[string]any
							PatternProperties map[string]any
							Required          []string
							MinProperties     int
						}
					}
				}
			}
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schemaOutput(t), &schema); err != nil {
		t.Fatal(err)
	}
	block := schema.Defs.Block
	cat := blocks.Catalogue()
	var want []string
	for _, bt := range cat {
		want = append(want, bt.Name)
	}
	if !slices.Equal(block.Properties.Type.Enum, want) {
		t.Fatalf("type enum %v, want the catalogue's %v", block.Properties.Type.Enum, want)
	}
	if len(block.AllOf) != len(cat) {
		t.Fatalf("%d per-type rules for %d types", len(block.AllOf), len(cat))
	}
	for i, bt := range cat {
		rule := block.AllOf[i]
		if rule.If.Properties.Type.Const != bt.Name {
			t.Fatalf("rule %d is for %q, want %q", i, rule.If.Properties.Type.Const, bt.Name)
		}
		var inputs, outputs, params, needInputs, needParams []string
		for _, p := range bt.Inputs {
			inputs = append(inputs, p.Name)
			if p.Required {
				needInputs = append(needInputs, p.Name)
			}
		}
		for _, p := range bt.Outputs {
			outputs = append(outputs, p.Name)
		}
		for _, p := range bt.Params {
			params = append(params, p.Name)
			if p.Required {
				needParams = append(needParams, p.Name)
			}
		}
		in, out, par := rule.Then.Properties["inputs"], rule.Then.Properties["outputs"], rule.Then.Properties["params"]
		for _, c := range []struct {
			what      string
			got, want []string
		}{
			{"inputs", keys(in.Properties), sorted(inputs)},
			{"numbered inputs", keys(in.PatternProperties), map[bool][]string{true: {`^in[1-9][0-9]*$`}}[bt.Variadic]},
			{"required inputs", in.Required, needInputs},
			{"outputs", keys(out.Properties), sorted(outputs)},
			{"params", keys(par.Properties), sorted(params)},
			{"required params", par.Required, needParams},
		} {
			if !slices.Equal(c.got, c.want) {
				t.Errorf("%s: schema %s %v, catalogue %v", bt.Name, c.what, c.got, c.want)
			}
		}
		if in.MinProperties != bt.MinInputs {
			t.Errorf("%s: schema takes at least %d inputs, catalogue %d", bt.Name, in.MinProperties, bt.MinInputs)
		}
		if n := len(rule.Then.Properties); n != 3 {
			t.Errorf("%s: the rule describes %d block keys, want inputs, outputs and params", bt.Name, n)
		}
	}
}

// Every example config matches the schema under a JSON Schema validator,
// and configs and blocks written wrong do not.
func TestConfigSchemaValidatesExamples(t *testing.T) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaOutput(t)))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(configs.SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile(configs.SchemaID)
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	files, err := filepath.Glob("../../configs/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(instance(t, string(text))); err != nil {
			t.Errorf("%s does not match the schema: %v", f, err)
		}
	}
	for _, bad := range []string{"metadata: {name: x, nmae: 1}\n", "metadata: {name: x}\ntasks: [{name: t, period: \"10\"}]\n",
		"metadata: {name: x}\npartition: {backend: vmm}\n"} {
		if err := schema.Validate(instance(t, bad)); err == nil {
			t.Errorf("the schema accepts %q", bad)
		}
	}
	valid := "metadata: {name: p}\ntasks:\n  - {name: t, period: 10ms, blocks: [%s]}\n"
	for _, c := range []struct {
		block string
		ok    bool
	}{
		{"{name: a, type: pid, inputs: {pv: x, sp: 1, track: true, man_out: 0}, outputs: {out: y}, params: {kp: 2, ti: 30s, td: 0, td_filter: 1s, direct: true}}", true},
		{"{name: a, type: and, inputs: {in1: x, in2: y, in3: true}}", true},
		{"{name: a, type: compare, inputs: {a: x, b: 2}, params: {op: ge}}", true},
		{"{name: a, type: pdi, inputs: {pv: x, sp: 1}}", false},
		{"{name: a, type: pid, inputs: {pv: x, sp: 1}, params: {kd: 2}}", false},
		{"{name: a, type: pid, inputs: {pv: x}}", false},
		{"{name: a, type: pid, inputs: {pv: x, sp: 1, track: b}}", false},
		{"{name: a, type: pid, inputs: {pv: x, sp: 1}, params: {ti: 10}}", false},
		{"{name: a, type: lag, inputs: {in: x}}", false},
		{"{name: a, type: lag, inputs: {inn: x}, params: {tau: 1s}}", false},
		{"{name: a, type: lag, inputs: {in: x}, outputs: {q: y}, params: {tau: 1s}}", false},
		{"{name: a, type: compare, inputs: {a: x, b: 2}, params: {op: gte}}", false},
		{"{name: a, type: and, inputs: {in1: x}}", false},
		{"{name: a, type: counter, inputs: {reset: x}}", false},
		{"{name: a, type: deadband, inputs: {in: x}, params: {width: -1}}", false},
	} {
		err := schema.Validate(instance(t, strings.Replace(valid, "%s", c.block, 1)))
		if (err == nil) != c.ok {
			t.Errorf("%s: valid %v, want %v (%v)", c.block, err == nil, c.ok, err)
		}
	}
}

// instance is a YAML config as JSON Schema validators see it.
func instance(t *testing.T, text string) any {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return sorted(out)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// mkrt config defaults reports the blocks' problems too.
func TestConfigDefaultsChecksBlocks(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	src := "metadata: {name: p}\ntasks:\n  - {name: t, period: 10ms, blocks: [{name: a, type: pdi}]}\n"
	if err := os.WriteFile(bad, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := newConfigCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetArgs([]string{"defaults", bad})
	if err := cmd.Execute(); exitCode(err) != 1 || !strings.Contains(err.Error(), `bad.yaml:3:54: block a: unknown block type "pdi"`) {
		t.Fatalf("defaults of a bad block: %v", err)
	}
}
