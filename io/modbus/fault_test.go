package modbus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	gb "github.com/goburrow/modbus"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/modbustest"
	"github.com/mkrt/mkrt/shm/tag"
)

// TestFaultyAnswers polls a raw server that answers with crafted frames:
// every fault gives a typed error and bad quality, never a panic.
func TestFaultyAnswers(t *testing.T) {
	good := func(req []byte) []byte { return modbustest.Registers(req, []uint16{1, 2}) }
	cases := []struct {
		name   string
		reply  func(req []byte) modbustest.Reply
		want   error
		reason tag.Reason
	}{
		{"exception", func(req []byte) modbustest.Reply {
			return modbustest.Reply{Bytes: modbustest.Frame(req, 0x83, 0x02)}
		}, &ExceptionError{Function: 3, Code: 2}, tag.Exception},
		{"wrong transaction id", func(req []byte) modbustest.Reply {
			f := good(req)
			f[1]++
			return modbustest.Reply{Bytes: f}
		}, ErrTransactionID, tag.BadFrame},
		{"truncated then closed", func(req []byte) modbustest.Reply {
			return modbustest.Reply{Bytes: good(req)[:9], Close: true}
		}, ErrBadFrame, tag.BadFrame},
		{"truncated then silent", func(req []byte) modbustest.Reply {
			return modbustest.Reply{Bytes: good(req)[:10]}
		}, ErrBadFrame, tag.BadFrame},
		{"byte count short", func(req []byte) modbustest.Reply {
			return modbustest.Reply{Bytes: modbustest.Frame(req, 0x03, 2, 0, 1)}
		}, ErrBadFrame, tag.BadFrame},
		{"byte count disagrees with length", func(req []byte) modbustest.Reply {
			return modbustest.Reply{Bytes: modbustest.Frame(req, 0x03, 9, 0, 1, 0, 2)}
		}, ErrBadFrame, tag.BadFrame},
		{"MBAP length zero", func(req []byte) modbustest.Reply {
			f := good(req)
			f[4], f[5] = 0, 0
			return modbustest.Reply{Bytes: f}
		}, ErrBadFrame, tag.BadFrame},
		{"MBAP length huge", func(req []byte) modbustest.Reply {
			f := good(req)
			binary.BigEndian.PutUint16(f[4:], 0xFFFF)
			return modbustest.Reply{Bytes: f}
		}, ErrBadFrame, tag.BadFrame},
		{"protocol id", func(req []byte) modbustest.Reply {
			f := good(req)
			f[3] = 1
			return modbustest.Reply{Bytes: f}
		}, ErrBadFrame, tag.BadFrame},
		{"wrong function", func(req []byte) modbustest.Reply {
			f := good(req)
			f[7] = 4
			return modbustest.Reply{Bytes: f}
		}, ErrBadFrame, tag.BadFrame},
		{"exception too long", func(req []byte) modbustest.Reply {
			return modbustest.Reply{Bytes: modbustest.Frame(req, 0x83, 0x02, 0x00)}
		}, ErrBadFrame, tag.BadFrame},
		{"wrong unit id", func(req []byte) modbustest.Reply {
			f := good(req)
			f[6]++
			return modbustest.Reply{Bytes: f}
		}, ErrBadFrame, tag.BadFrame},
		{"trailing bytes", func(req []byte) modbustest.Reply {
			return modbustest.Reply{Bytes: append(good(req), 0xde, 0xad)}
		}, ErrBadFrame, tag.BadFrame},
		{"silent", func(req []byte) modbustest.Reply { return modbustest.Reply{} }, ErrTimeout, tag.Timeout},
		{"closed without answer", func(req []byte) modbustest.Reply { return modbustest.Reply{Close: true} }, ErrComm, tag.CommFailure},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, err := modbustest.NewRawServer(c.reply)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			dev := tcpDevice("raw", srv.Addr(), configs.IOTag{Name: "r", Area: configs.AreaHolding, Address: 0, Type: tag.Uint32})
			dev.Timeout = configs.Duration(100 * time.Millisecond)
			tab := newTable(t, dev)
			s := startScanner(t, dev, tab, WithBackoff(10*time.Millisecond, 10*time.Millisecond))
			waitFor(t, s, tab, "an error recorded", func() bool { return s.Stats().LastError != nil })
			waitFor(t, s, tab, "bad quality, reason "+c.reason.String(), func() bool {
				smp := sample(tab, "r")
				return smp.Quality == tag.Bad && smp.Reason == c.reason
			})
			st := s.Stats()
			var ex *ExceptionError
			if want, ok := c.want.(*ExceptionError); ok {
				if !errors.As(st.LastError, &ex) || *ex != *want {
					t.Errorf("error %v, want %v", st.LastError, want)
				}
			} else if !errors.Is(st.LastError, c.want) {
				t.Errorf("error %v, want %v", st.LastError, c.want)
			}
			var re *RequestError
			if !errors.As(st.LastError, &re) || re.Device != "raw" {
				t.Errorf("error %v is not a *RequestError of device raw", st.LastError)
			}
		})
	}
}

