package modbusserver

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// order rearranges big-endian bytes into the wire order (and back: every
// order is its own inverse).
func order(b []byte, o configs.Order) {
	if o == configs.CDAB || o == configs.DCBA {
		for i, j := 0, len(b)-2; i < j; i, j = i+2, j-2 {
			b[i], b[i+1], b[j], b[j+1] = b[j], b[j+1], b[i], b[i+1]
		}
	}
	if o == configs.BADC || o == configs.DCBA {
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	}
}

// encode writes an engineering value as registers of the wire type.
// Values outside the wire type's range are clamped. Allocation-free.
func encode(dst []uint16, t tag.DataType, o configs.Order, v float64, text string) {
	var buf [8]byte
	n := 2 * len(dst)
	if t == tag.String {
		for i := range dst {
			var hi, lo byte
			if 2*i < len(text) {
				hi = text[2*i]
			}
			if 2*i+1 < len(text) {
				lo = text[2*i+1]
			}
			dst[i] = uint16(hi)<<8 | uint16(lo)
		}
		return
	}
	if math.IsNaN(v) && t != tag.Float32 && t != tag.Float64 {
		v = 0
	}
	switch t {
	case tag.Bool:
		if v != 0 {
			v = 1
		}
		binary.BigEndian.PutUint16(buf[:], uint16(v))
	case tag.Int16:
		binary.BigEndian.PutUint16(buf[:], uint16(int16(clamp(v, math.MinInt16, math.MaxInt16))))
	case tag.Uint16:
		binary.BigEndian.PutUint16(buf[:], uint16(clamp(v, 0, math.MaxUint16)))
	case tag.Int32:
		binary.BigEndian.PutUint32(buf[:], uint32(int32(clamp(v, math.MinInt32, math.MaxInt32))))
	case tag.Uint32:
		binary.BigEndian.PutUint32(buf[:], uint32(clamp(v, 0, math.MaxUint32)))
	case tag.Int64:
		binary.BigEndian.PutUint64(buf[:], uint64(int64(clamp(v, -(1<<63), (1<<63)-1024))))
	case tag.Float32:
		binary.BigEndian.PutUint32(buf[:], math.Float32bits(float32(v)))
	default:
		binary.BigEndian.PutUint64(buf[:], math.Float64bits(v))
	}
	order(buf[:n], o)
	for i := range dst {
		dst[i] = binary.BigEndian.Uint16(buf[2*i:])
	}
}

func clamp(v, lo, hi float64) float64 {
	return math.Round(math.Max(lo, math.Min(hi, v)))
}

// decode reads registers of the wire type as a raw value (before scaling).
// Strings stop at the first NUL.
func decode(src []uint16, t tag.DataType, o configs.Order) (float64, string, error) {
	if t == tag.String {
		b := make([]byte, 0, 2*len(src))
		for _, r := range src {
			b = append(b, byte(r>>8), byte(r))
		}
		for i, c := range b {
			if c == 0 {
				b = b[:i]
				break
			}
		}
		return 0, string(b), nil
	}
	var buf [8]byte
	n := 2 * len(src)
	for i, r := range src {
		binary.BigEndian.PutUint16(buf[2*i:], r)
	}
	order(buf[:n], o)
	switch t {
	case tag.Bool:
		switch r := binary.BigEndian.Uint16(buf[:]); r {
		case 0, 1:
			return float64(r), "", nil
		default:
			return 0, "", fmt.Errorf("modbusserver: %d is not a boolean (0 or 1): %w", r, wire.ErrWrongType)
		}
	case tag.Int16:
		return float64(int16(binary.BigEndian.Uint16(buf[:]))), "", nil
	case tag.Uint16:
		return float64(binary.BigEndian.Uint16(buf[:])), "", nil
	case tag.Int32:
		return float64(int32(binary.BigEndian.Uint32(buf[:]))), "", nil
	case tag.Uint32:
		return float64(binary.BigEndian.Uint32(buf[:])), "", nil
	case tag.Int64:
		return float64(int64(binary.BigEndian.Uint64(buf[:]))), "", nil
	case tag.Float32:
		v := float64(math.Float32frombits(binary.BigEndian.Uint32(buf[:])))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, "", fmt.Errorf("modbusserver: not a finite number: %w", wire.ErrWrongType)
		}
		return v, "", nil
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(buf[:]))
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, "", fmt.Errorf("modbusserver: not a finite number: %w", wire.ErrWrongType)
	}
	return v, "", nil
}
