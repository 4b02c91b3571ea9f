package plant

// Figure is one named health figure, as published to SCADA: the executive's
// state, cycle counter, rt mode and every task's latency percentiles and
// overruns. Text figures have IsText set.
type Figure struct {
	Name   string
	Value  float64
	Text   string
	IsText bool
	IsBool bool
	// Unit is "ns" for latencies, "" otherwise.
	Unit string
}

// Figures appends the health figures to dst (reusing its storage) in a
// fixed order: Executive/State, Executive/Fault, Executive/Cycle,
// Executive/RT, Executive/RT Reason, then per task
// Executive/Tasks/<task>/{Cycles, Overruns, Wakeup P50/P99/P99.9/Max,
// Exec P50/P99/P99.9/Max} (nanoseconds).
func (h Health) Figures(dst []Figure) []Figure {
	dst = append(dst[:0],
		Figure{Name: "Executive/State", Text: h.State.String(), IsText: true},
		Figure{Name: "Executive/Fault", Text: h.Fault, IsText: true},
		Figure{Name: "Executive/Cycle", Value: float64(h.Cycle)},
		Figure{Name: "Executive/RT", Value: b2f(h.RT), IsBool: true},
		Figure{Name: "Executive/RT Reason", Text: h.RTReason, IsText: true},
	)
	for _, t := range h.Tasks {
		p := "Executive/Tasks/" + t.Name + "/"
		dst = append(dst,
			Figure{Name: p + "Cycles", Value: float64(t.Cycles)},
			Figure{Name: p + "Overruns", Value: float64(t.Overruns)},
			Figure{Name: p + "Wakeup P50", Value: float64(t.Wakeup.P50), Unit: "ns"},
			Figure{Name: p + "Wakeup P99", Value: float64(t.Wakeup.P99), Unit: "ns"},
			Figure{Name: p + "Wakeup P99.9", Value: float64(t.Wakeup.P999), Unit: "ns"},
			Figure{Name: p + "Wakeup Max", Value: float64(t.Wakeup.Max), Unit: "ns"},
			Figure{Name: p + "Exec P50", Value: float64(t.Exec.P50), Unit: "ns"},
			Figure{Name: p + "Exec P99", Value: float64(t.Exec.P99), Unit: "ns"},
			Figure{Name: p + "Exec P99.9", Value: float64(t.Exec.P999), Unit: "ns"},
			Figure{Name: p + "Exec Max", Value: float64(t.Exec.Max), Unit: "ns"},
		)
	}
	return dst
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
