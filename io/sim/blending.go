package sim

import (
	"math"
	"time"
)

// Blending is an in-line blender: a wild (uncontrolled) main flow and an
// additive dosed through a control valve, as configs/examples/ratio-blending.yaml
// expects.
//
// Register map (default 127.0.0.1:15040, the conveyor's: run one at a time):
//
//	input    0-1  float32  main flow, m³/h
//	input    2-3  float32  additive flow, m³/h
//	holding  0-1  float32  additive valve position, % (0-100, default 0)
//
// Safe values on comm loss: additive valve 0 %.
type Blending struct {
	MainMean  float64       // m³/h
	MainSwing float64       // m³/h: the main flow is mean + swing·sin(2πt/period)
	Period    time.Duration // of the main flow's swing
	ValveGain float64       // m³/h of additive per % open
	Tau       time.Duration // the additive flow's first-order lag behind the valve
	Additive  float64       // m³/h, the state

	now time.Duration // sim time
}

// NewBlending returns the documented blender: a main flow of 400 ± 40 m³/h
// over a 5-minute period; an additive valve of 1 m³/h per % open with a 1 s
// lag. At the example's ratio of 0.05 the valve settles near 20 %.
func NewBlending() *Blending {
	return &Blending{MainMean: 400, MainSwing: 40, Period: 5 * time.Minute, ValveGain: 1, Tau: time.Second}
}

func (*Blending) Name() string          { return "blending" }
func (*Blending) DefaultListen() string { return "127.0.0.1:15040" }

// NewBank returns the blender's areas, the valve closed.
func (b *Blending) NewBank() *Bank {
	k := NewBank(0, 0, 2, 4)
	k.Update(func(m *Memory) { b.Step(0, m) })
	return k
}

// Main is the main flow at sim time t, m³/h.
func (b *Blending) Main(t time.Duration) float64 { return swing(b.MainMean, b.MainSwing, b.Period, t) }

// Step moves the additive flow towards the valve's over dt, in steps of at
// most 10 ms.
func (b *Blending) Step(dt time.Duration, m *Memory) {
	target := b.ValveGain * clamp(Float32(m.Holding, 0), 0, 100)
	for rest := dt; rest > 0; rest -= 10 * time.Millisecond {
		h := min(rest, 10*time.Millisecond)
		if b.Tau > 0 {
			b.Additive += (target - b.Additive) * (1 - math.Exp(-h.Seconds()/b.Tau.Seconds()))
		} else {
			b.Additive = target
		}
		b.now += h
	}
	PutFloat32(m.Input, 0, b.Main(b.now))
	PutFloat32(m.Input, 2, b.Additive)
}

// Safe closes the additive valve.
func (*Blending) Safe(m *Memory) { PutFloat32(m.Holding, 0, 0) }
