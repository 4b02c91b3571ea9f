package register_test

import (
	"encoding/hex"
	"errors"
	"math"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/register"
	"github.com/mkrt/mkrt/shm/tag"
)

var orders = []configs.Order{configs.ABCD, configs.CDAB, configs.BADC, configs.DCBA}

// known is one value of every type with its wire bytes in every order,
// written out by hand (not with this package).
var known = []struct {
	typ  tag.DataType
	v    float64
	text string
	// wire bytes in ABCD, CDAB, BADC, DCBA
	wire [4]string
}{
	{tag.Bool, 1, "", [4]string{"0001", "0001", "0100", "0100"}},
	{tag.Int16, -2, "", [4]string{"fffe", "fffe", "feff", "feff"}},
	{tag.Uint16, 0x1234, "", [4]string{"1234", "1234", "3412", "3412"}},
	{tag.Int32, -123456789, "", [4]string{"f8a432eb", "32ebf8a4", "a4f8eb32", "eb32a4f8"}},
	{tag.Uint32, 3000000000, "", [4]string{"b2d05e00", "5e00b2d0", "d0b2005e", "005ed0b2"}},
	{tag.Int64, 0x0001020304050607, "", [4]string{"0001020304050607", "0607040502030001", "0100030205040706", "0706050403020100"}},
	{tag.Float32, float64(float32(1234.5678)), "", [4]string{"449a522b", "522b449a", "9a442b52", "2b529a44"}},
	{tag.Float64, -math.Pi, "", [4]string{"c00921fb54442d18", "2d18544421fbc009", "09c0fb214454182d", "182d4454fb2109c0"}},
	// Strings: byte order within each register, never word order.
	{tag.String, 0, "PUMP-7", [4]string{"50554d502d37", "50554d502d37", "5550504d372d", "5550504d372d"}},
	{tag.String, 0, "ABC", [4]string{"41424300", "41424300", "42410043", "42410043"}},
	{tag.String, 0, "", [4]string{"0000", "0000", "0000", "0000"}},
}

func TestKnownEveryTypeAndOrder(t *testing.T) {
	for _, k := range known {
		for i, o := range orders {
			want, err := hex.DecodeString(k.wire[i])
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(want))
			if k.typ == tag.String {
				register.EncodeString(got, o, k.text)
				if hex.EncodeToString(got) != k.wire[i] {
					t.Errorf("%s %s %q: encode %x, want %s", k.typ, o, k.text, got, k.wire[i])
				}
				if s := register.DecodeString(want, o, len(want), ""); s != k.text {
					t.Errorf("%s %s %s: decode %q, want %q", k.typ, o, k.wire[i], s, k.text)
				}
				continue
			}
			register.Encode(got, k.typ, o, k.v)
			if hex.EncodeToString(got) != k.wire[i] {
				t.Errorf("%s %s %v: encode %x, want %s", k.typ, o, k.v, got, k.wire[i])
			}
			if v, err := register.Decode(want, k.typ, o); v != k.v || err != nil {
				t.Errorf("%s %s %s: decode %v, %v; want %v", k.typ, o, k.wire[i], v, err, k.v)
			}
		}
	}
}

// edges are values at and inside the edges of every type: exact as
// float64, the codec's value type, and in range, so they round-trip.
var edges = map[tag.DataType][]float64{
	tag.Bool:   {0, 1},
	tag.Int16:  {math.MinInt16, -2, 0, 12345, math.MaxInt16},
	tag.Uint16: {0, 0x1234, math.MaxUint16},
	tag.Int32:  {math.MinInt32, -123456789, 0, math.MaxInt32},
	tag.Uint32: {0, 3000000000, math.MaxUint32},
	tag.Int64:  {math.MinInt64, -(1 << 53), -1, 0, 0x0001020304050607, 1 << 62, 0x7FFFFFFFFFFFFC00},
	tag.Float32: {0, math.Copysign(0, -1), float64(float32(1234.5678)), -2.5, math.MaxFloat32,
		math.SmallestNonzeroFloat32, math.Inf(1), math.Inf(-1)},
	tag.Float64: {0, -math.Pi, 1e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(-1)},
}

// edgeTexts are strings with the registers they are written into.
var edgeTexts = []struct {
	text string
	n    int
}{{"", 1}, {"A", 1}, {"ABC", 2}, {"PUMP-7", 3}, {"PUMP-7", 5}, {"tank 3 level", 6}, {"\x7f\x80\xff", 2}}

// same reports whether a decoded value is v (NaN-free; -0 is not 0) with
// the error Decode owes it: ErrNotFinite for an infinity, else none.
func same(got float64, err error, v float64) bool {
	if math.IsInf(v, 0) {
		return got == v && errors.Is(err, register.ErrNotFinite)
	}
	return math.Float64bits(got) == math.Float64bits(v) && err == nil
}

