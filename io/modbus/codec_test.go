package modbus

import (
	"bytes"
	"math"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

var orders = []configs.Order{configs.ABCD, configs.CDAB, configs.BADC, configs.DCBA}

func TestReorderKnownFloat32(t *testing.T) {
	// 1234.5678 as float32 is 0x449A522B: bytes A=44 B=9A C=52 D=2B.
	want := map[configs.Order][]byte{
		configs.ABCD: {0x44, 0x9A, 0x52, 0x2B},
		configs.CDAB: {0x52, 0x2B, 0x44, 0x9A},
		configs.BADC: {0x9A, 0x44, 0x2B, 0x52},
		configs.DCBA: {0x2B, 0x52, 0x9A, 0x44},
	}
	for order, wire := range want {
		b := &binding{typ: tag.Float32, order: order, regs: 2, bit: -1}
		if got := decodeRegisters(b, wire); float32(got) != float32(1234.5678) {
			t.Errorf("%s: decode %x = %v, want 1234.5678", order, wire, got)
		}
		var enc [4]byte
		encodeRegisters(b, 1234.5678, enc[:])
		if !bytes.Equal(enc[:], wire) {
			t.Errorf("%s: encode = %x, want %x", order, enc, wire)
		}
	}
}

func TestReorderKnown64(t *testing.T) {
	// 0x0001020304050607 (exact in a float64) in each order: word order
	// reverses the four registers, byte order swaps within each.
	v := int64(0x0001020304050607)
	want := map[configs.Order]string{
		configs.ABCD: "0001020304050607",
		configs.CDAB: "0607040502030001",
		configs.BADC: "0100030205040706",
		configs.DCBA: "0706050403020100",
	}
	for order, hexWire := range want {
		b := &binding{typ: tag.Int64, order: order, regs: 4, bit: -1}
		var enc [8]byte
		encodeRegisters(b, float64(v), enc[:])
		if got := hexString(enc[:]); got != hexWire {
			t.Errorf("%s: encode = %s, want %s", order, got, hexWire)
		}
		if got := decodeRegisters(b, enc[:]); got != float64(v) {
			t.Errorf("%s: decode = %v, want %v", order, got, float64(v))
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestRoundTripEveryTypeAndOrder(t *testing.T) {
	cases := []struct {
		typ tag.DataType
		v   []float64
	}{
		{tag.Bool, []float64{0, 1}},
		{tag.Int16, []float64{-32768, -1, 0, 12345, 32767}},
		{tag.Uint16, []float64{0, 1, 65535}},
		{tag.Int32, []float64{math.MinInt32, -70000, 0, math.MaxInt32}},
		{tag.Uint32, []float64{0, 70000, math.MaxUint32}},
		{tag.Int64, []float64{-(1 << 53), -1, 0, 1 << 53}},
		{tag.Float32, []float64{-1.5, 0, 3.25, float64(float32(math.Pi))}},
		{tag.Float64, []float64{-1e300, math.Pi, 0, math.Inf(1)}},
	}
	for _, c := range cases {
		for _, order := range orders {
			b := &binding{typ: c.typ, order: order, regs: c.typ.Registers(0), bit: -1}
			for _, v := range c.v {
				wire := make([]byte, 2*b.regs)
				encodeRegisters(b, v, wire)
				if got := decodeRegisters(b, wire); got != v {
					t.Errorf("%s %s: %v -> %x -> %v", c.typ, order, v, wire, got)
				}
			}
		}
	}
}

func TestEncodeSaturates(t *testing.T) {
	for _, c := range []struct {
		typ  tag.DataType
		in   float64
		want float64
	}{
		{tag.Int16, 1e9, 32767}, {tag.Int16, -1e9, -32768}, {tag.Uint16, -5, 0},
		{tag.Uint16, 70000, 65535}, {tag.Uint16, 2.5, 3}, {tag.Int32, math.NaN(), 0},
		{tag.Uint32, 1e12, math.MaxUint32}, {tag.Int64, math.Inf(-1), math.MinInt64},
	} {
		b := &binding{typ: c.typ, order: configs.ABCD, regs: c.typ.Registers(0), bit: -1}
		wire := make([]byte, 2*b.regs)
		encodeRegisters(b, c.in, wire)
		if got := decodeRegisters(b, wire); got != c.want {
			t.Errorf("%s %v: got %v, want %v", c.typ, c.in, got, c.want)
		}
	}
}

func TestBitExtraction(t *testing.T) {
	wire := []byte{0x80, 0x01} // bits 15 and 0 set
	for bit, want := range map[int]float64{0: 1, 1: 0, 7: 0, 8: 0, 15: 1} {
		b := &binding{typ: tag.Bool, order: configs.ABCD, regs: 1, bit: bit}
		if got := decodeRegisters(b, wire); got != want {
			t.Errorf("bit %d = %v, want %v", bit, got, want)
		}
	}
	// BADC: the register's bytes are swapped on the wire.
	b := &binding{typ: tag.Bool, order: configs.BADC, regs: 1, bit: 7}
	if got := decodeRegisters(b, wire); got != 1 {
		t.Errorf("BADC bit 7 = %v, want 1", got)
	}
	packed := []byte{0b0000_0101, 0b1000_0000}
	for i, want := range map[int]float64{0: 1, 1: 0, 2: 1, 15: 1, 14: 0, 16: 0} {
		if got := getBit(packed, i); got != want {
			t.Errorf("getBit(%d) = %v, want %v", i, got, want)
		}
	}
	putBit(packed, 1, true)
	putBit(packed, 15, false)
	if packed[0] != 0b111 || packed[1] != 0 {
		t.Errorf("putBit: %08b", packed)
	}
}

func TestStrings(t *testing.T) {
	for _, order := range orders {
		wire := make([]byte, 10)
		encodeString("PUMP-7", order, wire)
		if got := decodeString(wire, 10, order, ""); got != "PUMP-7" {
			t.Errorf("%s: %q -> %x -> %q", order, "PUMP-7", wire, got)
		}
		if order == configs.BADC && string(wire[:6]) != "UPPM7-" {
			t.Errorf("BADC wire %q, want byte-swapped registers", wire[:6])
		}
	}
	prev := "AB"
	if got := decodeString([]byte("AB\x00\x00"), 4, configs.ABCD, prev); got != prev {
		t.Errorf("unchanged text: %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { prev = decodeString([]byte("AB\x00\x00"), 4, configs.ABCD, prev) }); n != 0 {
		t.Errorf("decodeString of unchanged text allocates %v times", n)
	}
}
