package sim

import (
	"math"
	"testing"
	"time"
)

// run steps the mixer for d of sim time in 1 s steps.
func runMixer(x *Mixer, m *Memory, d time.Duration) {
	for range int(d / time.Second) {
		x.Step(time.Second, m)
	}
}

// The documented rates: each inlet fills 10 mm/s and mixes its
// temperature in, the heater heats only with the agitator running over a
// covered element, the drain empties the tank.
func TestMixerFillsHeatsAndDrains(t *testing.T) {
	x := NewMixer()
	b := x.NewBank()
	b.Update(func(m *Memory) {
		m.Coils[mixInletA] = true
		runMixer(x, m, 80*time.Second)
		m.Coils[mixInletA], m.Coils[mixInletB] = false, true
		runMixer(x, m, 80*time.Second)
		m.Coils[mixInletB] = false
	})
	m := b.Snapshot()
	if l, temp := Float32(m.Input, 0), Float32(m.Input, 2); math.Abs(l-1.6) > 0.01 || math.Abs(temp-17.5) > 0.05 {
		t.Fatalf("after 80 s of each inlet: level %v temperature %v, want 1.6 m 17.5 °C", l, temp)
	}
	// The heater without the agitator does nothing.
	b.Update(func(m *Memory) {
		m.Coils[mixHeater] = true
		PutFloat32(m.Holding, 0, 100)
		runMixer(x, m, 60*time.Second)
	})
	if m := b.Snapshot(); Float32(m.Input, 4) != 0 || Float32(m.Input, 2) > 17.6 {
		t.Fatalf("heater without agitator: power %v temperature %v", Float32(m.Input, 4), Float32(m.Input, 2))
	}
	// With it: 400 kW into 800 kg heats about 0.12 K/s.
	b.Update(func(m *Memory) {
		m.Coils[mixAgitator] = true
		runMixer(x, m, 100*time.Second)
	})
	m = b.Snapshot()
	if temp := Float32(m.Input, 2); math.Abs(temp-(17.5+11.9)) > 0.3 || Float32(m.Input, 4) != 100 || !m.Discrete[2] {
		t.Fatalf("heated 100 s: temperature %v power %v agitator %v, want about 29.4 °C 100 true", temp, Float32(m.Input, 4), m.Discrete[2])
	}
	// Drained: the low switch, and the heater stops over a dry element.
	b.Update(func(m *Memory) {
		m.Coils[mixDrain] = true
		runMixer(x, m, 200*time.Second)
	})
	m = b.Snapshot()
	if l := Float32(m.Input, 0); l > 0.05 || !m.Discrete[1] || m.Discrete[0] || Float32(m.Input, 4) != 0 {
		t.Fatalf("drained: level %v low %v high %v power %v", l, m.Discrete[1], m.Discrete[0], Float32(m.Input, 4))
	}
	b.Update(x.Safe)
	if m := b.Snapshot(); m.Coils[mixDrain] || m.Coils[mixHeater] || Float32(m.Holding, 0) != 0 {
		t.Fatalf("safe state: coils %v power %v", m.Coils, Float32(m.Holding, 0))
	}
}
