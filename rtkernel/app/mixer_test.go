package app

import (
	"context"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// The batch mixer steps of configs/examples/batch-mixer.yaml, by index.
const (
	mixIdle = iota
	mixFillA
	mixFillB
	mixHeat
	mixHold
	mixDrain
	mixComplete
)

// TestBatchMixerExample runs the batch-mixer example against the mixer
// simulator over Modbus TCP: a write of batch_start through the command
// ring starts a batch, which fills to both levels, heats to the setpoint,
// holds, drains and completes without a timeout alarm. Halfway through
// heating the program is halted and started again on the same region: the
// sequence resumes in its step (retained), not at idle; then it is held
// and resumed through the same command path.
func TestBatchMixerExample(t *testing.T) {
	ctx, cancel, srv := mixerSim(t)
	defer cancel()
	cfg := mixerAt(t, srv.Addr(), false)
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	loc, layout := seededRegion(t, ctx, cfg, tab)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Config: cfg, Shm: loc}) }()
	region, err := openWhenFormatted(ctx, loc, layout)
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close()
	r, err := shm.AttachReader(region, layout, shm.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := func(name string) tag.ID {
		k, ok := tab.Lookup(name)
		if !ok {
			t.Fatalf("no tag %q", name)
		}
		return k
	}
	step, level, temp, alarm, held, doneTag := id("batch_step"), id("level"), id("temperature"), id("batch_alarm"), id("batch_held"), id("batch_done")
	var img shm.Image
	// watch polls the image until cond holds, failing after limit.
	watch := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			if err := r.Snapshot(ctx, &img); err != nil {
				t.Fatal(err)
			}
			if cond() {
				return
			}
			if img.Samples[alarm].Value != 0 {
				t.Fatalf("%s: the batch alarm is on in step %v (level %.3f m, %.2f degC)", what, img.Samples[step].Value, img.Samples[level].Value, img.Samples[temp].Value)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v: step %v, level %.3f m, %.2f degC", what, limit, img.Samples[step].Value, img.Samples[level].Value, img.Samples[temp].Value)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	watch("start", 20*time.Second, func() bool {
		return r.Heartbeat().State == wire.Running && img.Samples[level].Quality == tag.Good
	})
	write := func(name string, v bool) {
		t.Helper()
		res, err := r.Do(ctx, wire.Command{Kind: wire.WriteTag, Tag: id(name), Value: wire.Number(b2f(v)), Origin: wire.NewOrigin("test")})
		if err != nil || res.Status != wire.Applied {
			t.Fatalf("write %s: %+v %v", name, res, err)
		}
	}
	at := func() float64 { return img.Samples[step].Value }
	write("batch_start", true)
	watch("fill A", 10*time.Second, func() bool { return at() == mixFillB })
	if l := img.Samples[level].Value; l < 0.8 || l > 0.85 {
		t.Errorf("fill A ended at %.3f m, want 0.8 m (to 0.85)", l)
	}
	watch("fill B", 10*time.Second, func() bool { return at() == mixHeat })
	if l := img.Samples[level].Value; l < 1.4 || l > 1.45 {
		t.Errorf("fill B ended at %.3f m, want 1.4 m (to 1.45)", l)
	}
	// Halt halfway through heating, and start again on the same region.
	watch("heating to 40 degC", 20*time.Second, func() bool { return img.Samples[temp].Value >= 40 })
	if _, err := r.Submit(wire.Command{Kind: wire.Halt, Origin: wire.NewOrigin("test")}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run after halt: %v", err)
	}
	claims := r.Heartbeat().Claims
	go func() { done <- Run(ctx, Options{Config: cfg, Shm: loc}) }()
	watch("restart", 20*time.Second, func() bool {
		hb := r.Heartbeat()
		return hb.Claims > claims && hb.State == wire.Running && hb.Cycle >= 3
	})
	if at() != mixHeat {
		t.Fatalf("after a restart the batch is in step %v, want %d (heat, retained)", at(), mixHeat)
	}
	// Hold and resume, written as SCADA writes them.
	write("batch_hold", true)
	watch("hold command", 5*time.Second, func() bool { return img.Samples[held].Value == 1 })
	time.Sleep(500 * time.Millisecond)
	if err := r.Snapshot(ctx, &img); err != nil {
		t.Fatal(err)
	}
	if at() != mixHeat || img.Samples[held].Value != 1 {
		t.Fatalf("held: step %v held %v, want %d 1", at(), img.Samples[held].Value, mixHeat)
	}
	write("batch_resume", true)
	watch("resume command", 5*time.Second, func() bool { return img.Samples[held].Value == 0 })
	watch("heat", 30*time.Second, func() bool { return at() == mixHold })
	if c := img.Samples[temp].Value; c < 59.5 || c > 61 {
		t.Errorf("heating ended at %.2f degC, want 59.5 to 61", c)
	}
	hottest, coolest := 0.0, 100.0
	watch("hold", 10*time.Second, func() bool {
		if at() == mixHold {
			hottest, coolest = max(hottest, img.Samples[temp].Value), min(coolest, img.Samples[temp].Value)
		}
		return at() == mixDrain
	})
	if hottest > 61 || coolest < 59 {
		t.Errorf("hold kept %.2f to %.2f degC, want 60 ±1", coolest, hottest)
	}
	watch("drain", 20*time.Second, func() bool { return at() == mixComplete })
	if name := img.Text[id("batch_step_name")]; name != "complete" {
		t.Errorf("complete: batch_step_name %q, want complete", name)
	}
	if l := img.Samples[level].Value; l > 0.05 || img.Samples[doneTag].Value != 1 || img.Samples[held].Value != 0 {
		t.Errorf("complete: level %.3f m, done %v, held %v; want <= 0.05 m, 1, 0", l, img.Samples[doneTag].Value, img.Samples[held].Value)
	}
	write("batch_start", false)
	watch("back to idle", 5*time.Second, func() bool { return at() == mixIdle && img.Samples[doneTag].Value == 0 })
	if _, err := r.Submit(wire.Command{Kind: wire.Halt, Origin: wire.NewOrigin("test")}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("second Run: %v", err)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// mixerSim starts the mixer simulator at 50 times real time, for a test
// that runs a batch (about 15 s); the context ends after 2 minutes.
func mixerSim(t *testing.T) (context.Context, context.CancelFunc, *sim.Server) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a batch against the simulator for about 15 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	srv, err := sim.Start(ctx, sim.NewMixer(), sim.Config{Listen: "127.0.0.1:0", Speed: 50})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return ctx, cancel, srv
}

