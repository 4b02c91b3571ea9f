package configs_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// typesBase is a config with two tags and a type "scaled" (a scale block
// and an expression); %s is replaced by the task's blocks, then the extra
// types.
const typesBase = `metadata: {name: p}
tags: [{name: a}, {name: b}, {name: c}]
block_types:
  - name: scaled
    inputs: [{name: x}, {name: y, default: 2}]
    params: [{name: k, default: 3}, {name: off}]
    outputs: [{name: out, from: sum.out}, {name: raw, from: s.out}]
    blocks:
      - {name: s, type: scale, inputs: {in: x}, params: {gain: k, offset: off}}
      - {name: sum, type: expr, expr: "s.out + y * k"}
%s
tasks:
  - name: t
    period: 10ms
    blocks:
%s
`

func typesConfig(blocks, types string) string {
	return strings.Replace(strings.Replace(typesBase, "%s", types, 1), "%s", blocks, 1)
}

func TestBlockTypeExpands(t *testing.T) {
	src := typesConfig(`      - {name: u1, type: scaled, inputs: {x: a}, params: {off: 1}, outputs: {out: b}}
      - {name: after, type: scale, inputs: {in: u1.raw}, params: {gain: 1}, outputs: {out: c}}`, "")
	c, err := configs.LoadBytes("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	bs := c.Tasks[0].Blocks
	var names []string
	for _, b := range bs {
		names = append(names, b.Name)
	}
	if got := strings.Join(names, " "); got != "u1_s u1_sum after" {
		t.Fatalf("blocks %q, want u1_s u1_sum after", got)
	}
	s, sum, after := bs[0], bs[1], bs[2]
	if s.Inputs["in"].Raw != "a" || s.Params["gain"].Raw != "3" || s.Params["offset"].Raw != "1" {
		t.Errorf("u1_s: inputs %v params %v, want in a, gain 3 (default), offset 1", s.Inputs, s.Params)
	}
	if sum.Expr.Raw != "u1_s.out + 2 * 3" || sum.Outputs["out"] != "b" {
		t.Errorf("u1_sum: expr %q outputs %v, want \"u1_s.out + 2 * 3\" writing b", sum.Expr.Raw, sum.Outputs)
	}
	if after.Inputs["in"].Raw != "u1_s.out" {
		t.Errorf("after reads %q, want u1_s.out", after.Inputs["in"].Raw)
	}
	if p := c.FieldPos(&bs[0].Name, configs.Pos{}); !strings.Contains(p.String(), "t.yaml:16:16: in u1 (type scaled, defined at t.yaml:4:5): t.yaml:9:16") {
		t.Errorf("u1_s is placed at %s, want the instance, the type and its place in the type", p)
	}
}

func TestBlockTypeNested(t *testing.T) {
	outer := `  - name: twice
    inputs: [{name: v}]
    params: [{name: g, default: 5}]
    outputs: [{name: out, from: second.out}]
    blocks:
      - {name: first, type: scaled, inputs: {x: v}, params: {k: g, off: 0}}
      - {name: second, type: scaled, inputs: {x: first.out}, params: {off: 0}}`
	src := typesConfig(`      - {name: w, type: twice, inputs: {v: a}, params: {g: 7}, outputs: {out: c}}`, outer)
	c, err := configs.LoadBytes("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]configs.Block{}
	for _, b := range c.Tasks[0].Blocks {
		got[b.Name] = b
	}
	if len(got) != 4 || got["w_first_s"].Params["gain"].Raw != "7" || got["w_second_s"].Inputs["in"].Raw != "w_first_sum.out" || got["w_second_sum"].Outputs["out"] != "c" {
		t.Errorf("nested expansion: %+v", got)
	}
}

func TestBlockTypeErrors(t *testing.T) {
	self := `  - name: loop
    outputs: [{name: o, from: inner.o}]
    blocks:
      - {name: inner, type: loop2}
  - name: loop2
    outputs: [{name: o, from: back.o}]
    blocks:
      - {name: back, type: loop}`
	var deep strings.Builder
	for i := range configs.MaxTypeDepth + 1 {
		deep.WriteString("  - name: d" + string(rune('a'+i)) + "\n    blocks:\n      - {name: n, type: d" + string(rune('a'+i+1)) + "}\n")
	}
	deep.WriteString("  - name: d" + string(rune('a'+configs.MaxTypeDepth+1)) + "\n    blocks:\n      - {name: n, type: scale, inputs: {in: 1}, params: {gain: 1}}\n")
	cases := []struct {
		name, blocks, types string
		want                []string
	}{
		{"unwired input and unset parameter", `      - {name: u, type: scaled}`, "",
			[]string{`t.yaml:16:16: block u (type scaled, defined at t.yaml:4:5): input x is not wired and has no default`,
				`t.yaml:16:16: block u (type scaled, defined at t.yaml:4:5): parameter off is not set and has no default`}},
		{"unknown input, parameter and output", `      - {name: u, type: scaled, inputs: {x: a, z: b}, params: {off: 1, kk: 2}, outputs: {outt: c}}`, "",
			[]string{`has no input "z"`, `has no parameter "kk" (did you mean "k"?)`, `has no output "outt" (did you mean "out"?)`}},
		{"an error inside the type names the instance", `      - {name: u, type: scaled, inputs: {x: nosuch}, params: {off: 1}}
      - {name: v, type: scaled, inputs: {x: a}, params: {off: 1}}`, "",
			[]string{`t.yaml:16:45: block u_s: input in reads unknown tag "nosuch"`}},
		{"a type reads only its own names", `      - {name: u, type: outside}`, `  - name: outside
    blocks:
      - {name: s, type: scale, inputs: {in: a}, params: {gain: 1}}`,
			[]string{`t.yaml:18:16: in u (type outside, defined at t.yaml:11:5): t.yaml:13:45: block s: input in reads "a", which is none of the inputs, parameters or blocks of type outside`}},
		{"a type's blocks write no tags", `      - {name: u, type: writes}`, `  - name: writes
    blocks:
      - {name: s, type: scale, inputs: {in: 1}, params: {gain: 1}, outputs: {out: a}}`,
			[]string{`block s: a block of a type writes no tags`}},
		{"interface names", `      - {name: u, type: scale, inputs: {in: 1}, params: {gain: 1}}`, `  - name: names
    inputs: [{name: v}, {name: fic-101}]
    params: [{name: v}]
    blocks: [{name: s, type: scale, inputs: {in: 1}, params: {gain: 1}}]`,
			[]string{`t.yaml:12:32: block type names: input name "fic-101" is not an identifier`, `t.yaml:13:21: block type names: parameter v has the name of its input`}},
		{"a cycle", `      - {name: u, type: loop}`, self, []string{`block type loop contains itself (loop → loop2 → loop)`}},
		{"too deep", `      - {name: u, type: da}`, deep.String(), []string{`block types nest deeper than 8`}},
		{"defined twice", `      - {name: u, type: scale, inputs: {in: 1}, params: {gain: 1}}`, `  - name: scaled
    blocks: [{name: s, type: scale, inputs: {in: 1}, params: {gain: 1}}]`, []string{`t.yaml:11:11: block type "scaled" is defined twice (first at t.yaml:4:5)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := loadErrors(t, "t.yaml", typesConfig(tc.blocks, tc.types))
			text := errs.Error()
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("missing %q in:\n%s", w, text)
				}
			}
		})
	}
}

// A type's expression names its inputs (also quoted); an input wired to a
// tag whose name is not an identifier, or to an expression, stays one
// operand; a quoted tag outside the type is out of its scope.
func TestBlockTypeExpressionOperands(t *testing.T) {
	types := `  - name: q
    inputs: [{name: v}, {name: w}]
    outputs: [{name: out, from: e.out}]
    blocks:
      - {name: e, type: expr, expr: "v * \"w\""}`
	src := strings.Replace(typesConfig(`      - {name: u, type: q, inputs: {v: fic-101, w: "a + b"}, outputs: {out: c}}`, types),
		"tags: [", "tags: [{name: fic-101}, ", 1)
	c, err := configs.LoadBytes("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Tasks[0].Blocks[0].Expr.Raw; got != `"fic-101" * (a + b)` {
		t.Errorf("expr %s, want \"fic-101\" * (a + b)", got)
	}
	errs := loadErrors(t, "t.yaml", typesConfig(`      - {name: u, type: q, inputs: {v: a, w: b}}`, strings.Replace(types, `\"w\"`, `\"c\"`, 1)))
	if !strings.Contains(errs.Error(), `block e: expr reads "c", which is none of the inputs, parameters or blocks of type q`) {
		t.Errorf("a quoted tag outside the type: %v", errs)
	}
}

// BenchmarkLoadBlockTypes loads a config of about 5,000 lines: a type of
// three blocks instantiated 500 times (1,500 blocks after expansion).
func BenchmarkLoadBlockTypes(b *testing.B) {
	var blocks, tags strings.Builder
	for i := range 500 {
		fmt.Fprintf(&tags, "  - name: t%d\n", i)
		fmt.Fprintf(&blocks, "      - name: u%d\n        type: scaled\n        inputs:\n          x: a\n          y: b\n        params:\n          off: %d\n        outputs:\n          out: t%d\n", i, i, i)
	}
	src := strings.Replace(typesConfig(blocks.String(), ""), "tags: [{name: a}, {name: b}, {name: c}]", "tags:\n  - {name: a}\n  - {name: b}\n  - {name: c}\n"+tags.String(), 1)
	b.ReportMetric(float64(strings.Count(src, "\n")), "lines")
	for b.Loop() {
		if _, err := configs.LoadBytes("t.yaml", []byte(src)); err != nil {
			b.Fatal(err)
		}
	}
}
