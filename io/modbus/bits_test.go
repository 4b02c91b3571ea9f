package modbus

import "testing"

func TestPackedBits(t *testing.T) {
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
