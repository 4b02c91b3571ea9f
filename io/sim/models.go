package sim

import (
	"fmt"
	"math"
	"time"
)

// Model is a simulated plant: Step advances it by dt of sim time, reading
// its inputs from m and writing its outputs to m.
type Model interface {
	// Name is the model's name, as given to `mkrt sim`.
	Name() string
	// DefaultListen is the model's conventional listen address.
	DefaultListen() string
	// NewBank returns the model's data areas with their initial contents.
	NewBank() *Bank
	Step(dt time.Duration, m *Memory)
	// Safe drives the model's outputs to the values the device holds when
	// its comm-loss watchdog expires (see the package doc).
	Safe(m *Memory)
}

// Names lists the model names, as given to New.
func Names() []string { return []string{"tank", "heater", "conveyor"} }

// New returns the named model with its documented parameters.
func New(name string) (Model, error) {
	switch name {
	case "tank":
		return NewTank(), nil
	case "heater":
		return NewHeater(), nil
	case "conveyor":
		return NewConveyor(), nil
	}
	return nil, fmt.Errorf("sim: unknown model %q (tank, heater or conveyor)", name)
}

// Tank is a gravity-drained tank fed by a pump through a valve.
type Tank struct {
	Area       float64 // cross-section, m²
	Height     float64 // m; the level is clamped to 0..Height
	MaxInflow  float64 // m³/h with the pump on and the inflow valve fully open
	OutflowK   float64 // m³/h per sqrt(m) with the outflow valve fully open
	HighSwitch float64 // m
	LowSwitch  float64 // m
	Level      float64 // m, the state
}

// NewTank returns the documented tank, 1 m full.
func NewTank() *Tank {
	return &Tank{Area: 2, Height: 3, MaxInflow: 10, OutflowK: 8, HighSwitch: 2.7, LowSwitch: 0.3, Level: 1}
}

func (*Tank) Name() string          { return "tank" }
func (*Tank) DefaultListen() string { return "127.0.0.1:15020" }

// NewBank returns the tank's areas: outflow valve at 50 %.
func (t *Tank) NewBank() *Bank {
	b := NewBank(1, 2, 4, 6)
	b.Update(func(m *Memory) {
		PutFloat32(m.Holding, 2, 50)
		t.Step(0, m)
	})
	return b
}

// Step integrates the level over dt (explicit Euler in steps of at most 0.1 s).
func (t *Tank) Step(dt time.Duration, m *Memory) {
	in := 0.0
	if m.Coils[0] {
		in = t.MaxInflow * clamp(Float32(m.Holding, 0), 0, 100) / 100
	}
	outPos := clamp(Float32(m.Holding, 2), 0, 100) / 100
	var out float64
	for rest := dt.Seconds(); rest > 0; rest -= 0.1 {
		h := math.Min(rest, 0.1)
		out = t.OutflowK * outPos * math.Sqrt(t.Level)
		t.Level = clamp(t.Level+(in-out)/3600*h/t.Area, 0, t.Height)
	}
	out = t.OutflowK * outPos * math.Sqrt(t.Level)
	t.publish(m, in, out)
}

// Safe stops the pump and closes the inflow valve; the outflow valve keeps
// its position, so the tank cannot overflow and may still drain.
func (*Tank) Safe(m *Memory) {
	m.Coils[0] = false
	PutFloat32(m.Holding, 0, 0)
}

func (t *Tank) publish(m *Memory, in, out float64) {
	PutFloat32(m.Input, 0, t.Level)
	PutFloat32(m.Input, 2, out)
	PutFloat32(m.Input, 4, in)
	m.Discrete[0] = t.Level >= t.HighSwitch
	m.Discrete[1] = t.Level <= t.LowSwitch
}

// Heater is a first-order thermal process with dead time.
type Heater struct {
	Ambient  float64       // °C
	Gain     float64       // °C per % of power
	Tau      time.Duration // time constant
	DeadTime time.Duration
	Temp     float64 // °C, the state

	now     time.Duration // sim time
	history []powerAt     // applied power over the last DeadTime
}

type powerAt struct {
	t time.Duration
	p float64
}

// NewHeater returns the documented heater at ambient temperature.
func NewHeater() *Heater {
	return &Heater{Ambient: 20, Gain: 0.8, Tau: 120 * time.Second, DeadTime: 10 * time.Second, Temp: 20}
}

func (*Heater) Name() string          { return "heater" }
func (*Heater) DefaultListen() string { return "127.0.0.1:15030" }

