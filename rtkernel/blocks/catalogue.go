package blocks

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/mkrt/mkrt/configs"
)

// Catalogue returns every function-block type, in documentation order: its
// ports, parameters and unit rules, as Validate checks a config against
// them and the program runs them. The schema (configs.Schema) and the docs
// are made from it. The descriptions are copies: changing them changes
// nothing here.
func Catalogue() []configs.BlockType {
	out := make([]configs.BlockType, len(catalogue))
	for i, t := range catalogue {
		out[i] = t.describe()
	}
	return out
}

// Lookup returns the description of the block type named name.
func Lookup(name string) (configs.BlockType, bool) {
	t, ok := byType[name]
	if !ok {
		return configs.BlockType{}, false
	}
	return t.describe(), true
}

// describe is a copy of the type's description.
func (t *blockType) describe() configs.BlockType {
	d := t.BlockType
	d.Inputs = slices.Clone(d.Inputs)
	d.Outputs = slices.Clone(d.Outputs)
	d.Params = slices.Clone(d.Params)
	for i := range d.Params {
		d.Params[i].Enum = slices.Clone(d.Params[i].Enum)
	}
	d.AnyInput = slices.Clone(d.AnyInput)
	d.InputNeeds = slices.Clone(d.InputNeeds)
	d.SameUnit = slices.Clone(d.SameUnit)
	d.PassUnit = slices.Clone(d.PassUnit)
	d.KindFrom = slices.Clone(d.KindFrom)
	return d
}

// ErrStructural is a change beyond function-block parameters.
var ErrStructural = errors.New("the change is structural (devices, tags, tasks, wiring, limits or bridge differ): only function-block parameters can be applied to a running partition as they are; anything else needs a hand-over to a new partition")

// ParamValue reads v, written for a parameter p of the catalogue, into the
// value SetParam takes and Param returns: a number as it is, a time in
// seconds, a bool 1 or 0, an enum word its index (compare's op: gt is 0).
// It is the compiler's own reading of the parameter, so a value changed
// live runs exactly as if the program had been compiled with it. A value
// the compiler refuses is ErrParamValue; a td_filter written as a time
// sets the filter time itself, which SetParam cannot: ErrStructural.
func ParamValue(p configs.BlockParam, v configs.Value) (float64, error) {
	f, msg := parseParam(&p, v)
	switch {
	case msg != "":
		return 0, fmt.Errorf("%w: %s %s", ErrParamValue, p.Name, msg)
	case p.Kind == configs.ParamRatio && !isNumber(v.Raw):
		return 0, fmt.Errorf("%s written as a time (%s) sets the filter time itself, which only a new program can: %w", p.Name, v.Raw, ErrStructural)
	}
	return f, nil
}

// ParamChange is one block parameter that a new config changes.
type ParamChange struct {
	Block, Param string
	Old, New     string
	// Value is New as SetParam takes it (ParamValue).
	Value float64
}

// Name is "block.param".
func (p ParamChange) Name() string { return p.Block + "." + p.Param }

// ParamChanges compares two validated configs. When they differ only in
// function-block parameters it returns those changes, each with the value
// SetParam takes; any other difference is structural: ErrStructural.
func ParamChanges(old, new *configs.Config) ([]ParamChange, error) {
	if stripParams(old).Hash() != stripParams(new).Hash() {
		return nil, ErrStructural
	}
	oldParams, newParams := params(old), params(new)
	var out []ParamChange
	for key, nv := range newParams {
		ov := oldParams[key]
		if ov.Raw == nv.Raw {
			continue
		}
		v, err := liveValue(new, key[0], key[1], nv)
		if err != nil {
			return nil, fmt.Errorf("%s: %s.%s: %w", nv.Pos, key[0], key[1], err)
		}
		out = append(out, ParamChange{Block: key[0], Param: key[1], Old: ov.Raw, New: nv.Raw, Value: v})
	}
	for key := range oldParams {
		if _, ok := newParams[key]; !ok {
			return nil, fmt.Errorf("parameter %s.%s is removed: set it to its default value instead", key[0], key[1])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// liveValue is ParamValue of parameter param of the named block of cfg.
func liveValue(cfg *configs.Config, block, param string, v configs.Value) (float64, error) {
	for _, t := range cfg.Tasks {
		for _, b := range t.Blocks {
			if b.Name != block {
				continue
			}
			typ, ok := byType[b.Type]
			if !ok {
				return 0, fmt.Errorf("unknown block type %q", b.Type)
			}
			k := slices.IndexFunc(typ.Params, func(p configs.BlockParam) bool { return p.Name == param })
			if k < 0 {
				return 0, fmt.Errorf("%w %q of %s block %q", ErrUnknownParam, param, typ.Name, block)
			}
			return ParamValue(typ.Params[k], v)
		}
	}
	return 0, fmt.Errorf("%w %q", ErrUnknownBlock, block)
}

// params is every block parameter written in c, by block and name.
func params(c *configs.Config) map[[2]string]configs.Value {
	m := map[[2]string]configs.Value{}
	for _, t := range c.Tasks {
		for _, b := range t.Blocks {
			for k, v := range b.Params {
				m[[2]string{b.Name, k}] = v
			}
		}
	}
	return m
}

// stripParams returns a copy of c without block parameters: writing out a
// parameter that was left at its default is a parameter change too.
func stripParams(c *configs.Config) *configs.Config {
	cp := *c
	cp.Tasks = append([]configs.Task(nil), c.Tasks...)
	for i := range cp.Tasks {
		cp.Tasks[i].Blocks = append([]configs.Block(nil), c.Tasks[i].Blocks...)
		for j := range cp.Tasks[i].Blocks {
			cp.Tasks[i].Blocks[j].Params = nil
		}
	}
	return &cp
}
