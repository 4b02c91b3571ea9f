package configs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/mkrt/mkrt/shm/tag"
	"reflect"
	"strings"
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
// generated from the config structs' yaml, doc, enum and required tags.
// Editors (the YAML language server) use it for completion and checks.
func Schema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := g.object(reflect.TypeOf(Config{}))
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
