package modbus

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/register"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/shm/tag"
)

func tcpDevice(name, addr string, tags ...configs.IOTag) configs.Device {
	return configs.Device{Name: name, Driver: configs.DriverModbusTCP, Address: addr,
		Poll: configs.Duration(5 * time.Millisecond), Timeout: configs.Duration(time.Second), Tags: tags}
}

func TestScannerReadsEveryTypeAndOrder(t *testing.T) {
	rec, addr := serveBank(t, 200)
	var tags []configs.IOTag
	want := map[string]float64{}
	types := []tag.DataType{tag.Int16, tag.Uint16, tag.Int32, tag.Uint32, tag.Int64, tag.Float32, tag.Float64}
	values := map[tag.DataType]float64{tag.Int16: -1234, tag.Uint16: 54321, tag.Int32: -123456789, tag.Uint32: 3000000000, tag.Int64: -(1 << 50) + 7, tag.Float32: 3.25, tag.Float64: -math.Pi}
	a := 0
	var regs [200]byte
	for _, typ := range types {
		for _, order := range orders {
			name := string(typ) + "_" + string(order)
			tags = append(tags, configs.IOTag{Name: name, Area: configs.AreaHolding, Address: a, Type: typ, Order: order})
			register.Encode(regs[2*a:], typ, order, values[typ])
			want[name] = values[typ]
			a += typ.Registers(0)
		}
	}
	// Scale and offset, a bit, a string, coils and discrete inputs.
	tags = append(tags,
		configs.IOTag{Name: "scaled", Area: configs.AreaInput, Address: 0, Type: tag.Int16, Scale: ptr(0.1), Offset: -40},
		configs.IOTag{Name: "bit3", Area: configs.AreaInput, Address: 1, Bit: ptr(3)},
		configs.IOTag{Name: "label", Area: configs.AreaInput, Address: 2, Type: tag.String, Length: 6},
		configs.IOTag{Name: "c5", Area: configs.AreaCoil, Address: 5},
		configs.IOTag{Name: "d9", Area: configs.AreaDiscrete, Address: 9})
	want["scaled"], want["bit3"], want["c5"], want["d9"] = 25.5-40, 1, 1, 1
	rec.Update(func(m *sim.Memory) {
		for i := 0; i < a; i++ {
			m.Holding[i] = uint16(regs[2*i])<<8 | uint16(regs[2*i+1])
		}
		m.Input[0], m.Input[1] = 255, 0b1000
		m.Input[2], m.Input[3], m.Input[4] = 'P'<<8|'U', 'M'<<8|'P', '7'<<8
		m.Coils[5], m.Discrete[9] = true, true
	})
	dev := tcpDevice("dev", addr, tags...)
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	waitFor(t, s, tab, "all tags good", allGood(tab, append(names, "label")...))
	for n, v := range want {
		if got := sample(tab, n); got.Value != v || got.Time == 0 {
			t.Errorf("%s = %v (time %d), want %v", n, got.Value, got.Time, v)
		}
	}
	if id, _ := tab.Lookup("label"); tab.Text[id] != "PUMP7" {
		t.Errorf("label = %q, want PUMP7", tab.Text[id])
	}
	// One poll is one request per group: holding 0+56 (>125 would split),
	// input 0+5, coil 5+1, discrete 9+1.
	if got := len(s.Reads()); got != 4 {
		t.Errorf("%d read requests per poll, want 4: %v", got, s.Reads())
	}
	rec.take()
	waitFor(t, s, tab, "two more polls", func() bool { return len(rec.take()) > 0 && s.Stats().Polls > 2 })
}