func TestRoundTripEveryTypeAndOrder(t *testing.T) {
	for typ, vs := range edges {
		for _, o := range orders {
			for _, v := range vs {
				wire := make([]byte, 2*typ.Registers(0))
				register.Encode(wire, typ, o, v)
				if got, err := register.Decode(wire, typ, o); !same(got, err, v) {
					t.Errorf("%s %s: %v -> %x -> %v, %v", typ, o, v, wire, got, err)
				}
			}
		}
	}
	for _, o := range orders {
		for _, s := range edgeTexts {
			wire := make([]byte, 2*s.n)
			register.EncodeString(wire, o, s.text)
			if got := register.DecodeString(wire, o, len(wire), ""); got != s.text {
				t.Errorf("string %s: %q -> %x -> %q", o, s.text, wire, got)
			}
		}
	}
}

// TestEncodeClamps: integers are rounded, then clamped to the type's range
// (what the SCADA server serves for an out-of-range tag); NaN is 0.
func TestEncodeClamps(t *testing.T) {
	for _, c := range []struct {
		typ  tag.DataType
		in   float64
		want float64
	}{
		{tag.Int16, 1e9, math.MaxInt16}, {tag.Int16, -1e9, math.MinInt16}, {tag.Int16, 32767.6, math.MaxInt16},
		{tag.Int16, -2.5, -3}, {tag.Int16, math.NaN(), 0},
		{tag.Uint16, -5, 0}, {tag.Uint16, 70000, math.MaxUint16}, {tag.Uint16, 2.5, 3}, {tag.Uint16, 65535.5, math.MaxUint16},
		{tag.Int32, math.NaN(), 0}, {tag.Int32, math.Inf(1), math.MaxInt32}, {tag.Int32, -3e9, math.MinInt32},
		{tag.Uint32, 1e12, math.MaxUint32}, {tag.Uint32, -1, 0},
		{tag.Int64, math.Inf(-1), math.MinInt64}, {tag.Int64, math.Inf(1), math.MaxInt64}, {tag.Int64, 1e19, math.MaxInt64},
		{tag.Int64, math.NaN(), 0},
		{tag.Bool, 0.5, 1}, {tag.Bool, -3, 1}, {tag.Bool, math.NaN(), 0},
		{tag.Float32, 1e39, math.Inf(1)},
	} {
		wire := make([]byte, 2*c.typ.Registers(0))
		register.Encode(wire, c.typ, configs.DCBA, c.in)
		if got, _ := register.Decode(wire, c.typ, configs.DCBA); got != c.want {
			t.Errorf("%s %v: got %v, want %v", c.typ, c.in, got, c.want)
		}
	}
	// MaxInt64 itself, not 2^63-1024: the clamp is the type's range.
	wire := make([]byte, 8)
	register.Encode(wire, tag.Int64, configs.ABCD, math.Inf(1))
	if hex.EncodeToString(wire) != "7fffffffffffffff" {
		t.Errorf("int64 +Inf = %x, want 7fffffffffffffff", wire)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		wire  string
		typ   tag.DataType
		order configs.Order
		v     float64
		err   error
	}{
		{"0002", tag.Bool, configs.ABCD, 1, register.ErrNotBool},
		{"ffff", tag.Bool, configs.BADC, 1, register.ErrNotBool},
		{"0100", tag.Bool, configs.ABCD, 1, register.ErrNotBool},
		{"7fc00000", tag.Float32, configs.ABCD, math.NaN(), register.ErrNotFinite},
		{"00007f80", tag.Float32, configs.CDAB, math.Inf(1), register.ErrNotFinite},
		{"fff0000000000000", tag.Float64, configs.ABCD, math.Inf(-1), register.ErrNotFinite},
		{"4120", tag.Float32, configs.ABCD, 0, register.ErrShort},
		{"41424344", tag.String, configs.ABCD, 0, register.ErrType},
		{"0001", "", configs.ABCD, 0, register.ErrType},
	} {
		wire, _ := hex.DecodeString(c.wire)
		v, err := register.Decode(wire, c.typ, c.order)
		if !errors.Is(err, c.err) || !(v == c.v || math.IsNaN(v) && math.IsNaN(c.v)) {
			t.Errorf("%s %s %s: %v, %v; want %v, %v", c.typ, c.order, c.wire, v, err, c.v, c.err)
		}
	}
}

