package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
)

// structuralChange is the plant's config with a lag filter in front of the
// PID's pv and an extra alarm, as YAML for mkrt apply.
func (p *testPlant) structuralChange(edit func(*configs.Config)) string {
	p.t.Helper()
	cfg, err := configs.LoadBytes(p.cfgPath, []byte(p.cfgText))
	if err != nil {
		p.t.Fatal(err)
	}
	changeStructure(cfg)
	if edit != nil {
		edit(cfg)
	}
	text, err := cfg.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	return string(text)
}

func (p *testPlant) apply(text string) (control.ApplyResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return p.client.Apply(ctx, "", []byte(text))
}

// valveWatch samples inflow_valve in the running generation's region and,
// once it exists, the next one's, every period while the hand-over runs.
type valveWatch struct {
	mu sync.Mutex
	// before: the valve between samples before the switch (old drives);
	// pairs: after the switch, what the old program (released, still
	// computing) and the new one (driving) put out in the same sample.
	steps    []float64
	lastOld  float64
	haveOld  bool
	atSwitch float64 // |first new-driven value - last old-driven value|
	switched bool
	worst    float64
	pairs    int
	// trace is every sample from the new region's appearance on, for the
	// log: old valve, new valve, the new program's mode.
	trace []string
}

func watchValves(ctx context.Context, t *testing.T, p *testPlant, next string, period time.Duration) (*valveWatch, func()) {
	w := &valveWatch{}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	oldR := p.regionReader()
	go func() {
		defer close(done)
		var newR *shm.Reader
		var img shm.Image
		valve := func(r *shm.Reader) (float64, bool) {
			sctx, c := context.WithTimeout(ctx, 50*time.Millisecond)
			defer c()
			if r.Snapshot(sctx, &img) != nil {
				return 0, false
			}
			for i, in := range r.Tags() {
				if in.Name == "inflow_valve" && i < len(img.Samples) {
					return img.Samples[i].Value, true
				}
			}
			return 0, false
		}
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if newR == nil {
				if reg, err := shm.Open(shm.File(next, 0, false)); err == nil {
					if r, err := shm.AttachReader(reg, nil, shm.ReaderOptions{}); err == nil {
						newR = r
						defer reg.Close()
					} else {
						reg.Close()
					}
				}
			}
			ov, ok := valve(oldR)
			if !ok {
				continue
			}
			// Counters start zero (driving) until the executive publishes
			// them: driving counts once it reports its switch.
			nc := wire.HandOverCounters{}
			if newR != nil {
				nc = newR.HandOver().Counters()
			}
			driving := nc.Mode == wire.Driving && nc.Switch != 0
			if newR != nil {
				nv, _ := valve(newR)
				w.mu.Lock()
				w.trace = append(w.trace, fmt.Sprintf("old %.4f (%v) new %.4f (%v)", ov, oldR.HandOver().Counters().Mode, nv, newR.HandOver().Counters().Mode))
				w.mu.Unlock()
			}
			w.mu.Lock()
			if !driving {
				if w.haveOld {
					w.steps = append(w.steps, math.Abs(ov-w.lastOld))
				}
				w.lastOld, w.haveOld = ov, true
				w.mu.Unlock()
				continue
			}
			w.mu.Unlock()
			nv, ok := valve(newR)
			if !ok {
				continue
			}
			w.mu.Lock()
			if !w.switched {
				w.switched, w.atSwitch = true, math.Abs(nv-w.lastOld)
			}
			if oldR.HandOver().Counters().Mode == wire.Released && oldR.Heartbeat().State == wire.Running {
				w.worst = math.Max(w.worst, math.Abs(ov-nv))
				w.pairs++
			}
			w.mu.Unlock()
		}
	}()
	return w, func() { cancel(); <-done }
}