// NewBank returns the heater's areas.
func (h *Heater) NewBank() *Bank {
	b := NewBank(1, 0, 2, 4)
	b.Update(func(m *Memory) { PutFloat32(m.Input, 0, h.Temp) })
	return b
}

// Step advances the temperature by dt, in steps of at most 0.1 s.
func (h *Heater) Step(dt time.Duration, m *Memory) {
	p := 0.0
	if m.Coils[0] {
		p = clamp(Float32(m.Holding, 0), 0, 100)
	}
	h.history = append(h.history, powerAt{h.now, p})
	for rest := dt; rest > 0; rest -= 100 * time.Millisecond {
		step := min(rest, 100*time.Millisecond)
		delayed := h.delayed(h.now - h.DeadTime)
		target := h.Ambient + h.Gain*delayed
		h.Temp += (target - h.Temp) * (1 - math.Exp(-step.Seconds()/h.Tau.Seconds()))
		h.now += step
	}
	PutFloat32(m.Input, 0, h.Temp)
	PutFloat32(m.Input, 2, p)
}

// Safe disables the heater and sets its power to 0 %.
func (*Heater) Safe(m *Memory) {
	m.Coils[0] = false
	PutFloat32(m.Holding, 0, 0)
}

// delayed is the power applied at sim time t (0 before the first step) and
// drops history no longer needed.
func (h *Heater) delayed(t time.Duration) float64 {
	k := 0
	for k+1 < len(h.history) && h.history[k+1].t <= t {
		k++
	}
	h.history = h.history[k:]
	if len(h.history) == 0 || h.history[0].t > t {
		return 0
	}
	return h.history[0].p
}

// Conveyor is a belt with photo-eyes at the infeed and outfeed and an e-stop.
type Conveyor struct {
	Length   float64 // m
	Speed    float64 // m/s
	ItemLen  float64 // m
	Spacing  float64 // m of belt travel between loaded items
	EyeIn    float64 // m from the infeed
	EyeOut   float64 // m from the infeed
	Items    []float64
	Count    uint16
	sinceNew float64
}

// NewConveyor returns the documented conveyor, empty.
func NewConveyor() *Conveyor {
	return &Conveyor{Length: 5, Speed: 0.5, ItemLen: 0.3, Spacing: 1.5, EyeIn: 0.5, EyeOut: 4.5, sinceNew: 1.5}
}

func (*Conveyor) Name() string          { return "conveyor" }
func (*Conveyor) DefaultListen() string { return "127.0.0.1:15040" }

// NewBank returns the conveyor's areas.
func (c *Conveyor) NewBank() *Bank { return NewBank(9, 3, 0, 2) }

// Step moves the belt for dt, in steps of at most 10 ms so no item jumps an eye.
func (c *Conveyor) Step(dt time.Duration, m *Memory) {
	estop := m.Coils[8]
	run := m.Coils[0] && !estop
	dir := 1.0
	if m.Coils[1] {
		dir = -1
	}
	for rest := dt.Seconds(); run && rest > 0; rest -= 0.01 {
		d := dir * c.Speed * math.Min(rest, 0.01)
		kept := c.Items[:0]
		for _, x := range c.Items {
			x += d
			switch {
			case x-c.ItemLen >= c.Length:
				c.Count++
			case x <= 0:
			default:
				kept = append(kept, x)
			}
		}
		c.Items = kept
		if dir > 0 {
			c.sinceNew += d
			if c.sinceNew >= c.Spacing {
				c.sinceNew = 0
				c.Items = append(c.Items, 0.001) // the item's leading edge
			}
		}
	}
	m.Discrete[0] = c.covered(c.EyeIn)
	m.Discrete[1] = c.covered(c.EyeOut)
	m.Discrete[2] = estop
	m.Input[0] = c.Count
	m.Input[1] = uint16(len(c.Items))
}

// Safe stops the motor and clears reverse; the simulated e-stop button
// (coil 8) is not an output and stays as it is.
func (*Conveyor) Safe(m *Memory) {
	m.Coils[0], m.Coils[1] = false, false
}

// covered reports whether an item covers position x; items are [lead-ItemLen, lead].
func (c *Conveyor) covered(x float64) bool {
	for _, lead := range c.Items {
		if lead >= x && lead-c.ItemLen <= x {
			return true
		}
	}
	return false
}

func clamp(v, lo, hi float64) float64 {
	if math.IsNaN(v) {
		return lo
	}
	return math.Max(lo, math.Min(hi, v))
}
