// Package register is the one Modbus register codec of mkrt: how a tag's
// value is laid out in 16-bit registers. The field-device client
// (io/modbus) and the Modbus TCP server for SCADA (bridge/modbusserver)
// both encode and decode through it, so a value written by one reads back
// the same in the other. It is pure computation and needs nothing to run.
//
// Registers are handled as wire bytes, two per register, high byte first,
// exactly as they travel in a Modbus PDU; ToBytes and FromBytes convert to
// and from []uint16 for libraries that hand registers over as numbers.
//
// # Orders
//
// An order (configs.Order) names the bytes of the big-endian value, A the
// most significant, in the order they appear on the wire. For the float32
// 1234.5678, whose big-endian bytes are A=44 B=9A C=52 D=2B:
//
//	ABCD  44 9A  52 2B   registers 0x449A 0x522B  big-endian (Modbus standard)
//	CDAB  52 2B  44 9A   registers 0x522B 0x449A  word-swapped
//	BADC  9A 44  2B 52   registers 0x9A44 0x2B52  byte-swapped
//	DCBA  2B 52  9A 44   registers 0x2B52 0x9A44  little-endian
//
// In general CDAB and DCBA reverse the order of the registers of a value
// and BADC and DCBA swap the two bytes inside every register; a 64-bit
// value 0x0001020304050607 in CDAB is 0x0607 0x0405 0x0203 0x0001. A
// one-register value (bool, int16, uint16) has no word order: ABCD and CDAB
// give 0x1234 for 0x1234, BADC and DCBA give 0x3412. An empty order is
// ABCD. In pymodbus terms BADC is byteorder=Endian.Little, CDAB
// wordorder=Endian.Little and DCBA both.
//
// A bool is one register, 0 or 1. Bit n of a register (Bit, WireBit) is bit
// n of the register's value after the byte swap of the order, so bit 0 of a
// BADC register is the lowest bit of its first byte on the wire.
//
// # Strings
//
// A string is a row of bytes, two to a register, in address order: bytes 0
// and 1 in the first register, bytes 2 and 3 in the next. ABCD and CDAB put
// the first byte of each pair in the high byte of the register ("HiLo"),
// BADC and DCBA in the low byte ("LoHi"): "PUMP-7" is 0x5055 0x4D50 0x2D37
// in ABCD and CDAB, 0x5550 0x504D 0x372D in BADC and DCBA. Text is padded
// with NUL bytes and ends at the first NUL.
//
// Word order does not apply to strings. A string is not one number spread
// over registers but a sequence of characters: device manuals describe
// them register by register in address order ("the upper byte of the first
// register contains the first character"), and SCADA drivers offer only the
// byte order within a register as a choice (for example the H and L string
// suffixes of EMQX Neuron's Modbus addresses). Reversing the registers would
// make a ten-register name start with its last two letters. pymodbus agrees: BinaryPayloadBuilder.add_string and
// BinaryPayloadDecoder.decode_string ignore both byteorder and wordorder,
// and the builder's repack option with byteorder=Endian.Little gives the
// byte-swapped (BADC) text; the tests compare this package with those.
//
// # Numbers
//
// Encode takes a raw value (the engineering value with scale and offset
// already undone by the caller) and writes it in the type. Integers are
// rounded to the nearest whole number and clamped to the type's range; NaN
// encodes as 0 and a bool is 1 for any non-zero, non-NaN value. Decode
// gives the value the registers hold as a float64 (an int64 beyond ±2^53
// rounds to the nearest float64) and reports registers that hold no valid
// value of the type: a bool other than 0 or 1, a NaN or infinite float.
//
// Encode, Decode, EncodeString, Bit and an unchanged DecodeString allocate
// nothing (TestNoAllocations): the client calls them on its I/O goroutine
// every poll and the server on every refresh of its register image.
package register

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// Errors of Decode. They are fixed values so that a hot-path caller pays
// no allocation for them; wrap them with the registers where it matters.
var (
	// ErrType: the type has no numeric encoding (a string, or unknown).
	ErrType = errors.New("register: type has no numeric register encoding")
	// ErrShort: fewer registers than the type takes.
	ErrShort = errors.New("register: fewer registers than the type takes")
	// ErrNotBool: a bool register holds neither 0 nor 1.
	ErrNotBool = errors.New("register: bool register is neither 0 nor 1")
	// ErrNotFinite: a float is NaN or infinite.
	ErrNotFinite = errors.New("register: float is NaN or infinite")
)