// mixerAt is the batch-mixer example polling the simulator at addr, its
// hold step 2 s (the plant runs 50 times faster) and the watchdog lenient
// (these executives are not real-time); prime adds a step before fill_a,
// so the steps after it move one index on.
func mixerAt(t *testing.T, addr string, prime bool) *configs.Config {
	t.Helper()
	cfg, err := configs.Load("../../configs/examples/batch-mixer.yaml", blocks.Validate)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices[0].Address = addr
	cfg.Watchdog.Overruns = 10
	seq := &cfg.Tasks[0].Blocks[0]
	if seq.Steps[mixHold].Name != "hold" {
		t.Fatalf("step %d is %q, want hold", mixHold, seq.Steps[mixHold].Name)
	}
	seq.Steps[mixHold].MinTime = configs.Value{Raw: "2s", Set: true}
	if prime {
		seq.Steps[mixIdle].Next[0].To = "prime"
		seq.Steps = append(seq.Steps[:1], append([]configs.Step{{Name: "prime",
			Next: []configs.Transition{{To: "fill_a", When: configs.Ref{Raw: "true"}}}}}, seq.Steps[1:]...)...)
	}
	if err := cfg.Validate(blocks.Validate); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestBatchMixerHandOverMidBatch hands a held batch over to a program with
// a step added before the active one (a structural change, as mkrt apply
// makes it): the new program takes the batch in its step, found by name at
// another index, still held and with its time in step, and a resume
// written to it completes the batch.
func TestBatchMixerHandOverMidBatch(t *testing.T) {
	ctx, cancel, srv := mixerSim(t)
	defer cancel()
	old := startApp(ctx, t, mixerAt(t, srv.Addr(), false), "old", shm.Location{})
	waitFor(ctx, t, "old partition running", func() bool {
		return old.r.Heartbeat().State == wire.Running && old.r.Heartbeat().Cycle > 20
	})
	write := func(p *running, name string) {
		t.Helper()
		id, _ := p.tab.Lookup(name)
		res, err := p.r.Do(ctx, wire.Command{Kind: wire.WriteTag, Tag: id, Value: wire.Number(1), Origin: wire.NewOrigin("test")})
		if err != nil || res.Status != wire.Applied {
			t.Fatalf("write %s: %+v %v", name, res, err)
		}
	}
	value := func(p *running, name string) float64 { v, _ := p.value(ctx, t, name); return v }
	write(old, "batch_start")
	waitFor(ctx, t, "heating for 0.5 s", func() bool { return value(old, "batch_step") == mixHeat && value(old, "batch_time") > 0.5 })
	write(old, "batch_hold")
	waitFor(ctx, t, "held", func() bool { return value(old, "batch_held") == 1 })
	heldFor := value(old, "batch_time")

	nw := startApp(ctx, t, mixerAt(t, srv.Addr(), true), "new", old.loc)
	waitFor(ctx, t, "new partition on standby", func() bool {
		return nw.r.Heartbeat().Cycle > 5 && nw.r.HandOver().Counters().Mode == wire.Standby
	})
	origin, period, ok := old.r.HandOver().Grid()
	if !ok {
		t.Fatal("old partition published no cycle grid")
	}
	at := origin + ((old.r.Heartbeat().MonoNs+10*period-origin)/period+1)*period
	for _, c := range []struct {
		r    *shm.Reader
		kind wire.CommandKind
	}{{nw.r, wire.Take}, {old.r, wire.Release}} {
		if res, err := c.r.Do(ctx, wire.Command{Kind: c.kind, Tag: -1, Value: wire.Number(float64(at)), Origin: wire.NewOrigin("test")}); err != nil || res.Err() != nil {
			t.Fatalf("%v: %v %v", c.kind, err, res.Err())
		}
	}
	waitFor(ctx, t, "switch", func() bool {
		return nw.r.HandOver().Counters().Mode == wire.Driving && old.r.HandOver().Counters().Mode == wire.Released
	})
	waitFor(ctx, t, "cycles driven by the new program", func() bool { return nw.r.HandOver().Counters().Driven > 3 })
	if s, h, tm := value(nw, "batch_step"), value(nw, "batch_held"), value(nw, "batch_time"); s != mixHeat+1 || h != 1 || tm != heldFor || tm <= 0.5 {
		t.Fatalf("after the hand-over: step %v held %v time %v, want %d (heat, one on) held 1 time %v", s, h, tm, mixHeat+1, heldFor)
	}
	write(nw, "batch_resume")
	waitFor(ctx, t, "the batch completes in the new program", func() bool { return value(nw, "batch_step") == mixComplete+1 })
	if l := value(nw, "level"); l > 0.05 {
		t.Errorf("complete at level %.3f m, want <= 0.05", l)
	}
	cancel()
	for _, p := range []*running{old, nw} {
		<-p.done
	}
}
