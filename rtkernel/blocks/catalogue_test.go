package blocks_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/rtkernel/blocks/expr"
)

func TestLookup(t *testing.T) {
	pid, ok := blocks.Lookup("pid")
	if !ok || pid.Name != "pid" || len(pid.Inputs) != 6 || pid.Params[0].Name != "kp" || pid.Params[0].Default != 1 {
		t.Fatalf("Lookup(pid) = %+v, %v", pid, ok)
	}
	if _, ok := blocks.Lookup("pdi"); ok {
		t.Fatal("Lookup(pdi) found a type")
	}
	// The descriptions are copies.
	pid.Inputs[0].Name, pid.Params[0].Default = "changed", 7
	cmp, _ := blocks.Lookup("compare")
	cmp.Params[0].Enum[0] = "changed"
	for _, bt := range blocks.Catalogue() {
		if bt.Name == "pid" && (bt.Inputs[0].Name != "pv" || bt.Params[0].Default != 1) || bt.Name == "compare" && bt.Params[0].Enum[0] != "gt" {
			t.Fatalf("changing a description changed the catalogue: %+v", bt)
		}
	}
}

// Every type of the catalogue is consistent: its unit and kind rules name
// its own inputs, its parameters are told apart, and every parameter has
// an example that compiles (TestParamValueIsWhatTheProgramRuns).
func TestCatalogueIsConsistent(t *testing.T) {
	for _, bt := range blocks.Catalogue() {
		inputs := map[string]bool{}
		for _, p := range bt.Inputs {
			inputs[p.Name] = true
		}
		if bt.Variadic {
			inputs["in*"] = true
		}
		for _, list := range [][]string{bt.SameUnit, bt.PassUnit, bt.KindFrom, bt.AnyInput} {
			for _, name := range list {
				if !inputs[name] {
					t.Errorf("%s: a rule names %q, which is not one of its inputs", bt.Name, name)
				}
			}
		}
		for _, pair := range bt.InputNeeds {
			if !inputs[pair[0]] || !inputs[pair[1]] {
				t.Errorf("%s: %v are not its inputs", bt.Name, pair)
			}
		}
		seen := map[string]bool{}
		for _, p := range bt.Params {
			if seen[p.Name] || p.Doc == "" || p.Example == "" || (p.Kind == configs.ParamEnum) != (len(p.Enum) > 0) {
				t.Errorf("%s.%s: duplicate, undocumented, without an example, or an enum without words: %+v", bt.Name, p.Name, p)
			}
			seen[p.Name] = true
		}
		if bt.Doc == "" || len(bt.Outputs) == 0 || len(bt.Inputs) == 0 && !bt.Variadic {
			t.Errorf("%s: undocumented, or without inputs or outputs", bt.Name)
		}
	}
}

// The README's table of function blocks is the catalogue: the same types,
// in the same order, with the same inputs, outputs and parameters, and
// compare's op words.
func TestReadmeTableIsTheCatalogue(t *testing.T) {
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(text), "\n### Function blocks\n")
	section, _, _ = strings.Cut(section, "\n## ")
	if !ok {
		t.Fatal(`README.md has no "### Function blocks" section`)
	}
	var rows [][]string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| `") {
			cells := strings.Split(strings.Trim(line, "|"), "|")
			if len(cells) != 4 {
				t.Fatalf("row %q: want 4 cells (block, inputs, outputs, parameters)", line)
			}
			rows = append(rows, cells)
		}
	}
	cat := blocks.Catalogue()
	var got []string
	for _, r := range rows {
		got = append(got, codeNames(r[0])...)
	}
	if want := typeNamesOf(cat); !slices.Equal(got, want) {
		t.Fatalf("README blocks\n%v\nwant the catalogue's\n%v", got, want)
	}
	for i, bt := range cat {
		row := rows[i]
		var in, out, params []string
		for _, p := range bt.Inputs {
			in = append(in, p.Name)
		}
		if bt.Variadic {
			in = append(in, "in1..inN")
		}
		for _, p := range bt.Outputs {
			out = append(out, p.Name)
		}
		for _, p := range bt.Params {
			params = append(params, p.Name)
			if len(p.Enum) > 0 && !slices.Equal(notesOf(row[3], p.Name), p.Enum) {
				t.Errorf("README: %s %s is one of %v, the catalogue says %v", bt.Name, p.Name, notesOf(row[3], p.Name), p.Enum)
			}
		}
		for _, c := range []struct {
			what      string
			cell      string
			catalogue []string
		}{{"inputs", row[1], in}, {"outputs", row[2], out}, {"parameters", row[3], params}} {
			if readme := codeNames(c.cell); !slices.Equal(readme, c.catalogue) {
				t.Errorf("README: %s %s are %v, the catalogue says %v", bt.Name, c.what, readme, c.catalogue)
			}
		}
	}
}

var (
	notes = regexp.MustCompile(`\s*\([^()]*\)`)
	code  = regexp.MustCompile("`([^`]+)`(?:\\.\\.`([^`]+)`)?")
)

// codeNames are the names written in code in a cell, outside the notes in
// parentheses; `in1`..`inN` is one name, "in1..inN".
func codeNames(cell string) []string {
	var out []string
	for _, m := range code.FindAllStringSubmatch(notes.ReplaceAllString(cell, ""), -1) {
		if m[2] != "" {
			m[1] += ".." + m[2]
		}
		out = append(out, m[1])
	}
	return out
}

// notesOf are the words in code in the note after name in a cell.
func notesOf(cell, name string) []string {
	m := regexp.MustCompile("`" + regexp.QuoteMeta(name) + "`" + `\s*\(([^()]*)\)`).FindStringSubmatch(cell)
	if m == nil {
		return nil
	}
	return codeNames(m[1])
}

func typeNamesOf(types []configs.BlockType) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = t.Name
	}
	return out
}

// The README's expression section names every function an expression
// may call.
func TestReadmeNamesTheExpressionFunctions(t *testing.T) {
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(text), "\n#### Expressions\n")
	section, _, _ = strings.Cut(section, "\n## ")
	if !ok {
		t.Fatal(`README.md has no "#### Expressions" section`)
	}
	for _, f := range expr.Funcs {
		name, _, _ := strings.Cut(f, "(")
		if !strings.Contains(section, "`"+name+"`") && !strings.Contains(section, "`"+name+"(") {
			t.Errorf("README's expressions do not name the function %s", name)
		}
	}
}