// The running tank demo is handed over to a config with a changed block
// structure: applied live, 0 missed cycles in mkrt status, the valve the
// new program drives follows what the old one computes, the bridge serves
// the new tags without SCADA noticing anything else — subscribers of the
// embedded broker (mosquitto_sub with MQTT 3.1.1 and MQTT 5, a paho
// client) stay connected and receive on, no NDEATH, one NBIRTH with the
// new alarm —, the old region is gone, and Ctrl-C afterwards leaves
// nothing behind.
func TestRunHandOver(t *testing.T) {
	p := newPlant(t, plantOptions{level: 1.5, sp: 1.5, standbyCPUs: "0"})
	topics := []string{"spBv1.0/demo/#", "mkrt/tank-1/#"}
	subs := []*bridgetest.Sub{
		bridgetest.MosquittoSub(t, bridgetest.SubOptions{Version: "mqttv311", Addr: p.mqttAddr, Username: "viewer", Password: "viewer-demo", Topics: topics}),
		bridgetest.MosquittoSub(t, bridgetest.SubOptions{Version: "5", Addr: p.mqttAddr, Username: "viewer", Password: "viewer-demo", Topics: topics}),
	}
	sub := subscribe(t, p.mqttAddr, "scada", "scada-demo", "spBv1.0/demo/#")
	eventually(t, 10*time.Second, "level good", func() (bool, string) { _, ok := p.good("level"); return ok, "" })
	st1 := p.status()
	next := p.region + "-2"
	period := 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	w, stopWatch := watchValves(ctx, t, p, next, period)
	time.Sleep(500 * time.Millisecond) // steps of the valve without a hand-over

	subMarks := make([]int, len(subs))
	for i, s := range subs {
		subMarks[i] = len(s.Messages())
	}
	applied := time.Now()
	res, err := p.apply(p.structuralChange(nil))
	took := time.Since(applied)
	if err != nil || !res.Applied || res.Restarted {
		t.Fatalf("apply of a structural change = %+v, %v; want handed over", res, err)
	}
	t.Logf("apply: %s; %s (the call took %v)", res.Message, strings.Join(res.Changes, "; "), took.Round(time.Millisecond))
	stopWatch()
	if want := "fresh: level_filter, level_very_high"; !strings.Contains(strings.Join(res.Changes, "\n"), want) {
		t.Errorf("changes %q lack %q", res.Changes, want)
	}

	st := p.status()
	var b bytes.Buffer
	control.WriteStatus(&b, st)
	t.Logf("mkrt status after the hand-over:\n%s", b.String())
	h := st.HandOver
	if h == nil || h.Generation != 2 || h.Missed != 0 || h.Carried != 3 || h.Fresh != 2 || h.Mode != wire.Driving {
		t.Fatalf("status hand-over = %+v; want generation 2, 0 missed, 3 carried, 2 fresh, driving", h)
	}
	if !strings.Contains(b.String(), "0 missed cycles") {
		t.Errorf("mkrt status does not show 0 missed cycles:\n%s", b.String())
	}
	if st.State != supervisor.Running || st.PID == st1.PID || st.PID == 0 {
		t.Errorf("after the hand-over: %s, pid %d (was %d); want a new executive running", st.State, st.PID, st1.PID)
	}
	if st.Restarts != 0 {
		t.Errorf("restarts %d after a hand-over, want 0", st.Restarts)
	}

	w.mu.Lock()
	var base float64
	for _, s := range w.steps {
		base = math.Max(base, s)
	}
	fmt.Printf("hand-over under mkrt run: missed cycles %d, retries %d, switch at cycle %d, apply to switch %v, valve step at the switch %.4f %% (largest step between samples without hand-over %.4f %%), largest difference from the old program's output %.4f %% over %d samples\n",
		h.Missed, h.Retries, h.Cycle, h.Took.Round(time.Millisecond), w.atSwitch, base, w.worst, w.pairs)
	if !w.switched {
		t.Errorf("the watcher never saw the new program drive")
	}
	if w.worst > 0.5 {
		t.Errorf("valve differs by %.3f %% from the old program's output after the switch", w.worst)
	}
	if w.atSwitch > base+0.5 || testing.Verbose() {
		t.Logf("valve around the switch, one sample per period:\n%s", strings.Join(w.trace, "\n"))
	}
	if w.atSwitch > base+0.5 {
		t.Errorf("valve step at the switch %.3f %%, without hand-over at most %.3f %%", w.atSwitch, base)
	}
	w.mu.Unlock()

	// The bridge serves the new tags.
	eventually(t, 10*time.Second, "new alarm tag good", func() (bool, string) {
		tv := p.tag("level_very_high")
		return tv.Quality == "good", tv.Quality
	})
	var bdSeq uint64
	eventually(t, 10*time.Second, "an NBIRTH with level_very_high", func() (bool, string) {
		for _, m := range sub.since("spBv1.0/demo/NBIRTH/tank-1", applied) {
			if pl := decodeSparkplug(t, m.payload); metricByName(pl, "level_very_high") != nil {
				bdSeq = metricByName(pl, "bdSeq").GetLongValue()
				return true, ""
			}
		}
		return false, "no NBIRTH with the new alarm"
	})
	for i, s := range subs {
		eventually(t, 10*time.Second, s.String()+": the new NBIRTH and data after it", func() (bool, string) {
			born, data := false, 0
			for _, m := range s.Messages()[subMarks[i]:] {
				switch {
				case strings.Contains(m.Topic, "/NBIRTH/"):
					born = metricByName(decodeSparkplug(t, m.Payload), "level_very_high") != nil
				case born && strings.Contains(m.Topic, "DATA/"):
					data++
				}
			}
			return born && data > 0, fmt.Sprintf("NBIRTH %v, %d data messages after it", born, data)
		})
	}
	if _, err := os.Stat(p.region); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old region %s after the hand-over: %v; want it removed", p.region, err)
	}
	if err := syscall.Kill(st1.PID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("old executive pid %d still there: %v", st1.PID, err)
	}

	// Control continues: cycles advance, and the next region is the one served.
	r2 := p.regionAt(next)
	c0 := r2.Heartbeat().Cycle
	eventually(t, 5*time.Second, "generation 2 cycling", func() (bool, string) { return r2.Heartbeat().Cycle > c0+10, "" })

	// What SCADA saw of the hand-over: one rebirth in the same session.
	var seen []string
	sub.mu.Lock()
	msgs := append([]message(nil), sub.msgs...)
	sub.mu.Unlock()
	for _, m := range msgs {
		kind := strings.Split(m.topic, "/")[2]
		if m.at.Before(applied) || kind == "NDATA" || kind == "DDATA" {
			continue
		}
		pl := decodeSparkplug(t, m.payload)
		e := fmt.Sprintf("%s seq %d", strings.Join(strings.Split(m.topic, "/")[2:], " "), pl.GetSeq())
		if bd := metricByName(pl, "bdSeq"); bd != nil {
			e += fmt.Sprintf(" bdSeq %d", bd.GetLongValue())
		}
		seen = append(seen, e)
	}
	t.Logf("Sparkplug births and deaths since the apply (paho, bdSeq of the session %d): %s", bdSeq, strings.Join(seen, ", "))
	if births, deaths := sub.since("spBv1.0/demo/NBIRTH/tank-1", applied), sub.since("spBv1.0/demo/NDEATH/tank-1", time.Time{}); len(births) != 1 || len(deaths) != 0 {
		t.Errorf("%d NBIRTH and %d NDEATH since the apply; want one NBIRTH and no NDEATH", len(births), len(deaths))
	}
	if !sub.c.IsConnectionOpen() {
		t.Errorf("the paho subscriber lost its connection")
	}
	for i, s := range subs {
		births := 0
		for _, m := range s.Messages()[subMarks[i]:] {
			births += strings.Count(m.Topic, "/NBIRTH/")
		}
		for _, m := range s.Messages() {
			if strings.Contains(m.Topic, "/NDEATH/") {
				t.Errorf("%s received an NDEATH", s)
			}
		}
		if !s.Running() || s.Connects() != 1 || births != 1 {
			t.Errorf("%s: running %v after %d CONNECTs, %d NBIRTH since the apply; want running on its first connection and one NBIRTH:\n%s", s, s.Running(), s.Connects(), births, s.Log())
		}
	}

	if err := p.stop(); err != nil {
		t.Fatalf("clean stop after the hand-over: %v", err)
	}
	var left []string
	for _, f := range append([]string{p.region, next, p.sock, p.stateDir + "/generation-2.yaml"}, append(cgroupDirs(p.name), cgroupDirs(p.name+"-2")...)...) {
		if _, err := os.Stat(f); err == nil {
			left = append(left, f)
		}
	}
	if err := syscall.Kill(st.PID, 0); !errors.Is(err, syscall.ESRCH) {
		left = append(left, fmt.Sprintf("executive pid %d", st.PID))
	}
	if len(left) > 0 {
		t.Errorf("left behind after Ctrl-C: %v", left)
	}
}

