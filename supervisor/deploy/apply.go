package deploy

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/mkrt/mkrt/configs"
)

// ParamChange is one block parameter that a new config changes.
type ParamChange struct {
	Block, Param string
	Old, New     string
	// Value is New as SetParam takes it (times in seconds, bools 0/1,
	// compare's op as its index).
	Value float64
}

// Name is "block.param".
func (p ParamChange) Name() string { return p.Block + "." + p.Param }

var compareOps = []string{"gt", "ge", "lt", "le", "eq", "ne"}

// ErrStructural is a change beyond function-block parameters.
var ErrStructural = errors.New("the change is structural (devices, tags, tasks, wiring, limits or bridge differ): only function-block parameters can be applied to a running partition as they are; anything else needs a hand-over to a new partition")

// ParamChanges compares two validated configs. When they differ only in
// function-block parameters it returns those changes; any other
// difference is structural and returned as an error naming what differs.
func ParamChanges(old, new *configs.Config) ([]ParamChange, error) {
	if stripParams(old).Hash() != stripParams(new).Hash() {
		return nil, ErrStructural
	}
	oldParams := params(old)
	var out []ParamChange
	for key, nv := range params(new) {
		ov := oldParams[key]
		if ov.Raw == nv.Raw {
			continue
		}
		v, err := paramValue(key[1], nv)
		if err != nil {
			return nil, fmt.Errorf("%s: %s.%s: %w", nv.Pos, key[0], key[1], err)
		}
		out = append(out, ParamChange{Block: key[0], Param: key[1], Old: ov.Raw, New: nv.Raw, Value: v})
	}
	for key := range oldParams {
		if _, ok := params(new)[key]; !ok {
			return nil, fmt.Errorf("parameter %s.%s is removed: set it to its default value instead", key[0], key[1])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

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

func paramValue(name string, v configs.Value) (float64, error) {
	if name == "op" {
		for i, op := range compareOps {
			if v.Raw == op {
				return float64(i), nil
			}
		}
		return 0, fmt.Errorf("%q is not a compare op (gt, ge, lt, le, eq, ne)", v.Raw)
	}
	if f, err := v.Float(); err == nil {
		return f, nil
	}
	if d, err := v.Duration(); err == nil {
		return d.Seconds(), nil
	}
	if _, err := strconv.ParseFloat(v.Raw, 64); err != nil {
		return 0, fmt.Errorf("%q is neither a number nor a duration", v.Raw)
	}
	return 0, nil
}
