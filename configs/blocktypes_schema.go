package configs

import "reflect"

// describeInstances lets the blocks of a task also be instances of block
// types (block_types:), whose names the catalogue's schema cannot know:
// in a config with block_types, a task's block is a catalogue block (Block,
// checked per type) or an instance (BlockInstance: any other type name);
// without, it is a catalogue block. A block inside a block type (TypeBlock)
// may name the type's parameters as parameter values, so only its shape is
// checked. root is the config's schema; catalogue names the catalogue's
// types.
func (g *schemaGen) describeInstances(root map[string]any, catalogue []string) {
	generic := func(typ map[string]any) map[string]any {
		o := g.object(reflect.TypeOf(Block{}))
		o["properties"].(map[string]any)["type"] = typ
		return o
	}
	g.defs["BlockInstance"] = generic(map[string]any{"type": "string", "not": map[string]any{"enum": catalogue},
		"description": "a type defined under block_types:"})
	g.defs["TypeBlock"] = generic(map[string]any{"type": "string",
		"description": "a block of the catalogue or a type defined under block_types:"})
	blocks := func(def map[string]any) map[string]any {
		return def["properties"].(map[string]any)["blocks"].(map[string]any)
	}
	withInstances := g.object(reflect.TypeOf(Task{}))
	blocks(withInstances)["items"] = map[string]any{"anyOf": []any{
		map[string]any{"$ref": "#/$defs/" + reflect.TypeOf(Block{}).Name()},
		map[string]any{"$ref": "#/$defs/BlockInstance"},
	}}
	g.defs["TaskWithInstances"] = withInstances
	blocks(g.defs[reflect.TypeOf(BlockTypeDef{}).Name()].(map[string]any))["items"] = map[string]any{"$ref": "#/$defs/TypeBlock"}
	tasks := func(def string) map[string]any {
		return map[string]any{"properties": map[string]any{"tasks": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/" + def}}}}
	}
	delete(root["properties"].(map[string]any)["tasks"].(map[string]any), "items")
	root["if"] = map[string]any{"properties": map[string]any{"block_types": true}, "required": []string{"block_types"}}
	root["then"] = tasks("TaskWithInstances")
	root["else"] = tasks(reflect.TypeOf(Task{}).Name())
}
