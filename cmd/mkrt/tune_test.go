package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
)

// tuneConfig is a pid loop on pv with its tune outputs wired, and a high
// alarm on pv at alarmHi.
const tuneConfig = `metadata: {name: tuned}
tags:
  - {name: pv}
  - {name: sp, initial: 80}
  - {name: u}
  - {name: state}
  - {name: ku}
  - {name: pu}
  - {name: pv_hi, type: bool}
tasks:
  - name: loop
    period: 10ms
    blocks:
      - name: tic
        type: pid
        inputs: {pv: pv, sp: sp}
        outputs: {out: u, tune_state: state, tune_ku: ku, tune_pu: pu}
        params: {kp: 1, ti: 20s, bias: 40}
      - name: tah
        type: alarm
        inputs: {in: pv}
        outputs: {hi: pv_hi}
        params: {hi: %v}
`

// plantController is a control.Controller that runs the real control
// program of the config it was started with against a simulated
// first-order-plus-dead-time process 2 e^{-2s}/(10s+1), ten cycles of
// 10ms per millisecond; Apply changes parameters live as the supervisor
// does (blocks.ParamChanges, then SetParam).
type plantController struct {
	mu      sync.Mutex
	applied *configs.Config
	tab     *tag.Table
	tp      *blocks.TaskProgram
	y       float64
	dead    []float64
	at      int
	now     time.Duration
	applies []string
}

func newPlantController(t *testing.T, text string) *plantController {
	t.Helper()
	cfg, err := configs.LoadBytes("plant.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := blocks.Compile(cfg, tab)
	if err != nil {
		t.Fatal(err)
	}
	c := &plantController{applied: cfg, tab: tab, tp: p.Task("loop"), y: 80, dead: make([]float64, 200)}
	for i := range c.dead {
		c.dead[i] = 40
	}
	c.set("sp", 80)
	return c
}

func (c *plantController) id(name string) tag.ID {
	id, ok := c.tab.Lookup(name)
	if !ok {
		panic("no tag " + name)
	}
	return id
}

func (c *plantController) set(name string, v float64) {
	c.tab.Samples[c.id(name)] = tag.Sample{Value: v, Quality: tag.Good}
}

func (c *plantController) get(name string) float64 { return c.tab.Samples[c.id(name)].Value }

// run steps the loop until ctx ends.
func (c *plantController) run(ctx context.Context) {
	const dt = 10 * time.Millisecond
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c.mu.Lock()
		for range 10 {
			c.set("pv", c.y)
			c.now += dt
			c.tp.Run(c.now, dt)
			u := c.get("u")
			c.dead[c.at], u = u, c.dead[c.at]
			c.at = (c.at + 1) % len(c.dead)
			c.y += (2*u - c.y) * -math.Expm1(-dt.Seconds()/10)
		}
		c.mu.Unlock()
	}
}

func (c *plantController) Status() supervisor.Status {
	return supervisor.Status{Partition: "tuned", Backend: "process", State: supervisor.Running}
}

func (c *plantController) Tags() []control.TagValue {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []control.TagValue
	for _, n := range []string{"pv", "sp", "u", "state", "ku", "pu", "pv_hi"} {
		out = append(out, control.TagValue{Name: n, Value: c.get(n), Quality: "good"})
	}
	return out
}

func (c *plantController) Set(ctx context.Context, name, value string) (control.Result, error) {
	return control.Result{}, control.ErrForbidden
}

