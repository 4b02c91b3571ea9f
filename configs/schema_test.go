package configs_test

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// blockDef is the schema of a block, given types.
func blockDef(t *testing.T, types []configs.BlockType) map[string]any {
	t.Helper()
	raw, err := configs.Schema(types)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" || schema["$id"] != configs.SchemaID || schema["title"] == nil {
		t.Errorf("schema header: %v %v %v", schema["$schema"], schema["$id"], schema["title"])
	}
	return schema["$defs"].(map[string]any)["Block"].(map[string]any)
}

// at follows keys down a decoded JSON document.
func at(t *testing.T, v any, keys ...any) any {
	t.Helper()
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not an object at %q", v, k)
			}
			v = m[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v
}

func TestSchemaWithoutBlockTypes(t *testing.T) {
	block := blockDef(t, nil)
	if _, ok := block["allOf"]; ok {
		t.Error("rules per block type without block types")
	}
	if typ := at(t, block, "properties", "type").(map[string]any); typ["enum"] != nil || typ["type"] != "string" {
		t.Errorf("type: %v", typ)
	}
}

// Each block type given to Schema becomes a choice of type, with the
// inputs, outputs and params it takes, each parameter as its kind is
// written.
func TestSchemaDescribesBlockTypes(t *testing.T) {
	types := []configs.BlockType{
		{Name: "gain", Doc: "scales",
			Inputs:     []configs.BlockPort{{Name: "in", Required: true}, {Name: "hold", Kind: configs.PortBool}, {Name: "hold_value"}},
			InputNeeds: [][2]string{{"hold", "hold_value"}},
			Outputs:    []configs.BlockPort{{Name: "out"}},
			Params: []configs.BlockParam{
				{Name: "k", Kind: configs.ParamNumber, Default: 1, Doc: "gain", Example: "2"},
				{Name: "w", Kind: configs.ParamNonNeg, Doc: "width"},
				{Name: "t", Kind: configs.ParamDuration, Required: true, Doc: "time", Example: "5s"},
				{Name: "on", Kind: configs.ParamBool, Default: 1, Doc: "switch"},
				{Name: "op", Kind: configs.ParamEnum, Enum: []string{"gt", "lt"}, Default: 1, Doc: "op"},
				{Name: "v", Kind: configs.ParamValue, Doc: "value"},
				{Name: "n", Kind: configs.ParamRatio, Default: 10, Doc: "ratio"},
				{Name: "lim", Kind: configs.ParamNumber, Default: math.Inf(1), Doc: "limit"},
				{Name: "opt", Kind: configs.ParamNumber, Default: math.NaN(), Optional: true, Doc: "optional"},
			}},
		{Name: "any", Doc: "logic", Variadic: true, VariadicKind: configs.PortBool, MinInputs: 2,
			Outputs: []configs.BlockPort{{Name: "out", Kind: configs.PortBool}}},
		{Name: "count", Doc: "counts", Inputs: []configs.BlockPort{{Name: "up"}, {Name: "down"}}, AnyInput: []string{"up", "down"}},
		{Name: "calc", Doc: "computes", Variadic: true, Outputs: []configs.BlockPort{{Name: "out"}}, Expression: true},
	}
	block := blockDef(t, types)
	if got := at(t, block, "properties", "type", "enum"); !reflect.DeepEqual(got, []any{"gain", "any", "count", "calc"}) {
		t.Fatalf("type enum %v", got)
	}
	if got := at(t, block, "allOf", 0, "if", "properties", "type", "const"); got != "gain" {
		t.Fatalf("first rule is for %v", got)
	}
	then := at(t, block, "allOf", 0, "then")
	inputs := at(t, then, "properties", "inputs")
	for _, c := range []struct {
		got  any
		want any
	}{
		{at(t, then, "required"), []any{"inputs", "params"}},
		{at(t, inputs, "required"), []any{"in"}},
		{at(t, inputs, "additionalProperties"), false},
		{at(t, inputs, "dependentRequired"), map[string]any{"hold": []any{"hold_value"}}},
		{at(t, inputs, "properties", "hold", "description"), "bool input: a tag, block.port, a literal or an expression"},
		{at(t, then, "properties", "outputs", "properties", "out", "description"), "number output: the tag it writes"},
		{at(t, then, "properties", "params", "required"), []any{"t"}},
		{at(t, then, "properties", "params", "additionalProperties"), false},
		{at(t, then, "properties", "params", "properties", "k"), map[string]any{"type": "number", "default": 1.0, "examples": []any{2.0}, "description": "gain (number)"}},
		{at(t, then, "properties", "params", "properties", "w", "minimum"), 0.0},
		{at(t, then, "properties", "params", "properties", "t", "anyOf", 0, "pattern"), configs.DurationPattern},
		{at(t, then, "properties", "params", "properties", "t", "examples"), []any{"5s"}},
		{at(t, then, "properties", "params", "properties", "on", "default"), true},
		{at(t, then, "properties", "params", "properties", "op", "enum"), []any{"gt", "lt"}},
		{at(t, then, "properties", "params", "properties", "op", "default"), "lt"},
		{at(t, then, "properties", "params", "properties", "v", "type"), []any{"number", "boolean"}},
		{at(t, then, "properties", "params", "properties", "n", "anyOf", 0, "exclusiveMinimum"), 0.0},
		{at(t, then, "properties", "params", "properties", "lim", "default"), nil},
		{at(t, then, "properties", "params", "properties", "opt", "default"), nil},
		{at(t, block, "allOf", 1, "then", "properties", "inputs", "minProperties"), 2.0},
		{at(t, block, "allOf", 1, "then", "properties", "inputs", "patternProperties", `^in[1-9][0-9]*$`, "description"), "bool input (in1..inN, numbered without gaps): a tag, block.port, a literal or an expression"},
		{at(t, block, "allOf", 1, "then", "properties", "params", "properties"), map[string]any{}},
		{at(t, block, "allOf", 2, "then", "required"), []any{"inputs"}},
		{at(t, block, "allOf", 2, "then", "properties", "inputs", "anyOf", 1, "required"), []any{"down"}},
		// An expr block needs its expression; no other block takes one.
		{at(t, block, "allOf", 3, "then", "required"), []any{"expr"}},
		{at(t, block, "allOf", 2, "then", "not"), map[string]any{"required": []any{"expr"}}},
		{at(t, block, "properties", "expr", "type"), []any{"string", "number", "boolean"}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("got %#v, want %#v", c.got, c.want)
		}
	}
}
