package modbus

import (
	"encoding/binary"
	"math"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// reorder copies n = len(dst) bytes of a value between wire order and
// big-endian order (ABCD). The permutation is its own inverse, so the same
// call encodes and decodes. Word order is swapped for CDAB and DCBA, bytes
// within each register for BADC and DCBA.
//
// Hot path (I/O goroutine): allocation-free.
func reorder(dst, src []byte, order configs.Order) {
	swapBytes := order == configs.BADC || order == configs.DCBA
	swapWords := order == configs.CDAB || order == configs.DCBA
	nw := len(dst) / 2
	for i := 0; i < nw; i++ {
		w := i
		if swapWords {
			w = nw - 1 - i
		}
		hi, lo := src[2*w], src[2*w+1]
		if swapBytes {
			hi, lo = lo, hi
		}
		dst[2*i], dst[2*i+1] = hi, lo
	}
}

// decodeRegisters decodes a numeric or bool tag from its registers (wire
// bytes, two per register) into its raw value, before scale and offset.
//
// Hot path (I/O goroutine): allocation-free.
func decodeRegisters(b *binding, wire []byte) float64 {
	var be [8]byte
	n := 2 * b.regs
	if n > len(be) {
		return 0
	}
	reorder(be[:n], wire[:n], b.order)
	if b.bit >= 0 {
		return float64(binary.BigEndian.Uint16(be[:]) >> uint(b.bit) & 1)
	}
	switch b.typ {
	case tag.Bool:
		if binary.BigEndian.Uint16(be[:]) != 0 {
			return 1
		}
		return 0
	case tag.Int16:
		return float64(int16(binary.BigEndian.Uint16(be[:])))
	case tag.Uint16:
		return float64(binary.BigEndian.Uint16(be[:]))
	case tag.Int32:
		return float64(int32(binary.BigEndian.Uint32(be[:])))
	case tag.Uint32:
		return float64(binary.BigEndian.Uint32(be[:]))
	case tag.Int64:
		return float64(int64(binary.BigEndian.Uint64(be[:])))
	case tag.Float32:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(be[:])))
	case tag.Float64:
		return math.Float64frombits(binary.BigEndian.Uint64(be[:]))
	}
	return 0
}

// encodeRegisters encodes a raw value (after the inverse of scale and
// offset) into wire bytes for the tag's registers. Integers are rounded and
// saturated to the type's range; NaN encodes as 0 for integer types.
//
// Hot path (I/O goroutine): allocation-free.
func encodeRegisters(b *binding, raw float64, wire []byte) {
	var be [8]byte
	n := 2 * b.regs
	if n > len(be) || len(wire) < n {
		return
	}
	switch b.typ {
	case tag.Bool:
		if raw != 0 && !math.IsNaN(raw) {
			binary.BigEndian.PutUint16(be[:], 1)
		}
	case tag.Int16:
		binary.BigEndian.PutUint16(be[:], uint16(int16(saturate(raw, math.MinInt16, math.MaxInt16))))
	case tag.Uint16:
		binary.BigEndian.PutUint16(be[:], uint16(saturate(raw, 0, math.MaxUint16)))
	case tag.Int32:
		binary.BigEndian.PutUint32(be[:], uint32(int32(saturate(raw, math.MinInt32, math.MaxInt32))))
	case tag.Uint32:
		binary.BigEndian.PutUint32(be[:], uint32(saturate(raw, 0, math.MaxUint32)))
	case tag.Int64:
		binary.BigEndian.PutUint64(be[:], uint64(saturateInt64(raw)))
	case tag.Float32:
		binary.BigEndian.PutUint32(be[:], math.Float32bits(float32(raw)))
	case tag.Float64:
		binary.BigEndian.PutUint64(be[:], math.Float64bits(raw))
	}
	reorder(wire[:n], be[:n], b.order)
}

func saturate(v, lo, hi float64) int64 {
	switch {
	case math.IsNaN(v):
		return 0
	case v <= lo:
		return int64(lo)
	case v >= hi:
		return int64(hi)
	}
	return int64(math.Round(v))
}

func saturateInt64(v float64) int64 {
	switch {
	case math.IsNaN(v):
		return 0
	case v <= math.MinInt64:
		return math.MinInt64
	case v >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(math.Round(v))
}

// decodeString decodes a string tag: two characters per register, high
// byte first (ABCD, CDAB) or low byte first (BADC, DCBA); it ends at the
// first NUL. It returns prev unchanged (no allocation) when the text has not
// changed.
func decodeString(wire []byte, length int, order configs.Order, prev string) string {
	var buf [2 * maxRegisters]byte
	n := min(length, len(wire), len(buf))
	swap := order == configs.BADC || order == configs.DCBA
	for i := 0; i < n; i++ {
		j := i
		if swap {
			j = i ^ 1
		}
		if j >= len(wire) {
			n = i
			break
		}
		buf[i] = wire[j]
	}
	for i := 0; i < n; i++ {
		if buf[i] == 0 {
			n = i
			break
		}
	}
	if string(buf[:n]) == prev {
		return prev
	}
	return string(buf[:n])
}

// encodeString writes s into wire (zero-padded), inverse of decodeString.
func encodeString(s string, order configs.Order, wire []byte) {
	swap := order == configs.BADC || order == configs.DCBA
	for i := range wire {
		var c byte
		if i < len(s) {
			c = s[i]
		}
		j := i
		if swap {
			j = i ^ 1
		}
		if j < len(wire) {
			wire[j] = c
		}
	}
}

// getBit reads bit i of Modbus-packed bits (LSB of the first byte first).
func getBit(packed []byte, i int) float64 {
	if i/8 >= len(packed) {
		return 0
	}
	return float64(packed[i/8] >> uint(i%8) & 1)
}

// putBit sets bit i of Modbus-packed bits.
func putBit(packed []byte, i int, on bool) {
	if on {
		packed[i/8] |= 1 << uint(i%8)
	} else {
		packed[i/8] &^= 1 << uint(i%8)
	}
}