// A hand-over that does not switch in time tears the new generation down
// and leaves the running one as it was; changes that cannot be handed over
// are refused with the reason.
func TestRunHandOverFailsAndRefuses(t *testing.T) {
	p := newPlant(t, plantOptions{level: 1.5, sp: 1.5, standbyCPUs: "0", handOverTimeout: time.Nanosecond})
	eventually(t, 10*time.Second, "level good", func() (bool, string) { _, ok := p.good("level"); return ok, "" })
	hb := p.regionReader()
	st0 := p.status()

	res, err := p.apply(p.structuralChange(nil))
	if err == nil || res.Applied || !errors.Is(err, control.ErrUnavailable) {
		t.Fatalf("apply with a switch that cannot make its deadline = %+v, %v; want failed as unavailable", res, err)
	}
	t.Logf("failed hand-over: %v", err)
	if !strings.Contains(err.Error(), "generation 1 keeps running") {
		t.Errorf("error %q does not say the running generation keeps running", err)
	}
	st := p.status()
	if st.State != supervisor.Running || st.PID != st0.PID || st.Restarts != 0 || st.HandOver != nil {
		t.Errorf("after the failed hand-over: %s, pid %d (was %d), %d restarts, hand-over %+v; want the same partition running", st.State, st.PID, st0.PID, st.Restarts, st.HandOver)
	}
	if c := hb.HandOver().Counters(); c.Mode != wire.Driving {
		t.Errorf("running generation %v after the failed hand-over, want driving", c.Mode)
	}
	for _, f := range []string{p.region + "-2", p.stateDir + "/generation-2.yaml"} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the failed hand-over: %v; want it removed", f, err)
		}
	}
	c0 := hb.Heartbeat().Cycle
	eventually(t, 5*time.Second, "cycles advancing after the failed hand-over", func() (bool, string) { return hb.Heartbeat().Cycle > c0+10, "" })
	if _, ok := p.good("inflow_valve"); !ok {
		t.Errorf("inflow_valve not good after the failed hand-over")
	}

	for _, tc := range []struct {
		name string
		edit func(*configs.Config)
		want string
	}{
		{"two tasks", func(c *configs.Config) {
			c.Tasks = append(c.Tasks, configs.Task{Name: "slow", Period: c.Tasks[0].Period, Priority: 10,
				Blocks: []configs.Block{{Name: "slow_alarm", Type: "alarm", Inputs: map[string]configs.Ref{"in": {Raw: "level"}},
					Params: map[string]configs.Value{"hi": {Raw: "2.95", Set: true}}}}})
		}, "one cyclic task"},
		{"vm backend", func(c *configs.Config) { c.Partition.Backend = configs.BackendVM }, "backend changes from process to vm"},
	} {
		res, err := p.apply(p.structuralChange(tc.edit))
		if err == nil || res.Applied || !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: apply = %+v, %v; want refused: %s", tc.name, res, err, tc.want)
		}
	}
	if os.Geteuid() == 0 {
		// As root the running partition holds its CPU in a cpuset: without
		// standby CPUs the new program has nowhere to start.
		res, err := p.apply(p.structuralChange(func(c *configs.Config) { c.Partition.StandbyCPUs = nil }))
		if err == nil || res.Applied || !strings.Contains(err.Error(), "standby_cpus") {
			t.Errorf("apply without standby CPUs as root = %+v, %v; want refused naming standby_cpus", res, err)
		}
	} else {
		t.Log("not root: no cpuset is held, so a hand-over without standby_cpus is allowed; its refusal is not checked")
	}
	if st := p.status(); st.PID != st0.PID || st.Restarts != 0 {
		t.Errorf("after the refusals: pid %d (was %d), %d restarts", st.PID, st0.PID, st.Restarts)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}
