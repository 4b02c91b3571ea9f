package modbusserver

import (
	"math"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

func TestCodecRoundTrip(t *testing.T) {
	vals := map[tag.DataType][]float64{tag.Bool: {0, 1}, tag.Int16: {-32768, -1, 0, 32767}, tag.Uint16: {0, 65535}, tag.Int32: {math.MinInt32, -5, 123456}, tag.Uint32: {0, 4e9}, tag.Int64: {-1 << 53, 1 << 53, -3}, tag.Float32: {1.5, -1024.75, 1 << 40}, tag.Float64: {math.Pi, -1e300}}
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
	encode(regs, tag.String, configs.ABCD, 0, "ABCD")
	if regs[0] != 0x4142 || regs[1] != 0x4344 || regs[2] != 0 {
		t.Fatalf("string %04x", regs)
	}
	if _, s, _ := decode(regs, tag.String, configs.ABCD); s != "ABCD" {
		t.Fatalf("string back %q", s)
	}
}

func TestWordOrders(t *testing.T) {
	// 0x41200000 is float32 10.0
	for o, want := range map[configs.Order][2]uint16{
		configs.ABCD: {0x4120, 0x0000}, configs.CDAB: {0x0000, 0x4120}, configs.BADC: {0x2041, 0x0000}, configs.DCBA: {0x0000, 0x2041},
	} {
		regs := make([]uint16, 2)
		encode(regs, tag.Float32, o, 10, "")
		if regs[0] != want[0] || regs[1] != want[1] {
			t.Errorf("%s: %04x want %04x", o, regs, want)
		}
	}
}

func TestEncodeAllocatesNothing(t *testing.T) {
	regs := make([]uint16, 4)
	if n := testing.AllocsPerRun(100, func() { encode(regs, tag.Float64, configs.CDAB, 1.25, "") }); n != 0 {
		t.Fatalf("encode allocates %v", n)
	}
}
