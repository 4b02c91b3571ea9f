package sim_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/mkrt/mkrt/io/sim"
)

// TestRatioBlendingExample runs configs/examples/ratio-blending.yaml
// against the blending simulator: once settled, the additive flow holds
// the ratio to the swinging main flow within 5 %, and the ratio alarm
// stays off.
func TestRatioBlendingExample(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (runs the blend for about 40 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// 4x: the main flow swings through a full period in 75 s.
	srv, err := sim.Start(ctx, sim.NewBlending(), sim.Config{Listen: "127.0.0.1:0", Speed: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	e := startExample(t, ctx, "ratio-blending.yaml", srv, nil)
	const want, tol = 0.05, 0.05
	off := func() float64 {
		e.snap()
		return math.Abs(e.value("additive_flow")/e.value("main_flow")-want) / want
	}
	settled := time.Now().Add(40 * time.Second)
	for off() > 0.03 {
		if time.Now().After(settled) {
			t.Fatalf("the ratio never settled within 3 %% of %v: additive %.2f, main %.2f m³/h", want, e.value("additive_flow"), e.value("main_flow"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	worst := 0.0
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		worst = max(worst, off())
		if e.value("ratio_off") != 0 {
			t.Errorf("ratio alarm on: held %.4f", e.value("ratio_held"))
		}
	}
	t.Logf("for 20 s the ratio stayed within %.2f %% of %v", worst*100, want)
	if worst > tol {
		t.Errorf("the ratio strayed %.2f %% from %v, more than %.0f %%", worst*100, want, tol*100)
	}
}
