package sim

import (
	"context"
	"math"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
)

func TestPumpsFillAndEmpty(t *testing.T) {
	p := NewPumps(3)
	p.Period = 0 // a steady 45 m³/h
	b := p.NewBank()
	level := func() float64 { return Float32(b.Snapshot().Input, 0) }
	b.Update(func(m *Memory) { p.Step(10*time.Minute, m) })
	// 45 m³/h for 10 min into 2 m²: 3.75 m more, clamped at 4 m.
	if l := level(); l != 4 || !b.Snapshot().Discrete[3] {
		t.Fatalf("no pump running: level %v, high switch %v; want 4 m and on", l, b.Snapshot().Discrete[3])
	}
	p.Failed[2] = true
	b.Update(func(m *Memory) {
		m.Coils[0], m.Coils[2] = true, true
		p.Step(time.Minute, m)
	})
	m := b.Snapshot()
	// one pump of 60 against 45 in: -15 m³/h for 1 min over 2 m²
	if l := level(); math.Abs(l-(4-15.0/60/2)) > 1e-6 {
		t.Errorf("one pump for a minute: level %v, want %v", l, 4-15.0/60/2)
	}
	if !m.Discrete[0] || m.Discrete[1] || m.Discrete[2] || Float32(m.Input, 4) != 60 || Float32(m.Input, 8) != 0 {
		t.Errorf("feedback %v, flows %v %v; want pump 1 running at 60, failed pump 3 not", m.Discrete, Float32(m.Input, 4), Float32(m.Input, 8))
	}
	b.Update(func(m *Memory) { m.Coils[1] = true; p.Step(time.Hour, m) })
	if l := level(); l != 0 {
		t.Errorf("two pumps for an hour: level %v, want an empty well", l)
	}
	b.Update(p.Safe)
	if m := b.Snapshot(); m.Coils[0] || m.Coils[1] {
		t.Errorf("safe state left a pump on: %v", m.Coils)
	}
}

func TestBlendingFollowsTheValve(t *testing.T) {
	bl := NewBlending()
	b := bl.NewBank()
	b.Update(func(m *Memory) {
		PutFloat32(m.Holding, 0, 20)
		bl.Step(10*time.Second, m) // 10 time constants
	})
	m := b.Snapshot()
	if a := Float32(m.Input, 2); math.Abs(a-20) > 0.01 {
		t.Errorf("additive %v m³/h at 20 %% open, want 20", a)
	}
	if q := Float32(m.Input, 0); math.Abs(q-bl.Main(10*time.Second)) > 0.01 || q < 360 || q > 440 {
		t.Errorf("main flow %v, want 400 ± 40", q)
	}
	b.Update(bl.Safe)
	if v := Float32(b.Snapshot().Holding, 0); v != 0 {
		t.Errorf("safe valve %v, want 0", v)
	}
}

// The pump station answers a Modbus client at its documented addresses.
func TestPumpsOverModbus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := Start(ctx, NewPumps(2), Config{Listen: "127.0.0.1:0", Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := mb.NewClient(&mb.ClientConfiguration{URL: "tcp://" + srv.Addr(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteCoil(1, true); err != nil {
		t.Fatal(err)
	}
	srv.Step(time.Second)
	run, err := c.ReadDiscreteInputs(0, 3)
	if err != nil {
		t.Fatal(err)
	}
	flow, err := c.ReadFloat32(6, mb.INPUT_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	if run[0] || !run[1] || flow != 60 {
		t.Errorf("running %v, pump 2 flow %v; want pump 2 alone at 60", run, flow)
	}
}
