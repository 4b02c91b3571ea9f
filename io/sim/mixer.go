package sim

import (
	"math"
	"time"
)

// Mixer is a batch mixing tank (default 127.0.0.1:15060): two inlet
// valves, an agitator, an electric heater and a drain valve. The tank has
// 0.5 m² cross-section and is 2 m high. Each inlet, open, feeds 18 m³/h
// (10 mm of level a second): inlet A at 20 °C, inlet B at 15 °C, mixed
// into the contents. The drain runs by gravity, 36 m³/h · sqrt(level/m).
// The heater gives heater power % of 400 kW to the contents, but only
// while it is enabled, the agitator runs and the level covers the element
// (0.3 m); the contents lose 100 W/K to the 20 °C room. Water: 1000 kg/m³,
// 4186 J/(kg·K). The tank starts empty at 20 °C; the level is clamped to
// 0-2 m (overflow).
//
//	input    0-1  float32  level, m
//	input    2-3  float32  temperature, °C
//	input    4-5  float32  heater power applied, % (0 unless it heats)
//	holding  0-1  float32  heater power, % (0-100, default 0)
//	coil     0             inlet A valve open
//	coil     1             inlet B valve open
//	coil     2             agitator run
//	coil     3             drain valve open
//	coil     4             heater enable
//	discrete 0             high-level switch: level >= 1.8 m
//	discrete 1             low-level switch: level <= 0.05 m
//	discrete 2             agitator running
//
// Safe values on comm loss: every coil off (inlets and drain closed,
// agitator and heater off) and heater power 0 %.
type Mixer struct {
	Area      float64 // m²
	Height    float64 // m
	InflowA   float64 // m³/h with inlet A open
	InflowB   float64 // m³/h with inlet B open
	TempA     float64 // °C of inlet A's liquid
	TempB     float64 // °C of inlet B's liquid
	DrainK    float64 // m³/h per sqrt(m) with the drain open
	HeaterMax float64 // W at 100 %
	Element   float64 // m: the level that covers the heater element
	Loss      float64 // W/K to the room
	Ambient   float64 // °C
	Level     float64 // m, the state
	Temp      float64 // °C, the state
}

// NewMixer returns the documented mixer, empty at 20 °C.
func NewMixer() *Mixer {
	return &Mixer{Area: 0.5, Height: 2, InflowA: 18, InflowB: 18, TempA: 20, TempB: 15, DrainK: 36,
		HeaterMax: 400e3, Element: 0.3, Loss: 100, Ambient: 20, Temp: 20}
}

func (*Mixer) Name() string          { return "mixer" }
func (*Mixer) DefaultListen() string { return "127.0.0.1:15060" }

// Mixer's coils, by address.
const (
	mixInletA = iota
	mixInletB
	mixAgitator
	mixDrain
	mixHeater
	mixCoils
)

// NewBank returns the mixer's areas.
func (x *Mixer) NewBank() *Bank {
	b := NewBank(mixCoils, 3, 2, 6)
	b.Update(func(m *Memory) { x.Step(0, m) })
	return b
}

// Step integrates level and temperature over dt (explicit Euler in steps
// of at most 0.1 s).
func (x *Mixer) Step(dt time.Duration, m *Memory) {
	c := m.Coils
	power := 0.0
	for rest := dt.Seconds(); rest > 0; rest -= 0.1 {
		h := math.Min(rest, 0.1)
		vol := x.Level * x.Area // m³
		var inA, inB, out float64
		if c[mixInletA] {
			inA = x.InflowA / 3600 * h
		}
		if c[mixInletB] {
			inB = x.InflowB / 3600 * h
		}
		if c[mixDrain] {
			out = math.Min(vol, x.DrainK/3600*math.Sqrt(x.Level)*h)
		}
		power = x.heating(m)
		// Mix the inflows in, heat and cool what is there.
		if kept := vol - out; kept+inA+inB > 1e-9 {
			x.Temp = (x.Temp*kept + x.TempA*inA + x.TempB*inB) / (kept + inA + inB)
			mass := 1000 * (kept + inA + inB)
			heat := x.HeaterMax*power/100 - x.Loss*(x.Temp-x.Ambient)
			x.Temp += heat * h / (mass * 4186)
		}
		x.Level = clamp((vol+inA+inB-out)/x.Area, 0, x.Height)
	}
	power = x.heating(m)
	PutFloat32(m.Input, 0, x.Level)
	PutFloat32(m.Input, 2, x.Temp)
	PutFloat32(m.Input, 4, power)
	m.Discrete[0] = x.Level >= 1.8
	m.Discrete[1] = x.Level <= 0.05
	m.Discrete[2] = c[mixAgitator]
}

// heating is the heater power applied, %.
func (x *Mixer) heating(m *Memory) float64 {
	if !m.Coils[mixHeater] || !m.Coils[mixAgitator] || x.Level < x.Element {
		return 0
	}
	return clamp(Float32(m.Holding, 0), 0, 100)
}

// Safe closes the inlets and the drain, stops the agitator and turns the
// heater off.
func (*Mixer) Safe(m *Memory) {
	clear(m.Coils)
	PutFloat32(m.Holding, 0, 0)
}
