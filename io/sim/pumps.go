package sim

import (
	"math"
	"time"
)

// Pumps is a wet well of a sewage or storm-water pump station: a varying
// inflow fills it, identical pumps empty it.
//
// Register map (default 127.0.0.1:15050; N pumps, 2 by default):
//
//	coil     i (0..N-1)    pump i run command (default off)
//	discrete i (0..N-1)    pump i running (feedback: commanded and not failed)
//	discrete N             high-level switch: level >= HighSwitch
//	input    0-1  float32  level, m
//	input    2-3  float32  inflow, m³/h
//	input    4+2i float32  pump i flow, m³/h
//
// Safe values on comm loss: every pump stopped (the high-level switch is the
// station's own backup).
type Pumps struct {
	Area        float64       // well cross-section, m²
	Depth       float64       // m; the level is clamped to 0..Depth
	PumpFlow    float64       // m³/h of one running pump
	InflowMean  float64       // m³/h
	InflowSwing float64       // m³/h: the inflow is mean + swing·sin(2πt/period)
	Period      time.Duration // of the inflow's swing
	HighSwitch  float64       // m
	Level       float64       // m, the state
	Failed      []bool        // pump i does not run when commanded

	now time.Duration // sim time
}

// NewPumps returns the documented station with n pumps: a 2 m² well, 4 m
// deep, starting 1 m full; pumps of 60 m³/h; an inflow of 45 ± 35 m³/h
// over a 10-minute period, so that one pump sometimes cannot keep up.
func NewPumps(n int) *Pumps {
	return &Pumps{Area: 2, Depth: 4, PumpFlow: 60, InflowMean: 45, InflowSwing: 35,
		Period: 10 * time.Minute, HighSwitch: 3.5, Level: 1, Failed: make([]bool, n)}
}

func (*Pumps) Name() string          { return "pumps" }
func (*Pumps) DefaultListen() string { return "127.0.0.1:15050" }

// NewBank returns the station's areas, every pump stopped.
func (p *Pumps) NewBank() *Bank {
	n := len(p.Failed)
	b := NewBank(n, n+1, 0, 4+2*n)
	b.Update(func(m *Memory) { p.Step(0, m) })
	return b
}

// Inflow is the inflow at sim time t, m³/h.
func (p *Pumps) Inflow(t time.Duration) float64 {
	return swing(p.InflowMean, p.InflowSwing, p.Period, t)
}

// swing is mean + amp·sin(2πt/period), at least 0; mean without a period.
func swing(mean, amp float64, period, t time.Duration) float64 {
	if period <= 0 {
		return mean
	}
	return math.Max(0, mean+amp*math.Sin(2*math.Pi*t.Seconds()/period.Seconds()))
}

// Step integrates the level over dt (explicit Euler in steps of at most 0.1 s).
func (p *Pumps) Step(dt time.Duration, m *Memory) {
	n := len(p.Failed)
	running := 0
	for i := range n {
		m.Discrete[i] = m.Coils[i] && !p.Failed[i]
		if m.Discrete[i] {
			running++
		}
	}
	out := float64(running) * p.PumpFlow
	for rest := dt; rest > 0; rest -= 100 * time.Millisecond {
		h := min(rest, 100*time.Millisecond)
		in := p.Inflow(p.now)
		pumped := out
		if p.Level <= 0 {
			pumped = math.Min(out, in) // a dry well pumps what flows in
		}
		p.Level = clamp(p.Level+(in-pumped)/3600*h.Seconds()/p.Area, 0, p.Depth)
		p.now += h
	}
	PutFloat32(m.Input, 0, p.Level)
	PutFloat32(m.Input, 2, p.Inflow(p.now))
	for i := range n {
		q := 0.0
		if m.Discrete[i] {
			q = p.PumpFlow
		}
		PutFloat32(m.Input, 4+2*i, q)
	}
	m.Discrete[n] = p.Level >= p.HighSwitch
}

// Safe stops every pump.
func (*Pumps) Safe(m *Memory) {
	for i := range m.Coils {
		m.Coils[i] = false
	}
}