func TestEncodeLeavesShortWireAlone(t *testing.T) {
	wire := []byte{0xaa, 0xbb}
	register.Encode(wire, tag.Float32, configs.ABCD, 1)
	register.Encode(wire, tag.String, configs.ABCD, 1)
	if wire[0] != 0xaa || wire[1] != 0xbb {
		t.Errorf("wire %x written", wire)
	}
}

func TestStrings(t *testing.T) {
	// length cuts the text, even inside a register and with swapped bytes.
	wire, _ := hex.DecodeString("5550504d372d") // "PUMP-7" in BADC
	for length, want := range map[int]string{0: "", 1: "P", 5: "PUMP-", 6: "PUMP-7", 99: "PUMP-7"} {
		if got := register.DecodeString(wire, configs.BADC, length, ""); got != want {
			t.Errorf("length %d: %q, want %q", length, got, want)
		}
	}
	// The text ends at the first NUL; what follows it is not text.
	wire, _ = hex.DecodeString("4142004344")
	if got := register.DecodeString(wire, configs.ABCD, 6, ""); got != "AB" {
		t.Errorf("NUL: %q, want AB", got)
	}
	// Too long a text is cut at the registers.
	wire = make([]byte, 4)
	register.EncodeString(wire, configs.DCBA, "ABCDEF")
	if hex.EncodeToString(wire) != "42414443" {
		t.Errorf("cut: %x, want 42414443", wire)
	}
	// Unchanged text is the same string, not a copy.
	prev := "AB"
	if got := register.DecodeString([]byte("AB\x00\x00"), configs.ABCD, 4, prev); got != prev {
		t.Errorf("unchanged text: %q", got)
	}
	if got := register.DecodeString([]byte("AB\x00\x00"), configs.ABCD, 4, "ABC"); got != "AB" {
		t.Errorf("shorter text: %q", got)
	}
}

func TestBits(t *testing.T) {
	wire := []byte{0x80, 0x01} // register 0x8001: bits 15 and 0 set
	for n, want := range map[int]bool{0: true, 1: false, 7: false, 8: false, 15: true} {
		if got := register.Bit(wire, configs.ABCD, n); got != want {
			t.Errorf("ABCD bit %d = %v, want %v", n, got, want)
		}
	}
	// BADC: the register's value is 0x0180, bits 7 and 8.
	for n, want := range map[int]bool{0: false, 7: true, 8: true, 15: false} {
		if got := register.Bit(wire, configs.BADC, n); got != want {
			t.Errorf("BADC bit %d = %v, want %v", n, got, want)
		}
	}
	if register.WireBit(configs.CDAB, 3) != 3 || register.WireBit(configs.DCBA, 3) != 11 || register.WireBit(configs.BADC, 12) != 4 {
		t.Errorf("WireBit does not swap bytes for BADC/DCBA only")
	}
	// A bit of a bool-encoded register agrees with Decode.
	for _, o := range orders {
		w := make([]byte, 2)
		register.Encode(w, tag.Bool, o, 1)
		if !register.Bit(w, o, 0) || register.Bit(w, o, 8) {
			t.Errorf("%s: bool 1 is %x, bit 0 not set", o, w)
		}
	}
	if register.Bit(nil, configs.ABCD, 0) {
		t.Errorf("bit of no register")
	}
}

func TestRegistersAndBytes(t *testing.T) {
	r := []uint16{0x449a, 0x522b}
	b := make([]byte, 4)
	register.ToBytes(b, r)
	if hex.EncodeToString(b) != "449a522b" {
		t.Fatalf("ToBytes %x", b)
	}
	back := make([]uint16, 2)
	register.FromBytes(back, b)
	if back[0] != r[0] || back[1] != r[1] {
		t.Fatalf("FromBytes %04x", back)
	}
}

// TestNoAllocations proves the hot-path calls allocate nothing.
func TestNoAllocations(t *testing.T) {
	wire := make([]byte, 8)
	text := make([]byte, 12)
	register.EncodeString(text, configs.BADC, "tank 3 level")
	prev := register.DecodeString(text, configs.BADC, 12, "")
	sink := 0.0
	for name, f := range map[string]func(){
		"Encode":       func() { register.Encode(wire, tag.Float64, configs.CDAB, 1.25) },
		"Decode":       func() { v, _ := register.Decode(wire, tag.Float64, configs.CDAB); sink += v },
		"Decode error": func() { v, _ := register.Decode(wire[:2], tag.Bool, configs.DCBA); sink += v },
		"EncodeString": func() { register.EncodeString(text, configs.BADC, "tank 3 level") },
		"DecodeString": func() { prev = register.DecodeString(text, configs.BADC, 12, prev) },
		"Bit":          func() { register.Bit(wire, configs.BADC, 9) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times", name, n)
		}
	}
}