// swaps tells what an order does: swap the two bytes inside every register
// (BADC, DCBA) and reverse the registers of a value (CDAB, DCBA).
func swaps(o configs.Order) (bytesInRegister, registers bool) {
	return o == configs.BADC || o == configs.DCBA, o == configs.CDAB || o == configs.DCBA
}

// reorder copies the n = len(dst) bytes of a value between big-endian
// order (ABCD) and wire order. The permutation is its own inverse, so the
// same call encodes and decodes.
//
// Hot path: allocation-free.
func reorder(dst, src []byte, o configs.Order) {
	swapBytes, swapRegs := swaps(o)
	nr := len(dst) / 2
	for i := 0; i < nr; i++ {
		r := i
		if swapRegs {
			r = nr - 1 - i
		}
		hi, lo := src[2*r], src[2*r+1]
		if swapBytes {
			hi, lo = lo, hi
		}
		dst[2*i], dst[2*i+1] = hi, lo
	}
}

// Encode writes raw as a value of type t in order o into the first
// 2*t.Registers(0) bytes of wire. It writes nothing for a string or an
// unknown type (strings go through EncodeString), nor into a wire too
// short for the type.
//
// Hot path: allocation-free.
func Encode(wire []byte, t tag.DataType, o configs.Order, raw float64) {
	var be [8]byte
	n := 2 * t.Registers(0)
	if t == tag.String || n == 0 || n > len(be) || len(wire) < n {
		return
	}
	switch t {
	case tag.Bool:
		if raw != 0 && !math.IsNaN(raw) {
			binary.BigEndian.PutUint16(be[:], 1)
		}
	case tag.Int16:
		binary.BigEndian.PutUint16(be[:], uint16(whole(raw, math.MinInt16, math.MaxInt16)))
	case tag.Uint16:
		binary.BigEndian.PutUint16(be[:], uint16(whole(raw, 0, math.MaxUint16)))
	case tag.Int32:
		binary.BigEndian.PutUint32(be[:], uint32(whole(raw, math.MinInt32, math.MaxInt32)))
	case tag.Uint32:
		binary.BigEndian.PutUint32(be[:], uint32(whole(raw, 0, math.MaxUint32)))
	case tag.Int64:
		binary.BigEndian.PutUint64(be[:], uint64(whole(raw, math.MinInt64, math.MaxInt64)))
	case tag.Float32:
		binary.BigEndian.PutUint32(be[:], math.Float32bits(float32(raw)))
	case tag.Float64:
		binary.BigEndian.PutUint64(be[:], math.Float64bits(raw))
	}
	reorder(wire[:n], be[:n], o)
}

// whole rounds v to the nearest integer and clamps it to lo..hi; NaN is 0.
// The bounds are compared as float64 so that hi = MaxInt64 (2^63 as a
// float64) clamps instead of overflowing.
func whole(v float64, lo, hi int64) int64 {
	r := math.Round(v)
	switch {
	case math.IsNaN(r):
		return 0
	case r <= float64(lo):
		return lo
	case r >= float64(hi):
		return hi
	}
	return int64(r)
}