func TestScannerWritesOnChangeCoalesced(t *testing.T) {
	rec, addr := serveBank(t, 64)
	dev := tcpDevice("out", addr,
		configs.IOTag{Name: "sp", Area: configs.AreaHolding, Address: 0, Type: tag.Float32, Access: tag.Write},
		configs.IOTag{Name: "mode", Area: configs.AreaHolding, Address: 2, Access: tag.Write},
		configs.IOTag{Name: "raw", Area: configs.AreaHolding, Address: 3, Type: tag.Int16, Scale: ptr(0.5), Access: tag.Write},
		configs.IOTag{Name: "far", Area: configs.AreaHolding, Address: 20, Access: tag.Write},
		configs.IOTag{Name: "flag", Area: configs.AreaHolding, Address: 30, Bit: ptr(2)},
		configs.IOTag{Name: "q0", Area: configs.AreaCoil, Address: 0, Access: tag.Write},
		configs.IOTag{Name: "q1", Area: configs.AreaCoil, Address: 1, Access: tag.Write},
		configs.IOTag{Name: "q2", Area: configs.AreaCoil, Address: 2, Access: tag.Write},
		configs.IOTag{Name: "lim", Area: configs.AreaHolding, Address: 40, Access: tag.Write, Max: ptr(100.0)})
	tab := newTable(t, dev)
	rec.Update(func(m *sim.Memory) { m.Holding[30] = 0x8001 })
	s := startScanner(t, dev, tab)
	set := func(name string, v float64) {
		id, _ := tab.Lookup(name)
		tab.Samples[id] = tag.Sample{Value: v, Quality: tag.Good}
	}
	waitFor(t, s, tab, "flag read", allGood(tab, "flag"))
	if got := rec.take(); slices.ContainsFunc(got, func(r string) bool { return strings.HasPrefix(r, "write") }) {
		t.Fatalf("wrote before any output was set: %v", got)
	}
	set("sp", 12.5)
	set("mode", 3)
	set("raw", -7)
	set("q0", 1)
	set("q2", 1)
	set("lim", 1000)
	s.SetOutputs(tab.Samples, tab.Text)
	// The flag is read_write: changing it from what Latest delivered writes it.
	set("flag", 1)
	s.SetOutputs(tab.Samples, tab.Text)
	waitFor(t, s, tab, "outputs written", func() bool {
		m := rec.Snapshot()
		return m.Holding[40] == 100 && m.Holding[30] == 0x8005 && m.Coils[2]
	})
	m := rec.Snapshot()
	if f := sim.Float32(m.Holding, 0); f != 12.5 || m.Holding[2] != 3 || int16(m.Holding[3]) != -14 {
		t.Errorf("holding 0-3 = %v %d %d, want 12.5 3 -14", f, m.Holding[2], int16(m.Holding[3]))
	}
	if !m.Coils[0] || m.Coils[1] || !m.Coils[2] {
		t.Errorf("coils = %v, want [true false true]", m.Coils[:3])
	}
	writes := writesOf(rec.take())
	// sp, mode, raw in one request; q0..q2 in one (q1 was never set: split);
	// lim alone; the flag by read-modify-write (the sim has no FC22).
	for _, w := range []string{"write holding 0+4", "write coil 0+1", "write coil 2+1", "write holding 40+1", "write holding 30+1"} {
		if !slices.Contains(writes, w) {
			t.Errorf("writes %v lack %q", writes, w)
		}
	}
	// Nothing changes: nothing is written over further polls.
	polls := s.Stats().Polls
	waitFor(t, s, tab, "five polls", func() bool { return s.Stats().Polls > polls+5 })
	if w := writesOf(rec.take()); len(w) != 0 {
		t.Errorf("unchanged outputs rewritten: %v", w)
	}
	set("mode", 4)
	s.SetOutputs(tab.Samples, tab.Text)
	waitFor(t, s, tab, "mode written", func() bool { return rec.Snapshot().Holding[2] == 4 })
	if w := writesOf(rec.take()); !slices.Equal(w, []string{"write holding 2+1"}) {
		t.Errorf("changing one output wrote %v, want only holding 2+1", w)
	}
}

func writesOf(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if strings.HasPrefix(r, "write") {
			out = append(out, r)
		}
	}
	return out
}

func TestScannerWriteEvery(t *testing.T) {
	rec, addr := serveBank(t, 8)
	dev := tcpDevice("we", addr, configs.IOTag{Name: "o", Area: configs.AreaHolding, Address: 1, Access: tag.Write})
	dev.WriteEvery = configs.Duration(time.Millisecond)
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	id, _ := tab.Lookup("o")
	tab.Samples[id] = tag.Sample{Value: 9, Quality: tag.Good}
	s.SetOutputs(tab.Samples, tab.Text)
	n := 0
	waitFor(t, s, tab, "three periodic writes", func() bool { n += len(writesOf(rec.take())); return n >= 3 })
}

func TestScannerDeviceDownAndBack(t *testing.T) {
	rec := &recorder{Bank: sim.NewBank(4, 4, 4, 4)}
	srv, err := sim.Serve(t.Context(), rec, sim.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	dev := tcpDevice("flaky", srv.Addr(), configs.IOTag{Name: "v", Area: configs.AreaInput, Address: 0})
	dev.Timeout = configs.Duration(200 * time.Millisecond)
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab, WithBackoff(5*time.Millisecond, 20*time.Millisecond))
	rec.Update(func(m *sim.Memory) { m.Input[0] = 42 })
	waitFor(t, s, tab, "good", allGood(tab, "v"))
	srv.Close()
	waitFor(t, s, tab, "bad after the server went away", func() bool { return sample(tab, "v").Quality == tag.Bad })
	if r := sample(tab, "v").Reason; r != tag.NotConnected && r != tag.CommFailure {
		t.Errorf("reason %v, want not connected or communication failure", r)
	}
	if v := sample(tab, "v").Value; v != 42 {
		t.Errorf("bad sample lost its last value: %v", v)
	}
	srv2, err := sim.Serve(t.Context(), rec, sim.Config{Listen: srv.Addr()})
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", srv.Addr(), err)
	}
	defer srv2.Close()
	waitFor(t, s, tab, "good again after reconnect", allGood(tab, "v"))
	if st := s.Stats(); st.Reconnects == 0 || st.Errors == 0 || st.LastError == nil {
		t.Errorf("stats %+v: want reconnects and errors counted", st)
	}
}

