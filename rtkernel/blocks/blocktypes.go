package blocks

import "github.com/mkrt/mkrt/configs"

// typeNameClashes reports each user-defined block type (block_types:)
// named like a block of the catalogue: its instances would hide that
// block everywhere in the config.
func typeNameClashes(cfg *configs.Config) configs.Errors {
	var errs configs.Errors
	for i := range cfg.BlockTypes {
		td := &cfg.BlockTypes[i]
		if _, ok := byType[td.Name]; ok {
			errs.Add(cfg.FieldPos(&td.Name, td.Pos), "block type %q has the name of a block of the catalogue; give it a name of its own (e.g. my_%s)", td.Name, td.Name)
		}
	}
	return errs
}
