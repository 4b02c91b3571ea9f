package sparkplug

import (
	"errors"
	"testing"

	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/shm/tag"
)

// TestValueRoundTrip: what the node publishes for a tag type reads back as
// the same value when a host sends it as a command.
func TestValueRoundTrip(t *testing.T) {
	for _, c := range []struct {
		typ tag.DataType
		v   float64
	}{
		{tag.Bool, 1}, {tag.Int16, -300}, {tag.Uint16, 65535}, {tag.Int32, -2e9}, {tag.Uint32, 4e9},
		{tag.Int64, -(1 << 53)}, {tag.Float32, -1.5}, {tag.Float64, 3.25e-7},
	} {
		m := &sproto.Payload_Metric{}
		setValue(m, DataType(c.typ), c.v, "")
		got, _, err := commandValue(m, c.typ)
		if err != nil || got != c.v {
			t.Errorf("%s %v: got %v %v", c.typ, c.v, got, err)
		}
	}
	m := &sproto.Payload_Metric{}
	setValue(m, sproto.DataType_String, 0, "recipe-7")
	if _, s, err := commandValue(m, tag.String); err != nil || s != "recipe-7" {
		t.Fatalf("string: %q %v", s, err)
	}
}

func TestCommandValueRefusesMismatches(t *testing.T) {
	str := &sproto.Payload_Metric{Value: &sproto.Payload_Metric_StringValue{StringValue: "x"}}
	num := &sproto.Payload_Metric{Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 1}}
	null := &sproto.Payload_Metric{IsNull: boolp(true)}
	none := &sproto.Payload_Metric{}
	for _, c := range []struct {
		m   *sproto.Payload_Metric
		typ tag.DataType
	}{{str, tag.Float64}, {num, tag.String}, {null, tag.Float64}, {none, tag.Int16}} {
		if _, _, err := commandValue(c.m, c.typ); !errors.Is(err, ErrBadMetric) {
			t.Errorf("%v as %s: %v", c.m, c.typ, err)
		}
	}
}
