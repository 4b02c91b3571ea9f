package modbus

// getBit reads bit i of Modbus-packed bits (coils and discrete inputs: LSB
// of the first byte first).
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
