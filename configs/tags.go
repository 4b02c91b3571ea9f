package configs

import (
	"fmt"
	"math"

	"github.com/mkrt/mkrt/shm/tag"
)

// TagDirectory is every tag of the config in tag-ID order — each device's
// tags in device order, then the internal tags — with the defaults applied
// (type, access, string length; unset limits are -Inf and +Inf). It is the
// one place a config's tags become tag.Info: the executive, the shared
// region's directory and the bridge all number tags by it.
func (c *Config) TagDirectory() []tag.Info {
	infos, _ := c.tagDirectory()
	return infos
}

// tagDirectory is TagDirectory with each tag's position.
func (c *Config) tagDirectory() ([]tag.Info, []Pos) {
	var infos []tag.Info
	var pos []Pos
	for _, d := range c.Devices {
		for i := range d.Tags {
			t := &d.Tags[i]
			typ, acc := t.Type, t.Access
			setDefault(&typ, t.DefaultType())
			setDefault(&acc, t.DefaultAccess())
			infos = append(infos, tag.Info{Name: t.Name, Type: typ, Unit: t.Unit, Device: d.Name, Access: acc, Writable: acc.Writable(),
				Min: orInf(t.Min, -1), Max: orInf(t.Max, 1), Deadband: t.Deadband, Length: t.Length})
			pos = append(pos, t.Pos)
		}
	}
	for _, t := range c.Tags {
		typ, n := t.Type, t.Length
		setDefault(&typ, tag.Float64)
		if typ == tag.String {
			setDefault(&n, DefaultStringLength)
		}
		infos = append(infos, tag.Info{Name: t.Name, Type: typ, Unit: t.Unit, Access: tag.ReadWrite, Writable: t.Writable,
			Retain: t.Retain, Min: orInf(t.Min, -1), Max: orInf(t.Max, 1), Deadband: t.Deadband, Length: n})
		pos = append(pos, t.Pos)
	}
	return infos, pos
}

func orInf(p *float64, sign int) float64 {
	if p == nil {
		return math.Inf(sign)
	}
	return *p
}

// TagTable is the config's tag table (TagDirectory, numbered): internal
// tags start good at their initial value, device tags bad until read.
func (c *Config) TagTable() (*tag.Table, error) {
	t, err := tag.NewTable(c.TagDirectory())
	if err != nil {
		return nil, err
	}
	id := t.Len() - len(c.Tags)
	for _, it := range c.Tags {
		if it.Initial.Set {
			if t.Info[id].Type == tag.String {
				t.Text[id] = it.Initial.Raw
			} else {
				v, err := it.Initial.Float()
				if err != nil {
					return nil, fmt.Errorf("configs: %s: initial value of %q: %w", it.Initial.Pos, it.Name, err)
				}
				t.Samples[id].Value = v
			}
		}
		id++
	}
	return t, nil
}
