package web

import "testing"

// The overview carries the supervisor's status of the partition (its
// restarts, isolation, outputs) when the bridge has one to give.
func TestOverviewPartition(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.Partition = func() any { return map[string]any{"restarts": 2, "state": "running"} }
	})
	st, out := r.do(r.login("viewer", "viewer-pass"), "GET", "/api/overview", nil)
	pt, ok := out["partition"].(map[string]any)
	if st != 200 || !ok || pt["restarts"] != 2.0 {
		t.Fatalf("overview: %d, partition %v", st, out["partition"])
	}
	r2 := newRig(t)
	if _, out := r2.do(r2.login("viewer", "viewer-pass"), "GET", "/api/overview", nil); out["partition"] != nil {
		t.Fatalf("overview without a supervisor: partition %v", out["partition"])
	}
}