// TestWriteFunctionCodes checks which function each output write uses.
func TestWriteFunctionCodes(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv, err := modbustest.NewRawServer(func(req []byte) modbustest.Reply {
		fc := req[7]
		if fc == 3 || fc == 4 || fc == 1 || fc == 2 {
			qty := int(binary.BigEndian.Uint16(req[10:]))
			if fc <= 2 {
				return modbustest.Reply{Bytes: modbustest.Frame(req, append([]byte{fc, byte((qty + 7) / 8)}, make([]byte, (qty+7)/8)...)...)}
			}
			return modbustest.Reply{Bytes: modbustest.Registers(req, nil)}
		}
		mu.Lock()
		got = append(got, string(rune('0'+fc/10))+string(rune('0'+fc%10)))
		mu.Unlock()
		return modbustest.Reply{Bytes: modbustest.Frame(req, req[7:12]...)} // echo of address and value/quantity
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dev := tcpDevice("fc", srv.Addr(),
		configs.IOTag{Name: "r1", Area: configs.AreaHolding, Address: 0, Access: tag.Write},
		configs.IOTag{Name: "r2", Area: configs.AreaHolding, Address: 10, Type: tag.Float32, Access: tag.Write},
		configs.IOTag{Name: "c1", Area: configs.AreaCoil, Address: 0, Access: tag.Write},
		configs.IOTag{Name: "c2", Area: configs.AreaCoil, Address: 10, Access: tag.Write},
		configs.IOTag{Name: "c3", Area: configs.AreaCoil, Address: 11, Access: tag.Write},
		configs.IOTag{Name: "b", Area: configs.AreaHolding, Address: 20, Bit: ptr(4)})
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	waitFor(t, s, tab, "b read", allGood(tab, "b"))
	for _, n := range []string{"r1", "r2", "c1", "c2", "c3", "b"} {
		id, _ := tab.Lookup(n)
		tab.Samples[id] = tag.Sample{Value: 1, Quality: tag.Good}
	}
	s.SetOutputs(tab.Samples, tab.Text)
	waitFor(t, s, tab, "four writes", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 5 })
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got)
	if want := []string{"05", "06", "15", "16", "22"}; !slices.Equal(got, want) {
		t.Errorf("write functions %v, want %v", got, want)
	}
}

// pipeRW is a canned answer for the transport: reads come from r.
type pipeRW struct{ r io.Reader }

func (p pipeRW) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipeRW) Write(b []byte) (int, error) { return len(b), nil }
func (p pipeRW) Close() error                { return nil }

// FuzzAnswers feeds arbitrary answers to the TCP and RTU transports and
// goburrow's decoding: nothing may panic, and an accepted answer has the
// length the request asked for.
func FuzzAnswers(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2}, false)
	f.Add([]byte{1, 3, 4, 0, 1, 0, 2, 0x2a, 0x32}, true)
	f.Add([]byte{1, 0x83, 2, 0xc0, 0xf1}, true)
	f.Add([]byte{0, 1, 0, 0, 0, 3, 1, 0x83, 2}, false)
	f.Fuzz(func(t *testing.T, answer []byte, rtu bool) {
		dev := configs.Device{Driver: configs.DriverModbusTCP, UnitID: 1}
		if rtu {
			dev.Driver = configs.DriverModbusRTUOverTCP
		}
		pk := packager(&dev)
		tr := &transport{rw: pipeRW{bytes.NewReader(answer)}, rtu: rtu}
		c := gb.NewClient2(pk, tr)
		res, err := c.ReadHoldingRegisters(0, 2)
		if err == nil && len(res) != 4 {
			t.Logf("accepted %d data bytes for 2 registers (the scanner rejects it)", len(res))
		}
		_ = classify(err)
	})
}

// TestBadWithinOneTimeout: a device that stops answering turns bad after
// its first timed-out request, before the retries are spent.
func TestBadWithinOneTimeout(t *testing.T) {
	var mu sync.Mutex
	answered := 0
	srv, err := modbustest.NewRawServer(func(req []byte) modbustest.Reply {
		mu.Lock()
		defer mu.Unlock()
		if answered < 3 {
			answered++
			return modbustest.Reply{Bytes: modbustest.Registers(req, []uint16{7})}
		}
		return modbustest.Reply{} // silent from now on
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dev := tcpDevice("mute", srv.Addr(), configs.IOTag{Name: "v", Area: configs.AreaHolding, Address: 0})
	dev.Timeout, dev.Retries = configs.Duration(300*time.Millisecond), 5
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	waitFor(t, s, tab, "good", allGood(tab, "v"))
	waitFor(t, s, tab, "bad", func() bool { return sample(tab, "v").Quality == tag.Bad })
	if st := s.Stats(); st.Timeouts > 2 || sample(tab, "v").Reason != tag.Timeout {
		t.Errorf("bad only after %d timeouts (reason %v); want after the first", st.Timeouts, sample(tab, "v").Reason)
	}
}

// TestOutOfRangeIsUncertain: a value outside the tag's min/max is delivered
// with uncertain quality.
func TestOutOfRangeIsUncertain(t *testing.T) {
	srv, err := modbustest.NewRawServer(func(req []byte) modbustest.Reply {
		return modbustest.Reply{Bytes: modbustest.Registers(req, []uint16{20, 5})}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dev := tcpDevice("range", srv.Addr(), configs.IOTag{Name: "hi", Area: configs.AreaHolding, Address: 0, Max: ptr(10.0)},
		configs.IOTag{Name: "ok", Area: configs.AreaHolding, Address: 1, Max: ptr(10.0)})
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	waitFor(t, s, tab, "ok good", allGood(tab, "ok"))
	if smp := sample(tab, "hi"); smp.Quality != tag.Uncertain || smp.Reason != tag.OutOfRange || smp.Value != 20 {
		t.Errorf("hi = %+v, want 20 uncertain out of range", smp)
	}
}
