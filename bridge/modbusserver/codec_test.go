package modbusserver

import (
	"math"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

func TestCodecRoundTrip(t *testing.T) {
	vals := map[configs.DataType][]float64{
		configs.Bool: {0, 1}, configs.Int16: {-32768, -1, 0, 32767}, configs.Uint16: {0, 65535},
		configs.Int32: {math.MinInt32, -5, 123456}, configs.Uint32: {0, 4e9}, configs.Int64: {-1 << 53, 1 << 53, -3},
		configs.Float32: {1.5, -1024.75, 1 << 40}, configs.Float64: {math.Pi, -1e300},
	}
	for typ, vs := range vals {
		for _, o := range []configs.Order{configs.ABCD, configs.CDAB, configs.BADC, configs.DCBA} {
			for _, v := range vs {
				regs := make([]uint16, typ.Registers(0))
				encode(regs, typ, o, v, "")
				got, _, err := decode(regs, typ, o)
				if err != nil || got != v {
					t.Errorf("%s %s %v: got %v %v (%04x)", typ, o, v, got, err, regs)
				}
			}
		}
	}
	regs := make([]uint16, 3)
	encode(regs, configs.String, configs.ABCD, 0, "ABCD")
	if regs[0] != 0x4142 || regs[1] != 0x4344 || regs[2] != 0 {
		t.Fatalf("string %04x", regs)
	}
	if _, s, _ := decode(regs, configs.String, configs.ABCD); s != "ABCD" {
		t.Fatalf("string back %q", s)
	}
}

func TestWordOrders(t *testing.T) {
	// 0x41200000 is float32 10.0
	for o, want := range map[configs.Order][2]uint16{
		configs.ABCD: {0x4120, 0x0000}, configs.CDAB: {0x0000, 0x4120}, configs.BADC: {0x2041, 0x0000}, configs.DCBA: {0x0000, 0x2041},
	} {
		regs := make([]uint16, 2)
		encode(regs, configs.Float32, o, 10, "")
		if regs[0] != want[0] || regs[1] != want[1] {
			t.Errorf("%s: %04x want %04x", o, regs, want)
		}
	}
}

func TestEncodeAllocatesNothing(t *testing.T) {
	regs := make([]uint16, 4)
	if n := testing.AllocsPerRun(100, func() { encode(regs, configs.Float64, configs.CDAB, 1.25, "") }); n != 0 {
		t.Fatalf("encode allocates %v", n)
	}
}