func (c *plantController) Apply(ctx context.Context, file string, text []byte) (control.ApplyResult, error) {
	nc, err := configs.LoadBytes(file, text)
	if err != nil {
		return control.ApplyResult{}, fmt.Errorf("%w: %v", control.ErrInvalid, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	changes, err := blocks.ParamChanges(c.applied, nc)
	if err != nil {
		return control.ApplyResult{}, fmt.Errorf("%w: %v", control.ErrInvalid, err)
	}
	var res control.ApplyResult
	for _, p := range changes {
		if err := c.tp.SetParamPath(p.Name(), p.Value); err != nil {
			return res, fmt.Errorf("%w: %v", control.ErrInvalid, err)
		}
		ch := fmt.Sprintf("%s: %s -> %s", p.Name(), p.Old, p.New)
		res.Changes = append(res.Changes, ch)
		c.applies = append(c.applies, ch)
	}
	c.applied, res.Applied = nc, true
	return res, nil
}

// startPlant serves a plantController on a socket; it returns the config
// file and the socket.
func startPlant(t *testing.T, alarmHi float64) (c *plantController, file, sock string) {
	t.Helper()
	text := fmt.Sprintf(tuneConfig, alarmHi)
	c = newPlantController(t, text)
	dir := t.TempDir()
	file, sock = filepath.Join(dir, "plant.yaml"), filepath.Join(dir, "tuned.sock")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := control.Listen(sock, c, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Serve(ctx) }()
	go func() { defer wg.Done(); c.run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	// Let the loop settle.
	time.Sleep(50 * time.Millisecond)
	return c, file, sock
}

// mkrt tune runs the real pid block's relay experiment on a running loop,
// reports Ku and Pu near the process's (4.25 and 7.44s), and with --apply
// applies the rule's gains live, tune back at 0.
func TestTuneEndToEnd(t *testing.T) {
	c, file, sock := startPlant(t, 1000)
	out, err := runMkrt(t, "tune", "loop.tic", "--config", file, "--socket", sock, "--amplitude", "5", "--max-time", "5m", "--poll", "20ms", "--apply", "--rule", "zn")
	if err != nil {
		t.Fatalf("mkrt tune: %v\n%s", err, out)
	}
	t.Log(out)
	c.mu.Lock()
	defer c.mu.Unlock()
	ku, pu := c.get("ku"), c.get("pu")
	if math.Abs(ku-4.251) > 0.1*4.251 || math.Abs(pu-7.44) > 0.1*7.44 {
		t.Errorf("Ku %v Pu %v, want within 10%% of 4.251 and 7.44s", ku, pu)
	}
	if !strings.Contains(out, "Ku = "+tuneNum(ku)) || !strings.Contains(out, "tyreus-luyben") {
		t.Errorf("output does not report Ku %v and the rules:\n%s", ku, out)
	}
	kp, ti, td, _ := blocks.TuneGains("zn", ku, pu)
	want := []string{"tic.kp: 1 -> " + tuneNum(kp), "tic.ti: 20s -> " + tuneSeconds(ti), "tic.td:  -> " + tuneSeconds(td), "tic.tune: 5 -> 0"}
	last := strings.Join(c.applies, "\n")
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("applied changes lack %q:\n%s", w, last)
		}
	}
	if c.get("state") != blocks.TuneDone {
		t.Errorf("tune_state %v, want done", c.get("state"))
	}
}

// An alarm of the task turning on aborts the experiment: the output goes
// back to where it was and tune back to 0.
func TestTuneAbortsOnAlarm(t *testing.T) {
	c, file, sock := startPlant(t, 81) // pv swings about ±2 around 80
	c.mu.Lock()
	u0 := c.get("u")
	c.mu.Unlock()
	out, err := runMkrt(t, "tune", "loop.tic", "--config", file, "--socket", sock, "--amplitude", "5", "--max-time", "5m", "--poll", "10ms", "--apply")
	if err == nil || !strings.Contains(err.Error(), "aborted: alarm pv_hi turned on") {
		t.Fatalf("mkrt tune with an alarm at 81: err %v\n%s", err, out)
	}
	time.Sleep(20 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.get("state"); st != blocks.TuneAborted {
		t.Errorf("tune_state %v after the alarm, want aborted", st)
	}
	if strings.Contains(strings.Join(c.applies, "\n"), "tic.kp") {
		t.Errorf("gains applied after an aborted experiment: %v", c.applies)
	}
	// Off the relay (u0 ± 5): back at u0, the pid acting on the error left.
	if u := c.get("u"); math.Abs(u-u0) > 3 {
		t.Errorf("output %v after the abort, want back near %v", u, u0)
	}
}

func TestTuneBadInput(t *testing.T) {
	_, file, sock := startPlant(t, 1000)
	unwired := filepath.Join(t.TempDir(), "unwired.yaml")
	os.WriteFile(unwired, []byte(strings.Replace(fmt.Sprintf(tuneConfig, 1000), ", tune_state: state, tune_ku: ku, tune_pu: pu", "", 1)), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tic"}, "name the block as TASK.BLOCK"},
		{[]string{"loop.tic"}, "--config is required"},
		{[]string{"loop.tic", "--config", file}, "--amplitude 0: give the relay amplitude"},
		{[]string{"loop.tic", "--config", file, "--amplitude", "5", "--rule", "fast"}, `--rule "fast": one of zn, ah, tyreus-luyben`},
		{[]string{"loop.tic", "--config", file, "--amplitude", "5", "--max-time", "0s"}, "--max-time 0s"},
		{[]string{"other.tic", "--config", file, "--amplitude", "5"}, `no task "other"`},
		{[]string{"loop.tah", "--config", file, "--amplitude", "5"}, "is a alarm; only a pid block can be tuned"},
		{[]string{"loop.tic", "--config", unwired, "--amplitude", "5"}, "wire the block's outputs tune_state, tune_ku and tune_pu"},
	} {
		out, err := runMkrt(t, append(append([]string{"tune"}, tc.args...), "--socket", sock)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mkrt tune %s: err %v, want %q\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
}

// Ctrl-C (the context ending) and the block's own --max-time both end the
// experiment with tune back at 0 and no gains applied.
func TestTuneAbortsOnInterruptAndMaxTime(t *testing.T) {
	for _, how := range []string{"interrupt", "max time"} {
		c, file, sock := startPlant(t, 1000)
		cl := control.NewClient(sock)
		o := tuneOptions{config: file, amplitude: 5, maxTime: 5 * time.Minute, rule: "zn", apply: true, poll: 10 * time.Millisecond}
		ctx, cancel := context.WithCancel(context.Background())
		want := "aborted; the output is back where it was"
		if how == "interrupt" {
			time.AfterFunc(30*time.Millisecond, cancel) // about 3s of plant time: before a result
		} else {
			o.maxTime = 2 * time.Second // plant time: 20ms here
			want = "the block aborted the experiment (it ran past --max-time 2s"
		}
		var out strings.Builder
		err := runTune(ctx, cl, &out, "loop.tic", o)
		cancel()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err %v, want %q\n%s", how, err, want, out.String())
		}
		c.mu.Lock()
		applies := strings.Join(c.applies, "\n")
		c.mu.Unlock()
		if !strings.HasSuffix(applies, "tic.tune: 5 -> 0") || strings.Contains(applies, "tic.kp") {
			t.Errorf("%s: applied changes, want tune back to 0 and no gains:\n%s", how, applies)
		}
	}
}

// Without --apply only tune goes back to 0; --json prints the result.
func TestTuneJSONNotApplied(t *testing.T) {
	c, file, sock := startPlant(t, 1000)
	out, err := runMkrt(t, "tune", "loop.tic", "--config", file, "--socket", sock, "--amplitude", "5", "--poll", "20ms", "--json")
	if err != nil {
		t.Fatalf("mkrt tune --json: %v\n%s", err, out)
	}
	var res tuneResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not one JSON result: %v\n%s", err, out)
	}
	if res.Block != "loop.tic" || !(res.Ku > 3.8 && res.Ku < 4.7) || len(res.Gains) != 3 || res.Applied || strings.Join(res.Changes, ";") != "tic.tune: 5 -> 0" {
		t.Errorf("result %+v, want Ku near 4.25, three rules, not applied, only tune back to 0", res)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if kp := c.applied.Tasks[0].Blocks[0].Params["kp"].Raw; kp != "1" {
		t.Errorf("kp %q in the applied config, want 1 (not applied)", kp)
	}
}
