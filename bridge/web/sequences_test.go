package web

import (
	"net/http"
	"slices"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// The Sequences page knows the batch mixer's sequence: its steps, the
// tags its outputs write, and the writable tags its buttons write — abort
// through the interlock expression "batch_abort || high_switch".
func TestSequenceDefs(t *testing.T) {
	cfg, err := configs.Load("../../configs/examples/batch-mixer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	infos := tab.Info
	ids := map[string]tag.ID{}
	for i, in := range infos {
		ids[in.Name] = tag.ID(i)
	}
	ds := sequenceDefs(cfg, ids, infos)
	if len(ds) != 1 {
		t.Fatalf("sequences %+v, want the batch", ds)
	}
	d := ds[0]
	if d.Block != "batch" || d.Step != "batch_step" || d.Name != "batch_step_name" || d.Time != "batch_time" || d.Held != "batch_held" || d.Alarm != "batch_alarm" {
		t.Errorf("outputs %+v", d)
	}
	if d.Hold != "batch_hold" || d.Resume != "batch_resume" || d.Abort != "batch_abort" {
		t.Errorf("commands hold %q resume %q abort %q, want batch_hold, batch_resume, batch_abort", d.Hold, d.Resume, d.Abort)
	}
	if len(d.Steps) < 3 || d.Steps[0] != "idle" || !slices.Contains(d.Steps, "drain") {
		t.Errorf("steps %v", d.Steps)
	}
}

// The endpoint needs a login and answers a config without sequences with
// an empty list.
func TestSequencesEndpoint(t *testing.T) {
	r := newRig(t)
	if st, _ := r.do(r.client(), "GET", "/api/sequences", nil); st != http.StatusUnauthorized {
		t.Fatalf("without login: %d", st)
	}
	st, out := r.do(r.login("viewer", "viewer-pass"), "GET", "/api/sequences", nil)
	if seqs, ok := out["sequences"].([]any); st != 200 || !ok || len(seqs) != 0 {
		t.Fatalf("sequences: %d %v", st, out)
	}
}