// Decode reads a value of type t in order o from the first 2*t.Registers(0)
// bytes of wire. With ErrNotBool it still gives 1 (any non-zero register is
// true) and with ErrNotFinite the NaN or infinity itself, so a reader that
// takes a field device's value as it comes can ignore those two; a server
// refuses the write. ErrType and ErrShort come with 0.
//
// Hot path: allocation-free.
func Decode(wire []byte, t tag.DataType, o configs.Order) (float64, error) {
	var be [8]byte
	n := 2 * t.Registers(0)
	if t == tag.String || n == 0 || n > len(be) {
		return 0, ErrType
	}
	if len(wire) < n {
		return 0, ErrShort
	}
	reorder(be[:n], wire[:n], o)
	switch t {
	case tag.Bool:
		switch binary.BigEndian.Uint16(be[:]) {
		case 0:
			return 0, nil
		case 1:
			return 1, nil
		}
		return 1, ErrNotBool
	case tag.Int16:
		return float64(int16(binary.BigEndian.Uint16(be[:]))), nil
	case tag.Uint16:
		return float64(binary.BigEndian.Uint16(be[:])), nil
	case tag.Int32:
		return float64(int32(binary.BigEndian.Uint32(be[:]))), nil
	case tag.Uint32:
		return float64(binary.BigEndian.Uint32(be[:])), nil
	case tag.Int64:
		return float64(int64(binary.BigEndian.Uint64(be[:]))), nil
	case tag.Float32:
		return finite(float64(math.Float32frombits(binary.BigEndian.Uint32(be[:]))))
	}
	return finite(math.Float64frombits(binary.BigEndian.Uint64(be[:])))
}

func finite(v float64) (float64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v, ErrNotFinite
	}
	return v, nil
}

// stringByte is the index in the wire of byte i of a string: i itself, or
// its neighbour in the same register when the order swaps bytes.
func stringByte(i int, swapBytes bool) int {
	if swapBytes {
		return i ^ 1
	}
	return i
}

// EncodeString writes s into all of wire in order o, padded with NUL bytes
// and cut at len(wire) (a whole number of registers).
//
// Hot path: allocation-free.
func EncodeString(wire []byte, o configs.Order, s string) {
	swapBytes, _ := swaps(o)
	for i := range wire {
		var c byte
		if i < len(s) {
			c = s[i]
		}
		if j := stringByte(i, swapBytes); j < len(wire) {
			wire[j] = c
		}
	}
}

// DecodeString reads text in order o from wire: at most length bytes (and
// at most len(wire)), up to the first NUL. It returns prev itself, without
// allocating, when the text is prev.
//
// Hot path: allocation-free while the text does not change.
func DecodeString(wire []byte, o configs.Order, length int, prev string) string {
	swapBytes, _ := swaps(o)
	n := 0
	for n < min(length, len(wire)) {
		j := stringByte(n, swapBytes)
		if j >= len(wire) || wire[j] == 0 {
			break
		}
		n++
	}
	same := n == len(prev)
	for i := 0; same && i < n; i++ {
		same = wire[stringByte(i, swapBytes)] == prev[i]
	}
	if same {
		return prev
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < n; i++ {
		b.WriteByte(wire[stringByte(i, swapBytes)])
	}
	return b.String()
}

// WireBit is the bit of the register as it travels (high byte first) that
// holds bit n of the register's value in order o: n itself, or n^8 when the
// order swaps the bytes of a register. FC22 masks address wire bits.
func WireBit(o configs.Order, n int) int {
	if swapBytes, _ := swaps(o); swapBytes {
		return n ^ 8
	}
	return n
}

// Bit reads bit n (0-15) of the first register of wire in order o; false
// when wire holds no register.
//
// Hot path: allocation-free.
func Bit(wire []byte, o configs.Order, n int) bool {
	if len(wire) < 2 {
		return false
	}
	return binary.BigEndian.Uint16(wire)>>uint(WireBit(o, n))&1 == 1
}

// ToBytes writes registers as wire bytes into dst (2*len(src) bytes).
func ToBytes(dst []byte, src []uint16) {
	for i, r := range src {
		binary.BigEndian.PutUint16(dst[2*i:], r)
	}
}

// FromBytes reads wire bytes into registers dst (2*len(dst) bytes of src).
func FromBytes(dst []uint16, src []byte) {
	for i := range dst {
		dst[i] = binary.BigEndian.Uint16(src[2*i:])
	}
}
