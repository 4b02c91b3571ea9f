package configs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/mkrt/mkrt/shm/tag"
)

// SchemaID is the $id of the JSON Schema of control configs.
const SchemaID = "https://mkrt.dev/schemas/control-config.json"

// Patterns of the scalar types written as text.
const (
	DurationPattern = `^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`
	SizePattern     = `^[0-9]+(Ki|Mi|Gi|KiB|MiB|GiB|k|M|G)?$`
	CPUListPattern  = `^\s*[0-9]+(\s*-\s*[0-9]+)?(\s*,\s*[0-9]+(\s*-\s*[0-9]+)?)*\s*$`
)

// Schema returns the JSON Schema (draft 2020-12) of control configs,
// generated from the config structs' yaml, doc, enum and required tags,
// and from blockTypes, the function-block catalogue (blocks.Catalogue():
// this package does not know the block types). A block's type is one of
// blockTypes, and its type says which inputs, outputs and params it takes.
// Editors (the YAML language server) use it for completion and checks.
func Schema(blockTypes []BlockType) ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := g.object(reflect.TypeOf(Config{}))
	if len(blockTypes) > 0 {
		describeBlocks(g.defs[reflect.TypeOf(Block{}).Name()].(map[string]any), blockTypes)
		names := make([]string, len(blockTypes))
		for i, t := range blockTypes {
			names[i] = t.Name
		}
		g.describeInstances(root, names)
	}
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "mkrt control config"
	root["description"] = "One partition of mkrt and the plant program it runs: board, devices, tags, tasks, watchdog, bridge, latency."
	root["$defs"] = g.defs
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(root); err != nil {
		return nil, fmt.Errorf("configs: encoding the schema: %w", err)
	}
	return b.Bytes(), nil
}

type schemaGen struct {
	defs map[string]any
}

