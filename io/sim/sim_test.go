package sim

import (
	"context"
	"errors"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
)

func TestTankSettlesAtEquilibrium(t *testing.T) {
	tank := NewTank()
	b := tank.NewBank()
	b.Update(func(m *Memory) {
		m.Coils[0] = true
		PutFloat32(m.Holding, 0, 50)
		for i := 0; i < 20*3600; i++ { // 20 h (16 time constants) in 1 s steps
			tank.Step(time.Second, m)
		}
	})
	m := b.Snapshot()
	// 5 m3/h in = 8 * 0.5 * sqrt(L) out  =>  L = 1.5625 m.
	if l := Float32(m.Input, 0); math.Abs(l-1.5625) > 1e-3 {
		t.Errorf("level %v, want 1.5625", l)
	}
	if in, out := Float32(m.Input, 4), Float32(m.Input, 2); math.Abs(in-5) > 1e-6 || math.Abs(out-5) > 1e-3 {
		t.Errorf("inflow %v outflow %v, want 5 and 5", in, out)
	}
	// Valve shut, pump on full: fills to the high switch and clamps at 3 m.
	b.Update(func(m *Memory) {
		PutFloat32(m.Holding, 0, 100)
		PutFloat32(m.Holding, 2, 0)
		for i := 0; i < 3600; i++ {
			tank.Step(time.Second, m)
		}
	})
	m = b.Snapshot()
	if l := Float32(m.Input, 0); l != 3 || !m.Discrete[0] || m.Discrete[1] {
		t.Errorf("full tank: level %v high %v low %v", l, m.Discrete[0], m.Discrete[1])
	}
	// Pump off, outflow open: drains to the low switch.
	b.Update(func(m *Memory) {
		m.Coils[0] = false
		PutFloat32(m.Holding, 2, 100)
		for i := 0; i < 10*3600; i++ {
			tank.Step(time.Second, m)
		}
	})
	if m := b.Snapshot(); !m.Discrete[1] || m.Discrete[0] {
		t.Errorf("drained tank: level %v, low switch %v", Float32(m.Input, 0), m.Discrete[1])
	}
}

func TestHeaterDeadTimeAndGain(t *testing.T) {
	h := NewHeater()
	b := h.NewBank()
	var temps []float64
	b.Update(func(m *Memory) {
		m.Coils[0] = true
		PutFloat32(m.Holding, 0, 50)
		for i := 0; i < 2000; i++ { // 2000 s in 1 s steps
			h.Step(time.Second, m)
			temps = append(temps, Float32(m.Input, 0))
		}
	})
	if temps[8] != 20 {
		t.Errorf("temperature moved inside the dead time: %v after 9 s", temps[8])
	}
	if temps[15] <= 20 {
		t.Errorf("temperature did not rise after the dead time: %v after 16 s", temps[15])
	}
	// One time constant after the dead time: 63 % of the 40 degC step.
	if v := temps[129]; math.Abs(v-(20+40*(1-math.Exp(-1)))) > 1 {
		t.Errorf("after 130 s: %v, want about %v", v, 20+40*(1-math.Exp(-1)))
	}
	if v := temps[len(temps)-1]; math.Abs(v-60) > 0.1 {
		t.Errorf("steady state %v, want 60 (20 + 0.8 * 50)", v)
	}
	// Disabled: cools back towards ambient.
	b.Update(func(m *Memory) {
		m.Coils[0] = false
		for i := 0; i < 3000; i++ {
			h.Step(time.Second, m)
		}
	})
	if v := Float32(b.Snapshot().Input, 0); math.Abs(v-20) > 0.1 {
		t.Errorf("disabled heater at %v, want 20", v)
	}
}

func TestConveyorCountsAndStops(t *testing.T) {
	c := NewConveyor()
	b := c.NewBank()
	sawIn, sawOut := false, false
	b.Update(func(m *Memory) {
		m.Coils[0] = true
		for i := 0; i < 600; i++ { // 60 s at 0.1 s
			c.Step(100*time.Millisecond, m)
			sawIn = sawIn || m.Discrete[0]
			sawOut = sawOut || m.Discrete[1]
		}
	})
	m := b.Snapshot()
	// 30 m of belt travel, an item every 1.5 m, each needs 5.3 m to leave.
	if m.Input[0] < 15 || m.Input[0] > 17 {
		t.Errorf("delivered %d items in 60 s, want about 16", m.Input[0])
	}
	if !sawIn || !sawOut || m.Input[1] == 0 {
		t.Errorf("eyes in %v out %v, on belt %d", sawIn, sawOut, m.Input[1])
	}
	count := m.Input[0]
	b.Update(func(m *Memory) {
		m.Coils[8] = true // e-stop pressed
		for i := 0; i < 600; i++ {
			c.Step(100*time.Millisecond, m)
		}
	})
	if m := b.Snapshot(); m.Input[0] != count || !m.Discrete[2] {
		t.Errorf("belt moved under e-stop: %d -> %d, e-stop input %v", count, m.Input[0], m.Discrete[2])
	}
	b.Update(func(m *Memory) {
		m.Coils[8], m.Coils[1] = false, true // reverse: items fall off the infeed, none counted
		for i := 0; i < 600; i++ {
			c.Step(100*time.Millisecond, m)
		}
	})
	if m := b.Snapshot(); m.Input[0] != count || m.Input[1] != 0 {
		t.Errorf("reverse: count %d (want %d), on belt %d (want 0)", m.Input[0], count, m.Input[1])
	}
}

