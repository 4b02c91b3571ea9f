package register_test

import (
	"fmt"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/register"
	"github.com/mkrt/mkrt/shm/tag"
)

// A float32 and a string in each order, as registers.
func Example() {
	for _, o := range []configs.Order{configs.ABCD, configs.CDAB, configs.BADC, configs.DCBA} {
		num, text := make([]byte, 4), make([]byte, 6)
		register.Encode(num, tag.Float32, o, 1234.5678)
		register.EncodeString(text, o, "PUMP-7")
		v, _ := register.Decode(num, tag.Float32, o)
		fmt.Printf("%s  % x  % x  %.4f %q\n", o, num, text, v, register.DecodeString(text, o, 6, ""))
	}
	// Output:
	// ABCD  44 9a 52 2b  50 55 4d 50 2d 37  1234.5677 "PUMP-7"
	// CDAB  52 2b 44 9a  50 55 4d 50 2d 37  1234.5677 "PUMP-7"
	// BADC  9a 44 2b 52  55 50 50 4d 37 2d  1234.5677 "PUMP-7"
	// DCBA  2b 52 9a 44  55 50 50 4d 37 2d  1234.5677 "PUMP-7"
}
