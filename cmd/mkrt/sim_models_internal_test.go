package main

import (
	"strings"
	"testing"

	"github.com/mkrt/mkrt/io/sim"
)

// `mkrt sim` runs the pump station (sized by --pumps) and the blender
// beside the package's own models, and names them all when one is unknown.
func TestSimModels(t *testing.T) {
	m, err := newSimModel("pumps", 3)
	if p, ok := m.(*sim.Pumps); err != nil || !ok || len(p.Failed) != 3 {
		t.Fatalf("pumps: %T %v, want a station of 3 pumps", m, err)
	}
	if _, err := newSimModel("pumps", 0); err == nil || !strings.Contains(err.Error(), "--pumps 0 is outside 1-16") {
		t.Errorf("--pumps 0: %v", err)
	}
	if m, err := newSimModel("blending", 2); err != nil || m.Name() != "blending" || m.DefaultListen() != "127.0.0.1:15040" {
		t.Errorf("blending: %v %v", m, err)
	}
	_, err = newSimModel("pump", 2)
	if err == nil || !strings.Contains(err.Error(), "pumps, blending") {
		t.Errorf("unknown model: %v, want the list of models", err)
	}
}