func TestNewScannerConfigErrors(t *testing.T) {
	dev := configs.Device{Name: "d", Driver: "profibus", Tags: []configs.IOTag{
		{Name: "a", Area: configs.AreaInput, Address: 0, Access: tag.Write},
		{Name: "b", Area: configs.AreaDiscrete, Address: 0, Type: tag.Int16},
		{Name: "c", Area: configs.AreaHolding, Address: 65535, Type: tag.Float32},
		{Name: "d", Area: configs.AreaHolding, Address: 0, Type: tag.String},
		{Name: "e", Area: configs.AreaHolding, Address: 0, Bit: ptr(16)},
		{Name: "f", Area: configs.AreaHolding, Address: 0, Scale: ptr(0.0)},
	}}
	tab := newTable(t, dev)
	_, err := NewScanner(dev, tab)
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v, want ErrConfig", err)
	}
	dev.Driver, dev.Address = configs.DriverModbusTCP, "127.0.0.1:1"
	_, err = NewScanner(dev, tab)
	var es configs.Errors
	if !errors.As(err, &es) || len(es) != 6 {
		t.Fatalf("err = %v, want 6 tag errors", err)
	}
}

// TestReadWriteNotWrittenBack runs cycles that read a read_write register
// and hand the table back unchanged: nothing is written until the cycle
// changes the value.
func TestReadWriteNotWrittenBack(t *testing.T) {
	rec, addr := serveBank(t, 8)
	rec.Update(func(m *sim.Memory) { m.Holding[3] = 7 })
	dev := tcpDevice("rw", addr, configs.IOTag{Name: "sp", Area: configs.AreaHolding, Address: 3})
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	s.SetOutputs(tab.Samples, tab.Text) // before any Latest: table holds 0
	waitFor(t, s, tab, "sp read", allGood(tab, "sp"))
	polls := s.Stats().Polls
	waitFor(t, s, tab, "cycles with the value handed back", func() bool {
		s.SetOutputs(tab.Samples, tab.Text)
		return s.Stats().Polls > polls+5
	})
	if w := writesOf(rec.take()); len(w) != 0 || rec.Snapshot().Holding[3] != 7 {
		t.Fatalf("read value written back: %v", w)
	}
	id, _ := tab.Lookup("sp")
	tab.Samples[id].Value = 9
	s.SetOutputs(tab.Samples, tab.Text)
	waitFor(t, s, tab, "changed value written", func() bool { return rec.Snapshot().Holding[3] == 9 })
}

// TestOutputsRewrittenAfterReconnect restarts the device (a new server with
// zeroed memory on the same port): the unchanged outputs are written again.
func TestOutputsRewrittenAfterReconnect(t *testing.T) {
	bank := sim.NewBank(4, 4, 4, 4)
	srv, err := sim.Serve(t.Context(), bank, sim.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	dev := tcpDevice("re", srv.Addr(), configs.IOTag{Name: "o", Area: configs.AreaHolding, Address: 1, Access: tag.Write},
		configs.IOTag{Name: "i", Area: configs.AreaInput, Address: 0})
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab, WithBackoff(5*time.Millisecond, 20*time.Millisecond))
	id, _ := tab.Lookup("o")
	tab.Samples[id] = tag.Sample{Value: 5, Quality: tag.Good}
	s.SetOutputs(tab.Samples, tab.Text)
	waitFor(t, s, tab, "output written", func() bool { return bank.Snapshot().Holding[1] == 5 })
	srv.Close()
	waitFor(t, s, tab, "device lost", func() bool { return sample(tab, "i").Quality == tag.Bad })
	restarted := sim.NewBank(4, 4, 4, 4)
	srv2, err := sim.Serve(t.Context(), restarted, sim.Config{Listen: srv.Addr()})
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", srv.Addr(), err)
	}
	defer srv2.Close()
	waitFor(t, s, tab, "output written again after reconnect", func() bool { return restarted.Snapshot().Holding[1] == 5 })
}

func TestBackoffDoublesToMaxWithJitter(t *testing.T) {
	dev := tcpDevice("b", "127.0.0.1:1", configs.IOTag{Name: "v", Area: configs.AreaInput, Address: 0})
	s, err := NewScanner(dev, newTable(t, dev), WithBackoff(100*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		s.failures = n + 1
		for i := 0; i < 50; i++ {
			d, w := s.backoff(), want*time.Millisecond
			if d > w || d < w*4/5 {
				t.Fatalf("failure %d: backoff %v outside [%v, %v]", n+1, d, w*4/5, w)
			}
		}
	}
}
