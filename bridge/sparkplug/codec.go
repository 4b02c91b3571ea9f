package sparkplug

import (
	"errors"
	"fmt"
	"math"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/shm/tag"
)

// ErrBadMetric is a command metric that cannot be applied.
var ErrBadMetric = errors.New("sparkplug: bad command metric")

// Quality codes carried in the "Quality" metric property (the OPC codes
// Sparkplug hosts such as Ignition understand).
const (
	QualityGood      = 192
	QualityUncertain = 64
	QualityBad       = 0
	QualityStale     = 500
)

func qualityCode(q tag.Quality) int32 {
	switch q {
	case tag.Good:
		return QualityGood
	case tag.Uncertain:
		return QualityUncertain
	case tag.Stale:
		return QualityStale
	}
	return QualityBad
}

// DataType is the Sparkplug datatype of a tag type.
func DataType(t tag.DataType) sproto.DataType {
	switch t {
	case tag.Bool:
		return sproto.DataType_Boolean
	case tag.Int16:
		return sproto.DataType_Int16
	case tag.Uint16:
		return sproto.DataType_UInt16
	case tag.Int32:
		return sproto.DataType_Int32
	case tag.Uint32:
		return sproto.DataType_UInt32
	case tag.Int64:
		return sproto.DataType_Int64
	case tag.Float32:
		return sproto.DataType_Float
	case tag.String:
		return sproto.DataType_String
	}
	return sproto.DataType_Double
}

// setValue stores v (or s for strings) in m as datatype dt.
func setValue(m *sproto.Payload_Metric, dt sproto.DataType, v float64, s string) {
	d := uint32(dt)
	m.Datatype = &d
	switch dt {
	case sproto.DataType_Boolean:
		m.Value = &sproto.Payload_Metric_BooleanValue{BooleanValue: v != 0}
	case sproto.DataType_Int8, sproto.DataType_Int16, sproto.DataType_Int32:
		m.Value = &sproto.Payload_Metric_IntValue{IntValue: uint32(int32(v))}
	case sproto.DataType_UInt8, sproto.DataType_UInt16:
		m.Value = &sproto.Payload_Metric_IntValue{IntValue: uint32(v)}
	case sproto.DataType_UInt32, sproto.DataType_UInt64:
		m.Value = &sproto.Payload_Metric_LongValue{LongValue: uint64(v)}
	case sproto.DataType_Int64:
		m.Value = &sproto.Payload_Metric_LongValue{LongValue: uint64(int64(v))}
	case sproto.DataType_Float:
		m.Value = &sproto.Payload_Metric_FloatValue{FloatValue: float32(v)}
	case sproto.DataType_String, sproto.DataType_Text:
		m.Value = &sproto.Payload_Metric_StringValue{StringValue: s}
	default:
		m.Value = &sproto.Payload_Metric_DoubleValue{DoubleValue: v}
	}
}

// commandValue decodes a command metric's value for a tag of type t.
// Integer wire values are read as the signed or unsigned type the metric's
// datatype (or else the tag's type) says.
func commandValue(m *sproto.Payload_Metric, t tag.DataType) (float64, string, error) {
	if m.GetIsNull() {
		return 0, "", fmt.Errorf("%w: %s: null value", ErrBadMetric, m.GetName())
	}
	dt := sproto.DataType(m.GetDatatype())
	if dt == sproto.DataType_Unknown {
		dt = DataType(t)
	}
	var v float64
	switch x := m.Value.(type) {
	case *sproto.Payload_Metric_BooleanValue:
		if x.BooleanValue {
			v = 1
		}
	case *sproto.Payload_Metric_IntValue:
		switch dt {
		case sproto.DataType_Int8:
			v = float64(int8(x.IntValue))
		case sproto.DataType_Int16:
			v = float64(int16(x.IntValue))
		case sproto.DataType_Int32:
			v = float64(int32(x.IntValue))
		default:
			v = float64(x.IntValue)
		}
	case *sproto.Payload_Metric_LongValue:
		if dt == sproto.DataType_Int64 || dt == sproto.DataType_Int32 || dt == sproto.DataType_Int16 || dt == sproto.DataType_Int8 {
			v = float64(int64(x.LongValue))
		} else {
			v = float64(x.LongValue)
		}
	case *sproto.Payload_Metric_FloatValue:
		v = float64(x.FloatValue)
	case *sproto.Payload_Metric_DoubleValue:
		v = x.DoubleValue
	case *sproto.Payload_Metric_StringValue:
		if t == tag.String {
			return 0, x.StringValue, nil
		}
		return 0, "", fmt.Errorf("%w: %s: string value for a %s tag", ErrBadMetric, m.GetName(), t)
	default:
		return 0, "", fmt.Errorf("%w: %s: no supported value", ErrBadMetric, m.GetName())
	}
	if t == tag.String {
		return 0, "", fmt.Errorf("%w: %s: number for a string tag", ErrBadMetric, m.GetName())
	}
	if math.IsNaN(v) {
		return 0, "", fmt.Errorf("%w: %s: NaN", ErrBadMetric, m.GetName())
	}
	return v, "", nil
}

// tagMetric fills m with a tag's sample.
func tagMetric(m *sproto.Payload_Metric, in *tag.Info, alias uint64, s tag.Sample, text string, withName, withQuality bool) {
	if withName {
		name := in.Name
		m.Name = &name
	}
	a := alias
	m.Alias = &a
	ts := uint64(s.Time / 1e6)
	m.Timestamp = &ts
	setValue(m, DataType(in.Type), s.Value, text)
	if withQuality || s.Quality != tag.Good {
		m.Properties = qualityProps(s.Quality)
	}
}

func qualityProps(q tag.Quality) *sproto.Payload_PropertySet {
	t := uint32(sproto.DataType_Int32)
	return &sproto.Payload_PropertySet{
		Keys: []string{"Quality"},
		Values: []*sproto.Payload_PropertyValue{{
			Type:  &t,
			Value: &sproto.Payload_PropertyValue_IntValue{IntValue: uint32(qualityCode(q))},
		}},
	}
}

// figureMetric fills m with a health figure.
func figureMetric(m *sproto.Payload_Metric, f *plant.Figure, alias uint64, ts uint64, withName bool) {
	if withName {
		name := f.Name
		m.Name = &name
	}
	a := alias
	m.Alias = &a
	m.Timestamp = &ts
	switch {
	case f.IsText:
		setValue(m, sproto.DataType_String, 0, f.Text)
	case f.IsBool:
		setValue(m, sproto.DataType_Boolean, f.Value, "")
	case f.Unit == "ns" || f.Value == math.Trunc(f.Value):
		setValue(m, sproto.DataType_UInt64, f.Value, "")
	default:
		setValue(m, sproto.DataType_Double, f.Value, "")
	}
	if withName && f.Unit != "" {
		t := uint32(sproto.DataType_String)
		m.Properties = &sproto.Payload_PropertySet{Keys: []string{"engUnit"}, Values: []*sproto.Payload_PropertyValue{{Type: &t, Value: &sproto.Payload_PropertyValue_StringValue{StringValue: f.Unit}}}}
	}
}

func u64(v uint64) *uint64 { return &v }

func str(s string) *string { return &s }

func boolp(b bool) *bool { return &b }