// object is the schema of a config struct.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range fieldsOf(t) {
		sf := t.Field(f.index)
		s := g.schemaOf(sf.Type)
		if f.doc != "" {
			s["description"] = f.doc // draft 2020-12 allows it beside $ref
		}
		if enum := sf.Tag.Get("enum"); enum != "" {
			s["enum"] = strings.Split(enum, ",")
		}
		props[f.name] = s
		if f.required {
			required = append(required, f.name)
		}
	}
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func (g *schemaGen) schemaOf(t reflect.Type) map[string]any {
	switch t {
	case reflect.TypeOf(Duration(0)):
		return map[string]any{"type": "string", "pattern": DurationPattern}
	case reflect.TypeOf(Size(0)):
		return map[string]any{"type": []string{"string", "integer"}, "pattern": SizePattern, "minimum": 0}
	case cpuListType:
		return map[string]any{"anyOf": []any{
			map[string]any{"type": "string", "pattern": CPUListPattern},
			map[string]any{"type": "integer", "minimum": 0},
			map[string]any{"type": "array", "items": map[string]any{"type": "integer", "minimum": 0}},
		}}
	case reflect.TypeOf(Value{}), reflect.TypeOf(Ref{}):
		return map[string]any{"type": []string{"string", "number", "boolean"}}
	case reflect.TypeOf(tag.DataType("")):
		names := make([]string, len(tag.DataTypes))
		for i, d := range tag.DataTypes {
			names[i] = string(d)
		}
		return map[string]any{"type": "string", "enum": names}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schemaOf(t.Elem())
	case reflect.Struct:
		name := t.Name()
		if _, done := g.defs[name]; !done {
			g.defs[name] = true // placeholder against recursion
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schemaOf(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{}
}

// BlockType describes one function-block type as a config writes it: the
// ports a block of the type has, the parameters it takes and the units its
// ports share. The catalogue of block types belongs to rtkernel/blocks,
// which runs them (blocks.Catalogue, blocks.Validate); this package, which
// may not import it, is given the descriptions where both are visible (the
// mkrt command) to describe blocks in the schema.
type BlockType struct {
	Name string
	Doc  string // what the block does, in one line
	// Inputs are the named inputs.
	Inputs []BlockPort
	// Variadic types (and, or, min, ...) take numbered inputs in1..inN
	// instead, of kind VariadicKind, at least MinInputs of them.
	Variadic     bool
	VariadicKind PortKind
	MinInputs    int
	// AnyInput lists inputs of which at least one must be wired (a
	// counter's up and down).
	AnyInput []string
	// InputNeeds pairs an input with one that must be wired beside it (a
	// pid's track needs man_out).
	InputNeeds [][2]string
	Outputs    []BlockPort
	Params     []BlockParam
	// SameUnit lists the inputs that must carry the same engineering unit
	// ("in*": every numbered input).
	SameUnit []string
	// PassUnit lists the inputs whose common unit the number outputs carry
	// ("in*": the numbered inputs); a tag such an output writes must be in
	// that unit.
	PassUnit []string
	// KindFrom lists the inputs whose kind the outputs take: a delay or a
	// select of bools is a bool.
	KindFrom []string
	// Expression: a block of the type is written with an expr: (its
	// output is the expression); no other type takes one.
	Expression bool
}

// PortKind is what a block port carries.
type PortKind uint8

// The port kinds.
const (
	PortNumber PortKind = iota // a number
	PortBool                   // a bool, carried as 0 or 1
)

func (k PortKind) String() string {
	if k == PortBool {
		return "bool"
	}
	return "number"
}

// BlockPort is one input or output of a block type.
type BlockPort struct {
	Name string
	Kind PortKind
	// Required inputs must be wired.
	Required bool
}

// ParamKind is how a block parameter is written.
type ParamKind uint8

// The parameter kinds.
const (
	ParamNumber   ParamKind = iota // a number
	ParamNonNeg                    // a number, 0 or more
	ParamDuration                  // a time with a unit (30s, 250ms), 0 or more
	ParamBool                      // true or false
	ParamEnum                      // one of the parameter's Enum words
	ParamValue                     // a number, true or false
	ParamRatio                     // a number above 0, or a time above 0
)

func (k ParamKind) String() string {
	switch k {
	case ParamNonNeg:
		return "number >= 0"
	case ParamDuration:
		return "time"
	case ParamBool:
		return "bool"
	case ParamEnum:
		return "word"
	case ParamValue:
		return "number or bool"
	case ParamRatio:
		return "ratio or time"
	}
	return "number"
}

// BlockParam is one parameter of a block type.
type BlockParam struct {
	Name string
	Kind ParamKind
	Doc  string // what it sets, in a few words
	// Default is the value a block runs with when the parameter is not
	// written, as the program carries it: seconds for a time, 1 or 0 for a
	// bool, the index of an Enum word.
	Default float64
	// Required parameters must be written; Optional ones may stay unset,
	// and the block then runs without them (an alarm's limits).
	Required, Optional bool
	Enum               []string
	// Example is a value as a config writes it, valid together with the
	// other parameters' examples.
	Example string
}

// describeBlocks adds the block types to the schema of a block: its type
// is one of them, and each type's inputs, outputs and params follow it.
func describeBlocks(block map[string]any, types []BlockType) {
	names := make([]string, len(types))
	rules := make([]any, len(types))
	for i, t := range types {
		names[i] = t.Name
		rules[i] = map[string]any{
			"if":   map[string]any{"type": "object", "properties": map[string]any{"type": map[string]any{"const": t.Name}}, "required": []string{"type"}},
			"then": blockTypeSchema(t),
		}
	}
	block["properties"].(map[string]any)["type"] = map[string]any{"type": "string", "enum": names,
		"description": "block type: " + strings.Join(names, ", ")}
	block["allOf"] = rules
}

// blockTypeSchema is what a block of type t may write.
func blockTypeSchema(t BlockType) map[string]any {
	ref := func(k PortKind, what string) map[string]any {
		return map[string]any{"type": []string{"string", "number", "boolean"}, "description": fmt.Sprintf("%s input%s: a tag, block.port, a literal or an expression", k, what)}
	}
	inputs := map[string]any{}
	var need []string
	for _, p := range t.Inputs {
		what := ""
		if p.Required {
			what = " (required)"
			need = append(need, p.Name)
		}
		inputs[p.Name] = ref(p.Kind, what)
	}
	in := map[string]any{"type": "object", "properties": inputs, "additionalProperties": false}
	if t.Variadic {
		in["patternProperties"] = map[string]any{`^in[1-9][0-9]*$`: ref(t.VariadicKind, " (in1..inN, numbered without gaps)")}
		in["minProperties"] = t.MinInputs
	}
	if len(t.AnyInput) > 0 {
		alts := make([]any, len(t.AnyInput))
		for i, name := range t.AnyInput {
			alts[i] = map[string]any{"properties": map[string]any{name: true}, "required": []string{name}}
		}
		in["anyOf"] = alts
	}
	if len(t.InputNeeds) > 0 {
		deps := map[string]any{}
		for _, pair := range t.InputNeeds {
			deps[pair[0]] = []string{pair[1]}
		}
		in["dependentRequired"] = deps
	}
	then := map[string]any{"type": "object", "description": t.Name + ": " + t.Doc}
	var required []string
	if len(need) > 0 {
		in["required"] = need
	}
	if len(need) > 0 || len(t.AnyInput) > 0 || t.MinInputs > 0 {
		required = append(required, "inputs")
	}
	outputs := map[string]any{}
	for _, p := range t.Outputs {
		outputs[p.Name] = map[string]any{"type": "string", "description": p.Kind.String() + " output: the tag it writes"}
	}
	params := map[string]any{}
	var needParams []string
	for _, p := range t.Params {
		params[p.Name] = paramSchema(p)
		if p.Required {
			needParams = append(needParams, p.Name)
		}
	}
	ps := map[string]any{"type": "object", "properties": params, "additionalProperties": false}
	if len(needParams) > 0 {
		ps["required"] = needParams
		required = append(required, "params")
	}
	then["properties"] = map[string]any{
		"inputs":  in,
		"outputs": map[string]any{"type": "object", "properties": outputs, "additionalProperties": false},
		"params":  ps,
	}
	if t.Expression {
		required = append(required, "expr")
	} else {
		then["not"] = map[string]any{"required": []string{"expr"}}
	}
	if len(required) > 0 {
		then["required"] = required
	}
	return then
}

// paramSchema is what a parameter of p's kind may be written as.
func paramSchema(p BlockParam) map[string]any {
	duration := map[string]any{"type": "string", "pattern": DurationPattern}
	var s map[string]any
	switch p.Kind {
	case ParamNonNeg:
		s = map[string]any{"type": "number", "minimum": 0}
	case ParamDuration:
		s = map[string]any{"anyOf": []any{duration, map[string]any{"const": 0}}}
	case ParamBool:
		s = map[string]any{"enum": []any{true, false, 0, 1}}
	case ParamEnum:
		s = map[string]any{"type": "string", "enum": p.Enum}
	case ParamValue:
		s = map[string]any{"type": []string{"number", "boolean"}}
	case ParamRatio:
		s = map[string]any{"anyOf": []any{map[string]any{"type": "number", "exclusiveMinimum": 0}, duration}}
	default:
		s = map[string]any{"type": "number"}
	}
	s["description"] = fmt.Sprintf("%s (%s)", p.Doc, p.Kind)
	if d, ok := writtenDefault(p); ok {
		s["default"] = d
	}
	if p.Example != "" {
		s["examples"] = []any{scalarValue(p.Example)}
	}
	return s
}

// writtenDefault is p's default as a config would write it; false when
// there is none to write (required, unset or infinite).
func writtenDefault(p BlockParam) (any, bool) {
	switch {
	case p.Required || p.Optional || math.IsInf(p.Default, 0) || math.IsNaN(p.Default):
		return nil, false
	case p.Kind == ParamDuration:
		return time.Duration(p.Default * float64(time.Second)).String(), true
	case p.Kind == ParamBool:
		return p.Default != 0, true
	case p.Kind == ParamEnum:
		if i := int(p.Default); i >= 0 && i < len(p.Enum) {
			return p.Enum[i], true
		}
		return nil, false
	}
	return p.Default, true
}

// scalarValue is a scalar as YAML reads it into JSON: a number, a bool or
// a string.
func scalarValue(s string) any {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	return s
}
