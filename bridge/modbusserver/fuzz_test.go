package modbusserver_test

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
)

func mbap(unit, fc byte, pdu ...byte) []byte {
	b := make([]byte, 8, 8+len(pdu))
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[4:], uint16(2+len(pdu)))
	b[6], b[7] = unit, fc
	return append(b, pdu...)
}

// FuzzMBAP sends raw MBAP frames to the running server through a real
// socket: whatever arrives, the server answers with whole MBAP frames or
// closes the connection, never crashes, never writes an out-of-range
// value, and keeps serving other clients. The corpus is under
// testdata/fuzz/FuzzMBAP.
func FuzzMBAP(f *testing.F) {
	f.Add(mbap(1, 3, 0, 0, 0, 6))
	f.Add(mbap(1, 4, 0, 0, 0, 2))
	f.Add(mbap(1, 16, 0, 0, 0, 2, 4, 0x43, 0xfa, 0, 0))
	f.Add(mbap(1, 16, 0, 0, 0, 2, 4, 0x42, 0x48, 0, 0))
	f.Add(mbap(1, 6, 0, 5, 0x17, 0x70))
	f.Add(mbap(1, 15, 0, 0, 0, 1, 1, 1))
	f.Add(mbap(1, 5, 0, 0, 0xff, 0))
	f.Add(mbap(1, 16, 0xff, 0xff, 0, 0x7b, 0xf6))
	f.Add(mbap(0, 0x2b, 0x0e, 1, 0))
	f.Add([]byte{0, 1, 0, 0, 0xff, 0xff, 1, 3})
	f.Add(mbap(1, 0x2b, 0x0e, 4, 2))
	f.Add(mbap(1, 0x2b, 0x0e, 9, 0))
	f.Add(mbap(1, 3, 0, 0, 0, 126))
	f.Add(mbap(1, 1, 0, 0, 0x07, 0xd1))
	f.Add(mbap(1, 15, 0, 0, 0x07, 0xb1, 1, 0))
	f.Add(mbap(1, 16, 0, 0, 0, 4, 8, 0x42, 0x48, 0, 0, 0, 9, 0, 0))
	f.Add(append(mbap(1, 3, 0, 0, 0, 1), mbap(1, 6, 0, 5, 0, 1)...))
	f.Add([]byte{})
	r := start(f, 0, true)
	c := client(f, r.addr)
	c.SetUnitId(1)
	f.Fuzz(func(t *testing.T, frame []byte) {
		conn, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(50 * time.Millisecond))
		conn.Write(frame)
		got, _ := io.ReadAll(conn)
		conn.Close()
		// whatever comes back is whole MBAP frames
		for len(got) > 0 {
			if len(got) < 8 || got[2] != 0 || got[3] != 0 || int(binary.BigEndian.Uint16(got[4:]))+6 > len(got) {
				t.Fatalf("answer to %x is no MBAP frame: %x", frame, got)
			}
			got = got[6+int(binary.BigEndian.Uint16(got[4:])):]
		}
		if _, err := c.ReadRegisters(0, 6, modbus.HOLDING_REGISTER); err != nil {
			t.Fatalf("server stopped serving after %x: %v", frame, err)
		}
		if v := r.plant.Value(2).Value; v < 0 || v > 100 {
			t.Fatalf("setpoint %v outside its limits after %x", v, frame)
		}
	})
}
