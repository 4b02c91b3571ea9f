package tag

import "math"

// DataType is a tag's data type.
type DataType string

// The tag data types.
const (
	Bool    DataType = "bool"
	Int16   DataType = "int16"
	Uint16  DataType = "uint16"
	Int32   DataType = "int32"
	Uint32  DataType = "uint32"
	Int64   DataType = "int64"
	Float32 DataType = "float32"
	Float64 DataType = "float64"
	String  DataType = "string"
)

// DataTypes lists every data type.
var DataTypes = []DataType{Bool, Int16, Uint16, Int32, Uint32, Int64, Float32, Float64, String}

// Valid reports whether t is a known data type.
func (t DataType) Valid() bool {
	for _, d := range DataTypes {
		if t == d {
			return true
		}
	}
	return false
}

// Registers is how many 16-bit registers the type takes on Modbus (strings:
// length bytes, two per register).
func (t DataType) Registers(length int) int {
	switch t {
	case Bool, Int16, Uint16:
		return 1
	case Int32, Uint32, Float32:
		return 2
	case Int64, Float64:
		return 4
	case String:
		return (length + 1) / 2
	}
	return 0
}

// IntRange is the range of values an integer type holds exactly as a
// float64 tag value (int64 is capped at ±2^53); ok is false for bool,
// floats and strings.
func (t DataType) IntRange() (lo, hi float64, ok bool) {
	switch t {
	case Int16:
		return math.MinInt16, math.MaxInt16, true
	case Uint16:
		return 0, math.MaxUint16, true
	case Int32:
		return math.MinInt32, math.MaxInt32, true
	case Uint32:
		return 0, math.MaxUint32, true
	case Int64:
		return -(1 << 53), 1 << 53, true
	}
	return 0, 0, false
}

// Numeric reports whether the type holds a number (bool and string do not).
func (t DataType) Numeric() bool { return t != Bool && t != String && t != "" }

// Access is what may be done with a device tag.
type Access string

// The access modes.
const (
	Read      Access = "read"
	Write     Access = "write"
	ReadWrite Access = "read_write"
)

// Readable reports whether the executive reads the tag from the device.
func (a Access) Readable() bool { return a == Read || a == ReadWrite }

// Writable reports whether the executive writes the tag to the device.
func (a Access) Writable() bool { return a == Write || a == ReadWrite }