func TestBankRejectsOutOfRange(t *testing.T) {
	b := NewBank(1, 1, 2, 2)
	if _, err := b.HandleHoldingRegisters(&mb.HoldingRegistersRequest{Addr: 1, Quantity: 2}); !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Errorf("read past the end: %v", err)
	}
	if _, err := b.HandleCoils(&mb.CoilsRequest{Addr: 0, Quantity: 1, IsWrite: true, Args: []bool{true, false}}); !errors.Is(err, mb.ErrIllegalDataValue) {
		t.Errorf("write with wrong arg count: %v", err)
	}
	if _, err := New("boiler"); err == nil {
		t.Error("unknown model accepted")
	}
}

// mbpoll runs Debian's mbpoll once against addr and returns its value lines.
func mbpoll(t *testing.T, addr string, args ...string) []string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	all := append([]string{"-a", "1", "-1", "-0", "-p", port}, args[:len(args)-0]...)
	// Values to write come after the host.
	var write []string
	for i, a := range all {
		if a == "--" {
			write, all = all[i+1:], all[:i]
			break
		}
	}
	all = append(append(all, host), write...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mbpoll", all...).CombinedOutput()
	if err != nil {
		t.Fatalf("mbpoll %v: %v\n%s", all, err, out)
	}
	var vals []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "[") {
			_, v, _ := strings.Cut(l, "]:")
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return vals
}

func floats(t *testing.T, vals []string) []float64 {
	t.Helper()
	out := make([]float64, len(vals))
	for i, v := range vals {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("mbpoll value %q: %v", v, err)
		}
		out[i] = f
	}
	return out
}

// TestMbpollReadsSimulators checks the documented register maps with an
// independent client: Debian's mbpoll.
func TestMbpollReadsSimulators(t *testing.T) {
	if _, err := exec.LookPath("mbpoll"); err != nil {
		t.Skip("skipping: mbpoll not installed (Debian package mbpoll)")
	}
	ctx := t.Context()
	tank, err := Start(ctx, NewTank(), Config{Listen: "127.0.0.1:0", Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tank.Close()
	// -0: zero-based addresses; -t 3:float input registers, -B big-endian words.
	if v := floats(t, mbpoll(t, tank.Addr(), "-t", "3:float", "-B", "-r", "0", "-c", "3")); v[0] != 1 || v[1] != 8*0.5 || v[2] != 0 {
		t.Errorf("tank inputs level/outflow/inflow = %v, want [1 4 0]", v)
	}
	if v := floats(t, mbpoll(t, tank.Addr(), "-t", "4:float", "-B", "-r", "0", "-c", "2")); v[0] != 0 || v[1] != 50 {
		t.Errorf("tank holding valves = %v, want [0 50]", v)
	}
	mbpoll(t, tank.Addr(), "-t", "0", "-r", "0", "--", "1")
	mbpoll(t, tank.Addr(), "-t", "4:float", "-B", "-r", "0", "--", "100")
	tank.Step(time.Hour)
	if v := floats(t, mbpoll(t, tank.Addr(), "-t", "3:float", "-B", "-r", "0", "-c", "3")); v[0] <= 1 || v[2] != 10 {
		t.Errorf("after an hour of filling: level/outflow/inflow %v", v)
	}

	heater, err := Start(ctx, NewHeater(), Config{Listen: "127.0.0.1:0", Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	defer heater.Close()
	mbpoll(t, heater.Addr(), "-t", "0", "-r", "0", "--", "1")
	mbpoll(t, heater.Addr(), "-t", "4:float", "-B", "-r", "0", "--", "100")
	for i := 0; i < 100; i++ {
		heater.Step(10 * time.Second)
	}
	if v := floats(t, mbpoll(t, heater.Addr(), "-t", "3:float", "-B", "-r", "0", "-c", "2")); math.Abs(v[0]-100) > 0.5 || v[1] != 100 {
		t.Errorf("heater temperature/power = %v, want [100 100]", v)
	}

	conv, err := Start(ctx, NewConveyor(), Config{Listen: "127.0.0.1:0", Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conv.Close()
	mbpoll(t, conv.Addr(), "-t", "0", "-r", "0", "--", "1")
	for i := 0; i < 200; i++ {
		conv.Step(100 * time.Millisecond)
	}
	if v := mbpoll(t, conv.Addr(), "-t", "3", "-r", "0", "-c", "2"); v[0] == "0" || v[1] == "0" {
		t.Errorf("conveyor count/on belt = %v after 20 s running", v)
	}
	mbpoll(t, conv.Addr(), "-t", "0", "-r", "8", "--", "1")
	conv.Step(time.Millisecond)
	if v := mbpoll(t, conv.Addr(), "-t", "1", "-r", "0", "-c", "3"); v[2] != "1" {
		t.Errorf("conveyor discrete inputs %v, want e-stop (third) on", v)
	}
}

// TestTickerAdvancesInSimTime runs a real ticker at high speed and waits
// (bounded) for the tank level to move.
func TestTickerAdvancesInSimTime(t *testing.T) {
	srv, err := Start(t.Context(), NewTank(), Config{Listen: "127.0.0.1:0", Speed: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Bank().Update(func(m *Memory) { m.Coils[0] = true; PutFloat32(m.Holding, 0, 100) })
	deadline := time.Now().Add(10 * time.Second)
	for Float32(srv.Bank().Snapshot().Input, 0) <= 1.01 {
		if time.Now().After(deadline) {
			t.Fatal("level did not rise within 10 s at speed 1000")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
