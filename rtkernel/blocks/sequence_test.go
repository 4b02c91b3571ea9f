package blocks_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/tag"
)

// batchTags are the tags of the test batch: a level it fills to, commands
// from SCADA, and the position published.
const batchTags = `tags:
  - {name: level}
  - {name: start, type: bool, writable: true}
  - {name: hold, type: bool, writable: true}
  - {name: resume, type: bool, writable: true}
  - {name: abort, type: bool, writable: true}
  - {name: valve, type: bool}
  - {name: heat, type: float64}
  - {name: seq_step, retain: true}
  - {name: seq_time, retain: true}
  - {name: seq_alarm, type: bool}
  - {name: seq_held, type: bool}
  - {name: seq_name, type: string}
`

// batchSteps is idle -> fill -> heat -> idle.
const batchSteps = `
      - name: idle
        next: [{to: fill, when: start}]
      - name: fill
        set: {valve: true}
        timeout: 1s
        next:
          - {to: heat, when: "level >= 2.5"}
      - name: heat
        set: {heat: 40}
        min_time: 200ms
        next: [{to: idle, when: "true"}]
`

func batchConfig(steps string) string {
	steps = strings.ReplaceAll(steps, "\n", "\n  ")
	return "metadata: {name: batch}\n" + batchTags + `tasks:
  - name: main
    period: 10ms
    blocks:
      - name: batch
        type: sequence
        inputs: {hold: hold, resume: resume, abort: abort}
        outputs: {step: seq_step, time: seq_time, alarm: seq_alarm, held: seq_held, name: seq_name}
        steps:` + steps
}

func batchLoad(t testing.TB, steps string) *configs.Config {
	t.Helper()
	cfg, err := configs.LoadBytes("batch.yaml", []byte(batchConfig(steps)), blocks.Validate)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func batchRig(t testing.TB, steps string) *rig {
	t.Helper()
	return newRig(t, batchLoad(t, steps), 10*time.Millisecond)
}

// The sequence steps through its transitions, sets its tags while a step
// is active, waits min_time, raises the alarm at a timeout, and obeys
// hold, resume and abort on their rising edges.
func TestSequenceRuns(t *testing.T) {
	r := batchRig(t, batchSteps)
	r.steps(3)
	if r.get("seq_step") != 0 || r.on("valve") {
		t.Fatalf("at rest: step %v valve %v, want 0 false", r.get("seq_step"), r.on("valve"))
	}
	r.setBool("start", true)
	r.step()
	if name := r.tab.Text[r.id("seq_name")]; name != "fill" {
		t.Fatalf("after start: name %q, want fill", name)
	}
	if r.get("seq_step") != 1 || !r.on("valve") || r.get("heat") != 0 {
		t.Fatalf("after start: step %v valve %v heat %v, want 1 true 0", r.get("seq_step"), r.on("valve"), r.get("heat"))
	}
	r.setBool("start", false)
	r.steps(50)
	if !near(r.get("seq_time"), 0.5, 1e-9) || r.on("seq_alarm") {
		t.Fatalf("in fill: time %v alarm %v, want 0.5 false", r.get("seq_time"), r.on("seq_alarm"))
	}
	r.steps(50)
	if !r.on("seq_alarm") {
		t.Fatal("fill active 1s: the timeout alarm is off")
	}
	// Hold freezes the step and its time; a second write of hold does nothing until resume.
	r.setBool("hold", true)
	r.set("level", 3)
	r.steps(5)
	if r.get("seq_step") != 1 || !r.on("seq_held") || !near(r.get("seq_time"), 1.0, 1e-9) {
		t.Fatalf("held: step %v held %v time %v, want 1 true 1.0", r.get("seq_step"), r.on("seq_held"), r.get("seq_time"))
	}
	r.setBool("resume", true)
	r.step()
	if r.get("seq_step") != 2 || r.on("seq_held") || r.on("seq_alarm") || r.on("valve") || r.get("heat") != 40 {
		t.Fatalf("resumed: step %v held %v alarm %v valve %v heat %v, want 2 false false false 40",
			r.get("seq_step"), r.on("seq_held"), r.on("seq_alarm"), r.on("valve"), r.get("heat"))
	}
	// min_time: heat's transition holds at once but waits 200ms.
	r.steps(19)
	if r.get("seq_step") != 2 {
		t.Fatalf("left heat after %v s, before its min_time", r.get("seq_time"))
	}
	r.step()
	if r.get("seq_step") != 0 || r.get("heat") != 0 {
		t.Fatalf("after min_time: step %v heat %v, want 0 0", r.get("seq_step"), r.get("heat"))
	}
	// Abort returns to the initial step from anywhere, and clears a hold.
	r.setBool("start", true)
	r.set("level", 0)
	r.step()
	r.setBool("hold", false)
	r.step()
	r.setBool("hold", true)
	r.step()
	r.setBool("abort", true)
	r.step()
	r.steps(3)
	if r.get("seq_step") != 0 || r.on("seq_held") || r.on("valve") {
		t.Fatalf("aborted: step %v held %v valve %v, want 0 false false", r.get("seq_step"), r.on("seq_held"), r.on("valve"))
	}
	if a := testing.AllocsPerRun(1000, r.step); a != 0 {
		t.Fatalf("%v allocations per cycle, want 0", a)
	}
}

// A condition of bad quality does not fire its transition.
func TestSequenceBadConditionHolds(t *testing.T) {
	r := batchRig(t, batchSteps)
	r.setBool("start", true)
	r.step()
	r.set("level", 3)
	r.setQuality("level", tag.Bad, tag.CommFailure)
	r.steps(3)
	if r.get("seq_step") != 1 {
		t.Fatalf("step %v on a bad level, want 1 (fill)", r.get("seq_step"))
	}
}

// Every load error of a sequence, at the place it was written.
func TestSequenceErrors(t *testing.T) {
	for _, tc := range []struct {
		name, steps, want string
	}{
		{"unknown step", `
      - name: idle
        next: [{to: fil, when: start}]
      - name: fill
        next: [{to: idle, when: start}]`, `25:23: sequence block "batch": step "idle" has a transition to unknown step "fil" (did you mean "fill"?)`},
		{"unreachable step", `
      - name: idle
        next: [{to: fill, when: start}]
      - name: fill
      - name: drain`, `27:11: sequence block "batch": step "drain" is never reached from the initial step "idle"`},
		{"number condition", `
      - name: idle
        next:
          - {to: fill, when: "level + 1"}
      - name: fill`, `26:32: is a bool but the expression "level + 1" is a number`},
		{"number tag condition", `
      - name: idle
        next:
          - {to: fill, when: level}
      - name: fill`, `26:32: is a bool but tag "level" is a float64`},
		{"bad expression", `
      - name: idle
        next:
          - {to: fill, when: "start && levl > 2"}
      - name: fill`, `26:42: unknown name "levl"`},
		{"duplicate step", `
      - name: idle
        next: [{to: idle, when: start}]
      - name: idle`, `26:17: step name "idle" is already used`},
		{"unknown tag set", `
      - name: idle
        set: {valv: true}`, `25:17: step "idle" sets unknown tag "valv"`},
		{"number into bool tag", `
      - name: idle
        set: {valve: 40}`, `25:24: sets bool tag "valve": write true or false`},
		{"tag with two writers", `
      - name: idle
        set: {seq_held: true}`, `25:17: already writes (a tag has one writer)`},
		{"bad timeout", `
      - name: idle
        timeout: soon`, `25:20: timeout of step "idle" is a time`},
		{"no steps", ` []`, `19:9: sequence block "batch" needs its steps`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "batch.yaml")
			if err := os.WriteFile(path, []byte(batchConfig(tc.steps)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := configs.Load(path, blocks.Validate)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			at, msg, _ := strings.Cut(tc.want, ": ")
			found := false
			for _, line := range strings.Split(err.Error(), "\n") {
				found = found || strings.Contains(line, "batch.yaml:"+at+": ") && strings.Contains(line, msg)
			}
			if !found {
				t.Fatalf("got\n%v\nwant a problem containing\n%s", err, tc.want)
			}
		})
	}
}

// A hand-over to a program with a step added before the active one
// carries the position by step name, with its time in step.
func TestSequenceHandOver(t *testing.T) {
	old := batchRig(t, batchSteps)
	old.setBool("start", true)
	old.steps(31)
	if old.get("seq_step") != 1 {
		t.Fatalf("old program in step %v, want 1 (fill)", old.get("seq_step"))
	}
	export := old.tp.ExportState(nil)

	changed := strings.Replace(batchSteps, "      - name: fill", `      - name: prime
        next: [{to: fill, when: "true"}]
      - name: fill`, 1)
	changed = strings.Replace(changed, "next: [{to: fill, when: start}]", "next: [{to: prime, when: start}]", 1)
	nw := batchRig(t, changed)
	if _, err := nw.tp.ImportState(export); err != nil {
		t.Fatal(err)
	}
	nw.step()
	if nw.get("seq_step") != 2 || !nw.on("valve") || !near(nw.get("seq_time"), 0.31, 1e-9) {
		t.Fatalf("after the hand-over: step %v valve %v time %v, want 2 (fill) true 0.31", nw.get("seq_step"), nw.on("valve"), nw.get("seq_time"))
	}
}

// enableConfig is a sequence whose step run enables a timer and an expr
// block; the timer's condition is always on, so its et shows when it ran.
func enableConfig(enable string) string {
	return "metadata: {name: batch}\n" + batchTags + `  - {name: et}
  - {name: twice}
tasks:
  - name: main
    period: 10ms
    blocks:
      - name: timer
        type: ton
        inputs: {in: true}
        params: {pt: 1h}
        outputs: {et: et}
      - name: batch
        type: sequence
        outputs: {step: seq_step}
        steps:
          - name: idle
            next: [{to: run, when: start}]
          - name: run
            enable: [` + enable + `]
            next: [{to: idle, when: "!start"}]
      - name: double
        type: expr
        expr: "level * 2"
        outputs: {out: twice}
`
}

// A block a step enables runs only while that step is active, from the
// cycle the step starts; otherwise it holds its state and outputs.
func TestSequenceEnablesBlocks(t *testing.T) {
	cfg, err := configs.LoadBytes("batch.yaml", []byte(enableConfig("timer, double")), blocks.Validate)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, cfg, 10*time.Millisecond)
	r.set("level", 1)
	r.steps(5)
	if r.get("et") != 0 || r.get("twice") != 0 {
		t.Fatalf("in idle: et %v twice %v, want 0 0 (not enabled)", r.get("et"), r.get("twice"))
	}
	r.setBool("start", true)
	r.steps(10)
	if !near(r.get("et"), 0.09, 1e-9) || r.get("twice") != 2 {
		t.Fatalf("in run: et %v twice %v, want 0.09 2", r.get("et"), r.get("twice"))
	}
	r.setBool("start", false)
	r.set("level", 3)
	r.steps(10)
	if !near(r.get("et"), 0.09, 1e-9) || r.get("twice") != 2 || r.sample("twice").Quality != tag.Good {
		t.Fatalf("back in idle: et %v twice %v (%v), want 0.09 and 2 held, good", r.get("et"), r.get("twice"), r.sample("twice").Quality)
	}
	if a := testing.AllocsPerRun(100, r.step); a != 0 {
		t.Fatalf("%v allocations per cycle, want 0", a)
	}
}

// What a step may not enable, at the place it is named.
func TestSequenceEnableErrors(t *testing.T) {
	for _, tc := range []struct{ enable, want string }{
		{"timr", `step "run" enables "timr", which is not a block of task "main" (did you mean "timer"?)`},
		{"batch", `step "run" enables sequence block "batch"; a step enables function blocks`},
	} {
		path := filepath.Join(t.TempDir(), "batch.yaml")
		if err := os.WriteFile(path, []byte(enableConfig(tc.enable)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := configs.Load(path, blocks.Validate)
		if err == nil || !strings.Contains(err.Error(), "batch.yaml:33:") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("enable %s: got %v, want at line 33: %s", tc.enable, err, tc.want)
		}
	}
}

// A step entered again reads its conditions as they are now, not as they
// were when it was left (its expressions run only while it is active).
func TestSequenceReenteredStepReadsFreshConditions(t *testing.T) {
	r := batchRig(t, `
      - name: a
        next: [{to: b, when: "level > 1"}]
      - name: b
        next: [{to: a, when: "level < 0"}]`)
	r.set("level", 2)
	r.steps(4)
	if r.get("seq_step") != 1 {
		t.Fatalf("level 2: step %v, want 1 (b)", r.get("seq_step"))
	}
	r.set("level", -1)
	r.step()
	for i := range 5 {
		r.step()
		if r.get("seq_step") != 0 {
			t.Fatalf("level -1, cycle %d in a: step %v, want 0 (a), staying there", i+1, r.get("seq_step"))
		}
	}
}

// The name output writes a string tag and nothing else.
func TestSequenceNameIntoNumberTag(t *testing.T) {
	text := strings.Replace(batchConfig(batchSteps), "name: seq_name}", "name: heat}", 1)
	_, err := configs.LoadBytes("batch.yaml", []byte(text), blocks.Validate)
	if err == nil || !strings.Contains(err.Error(), `output "name" of sequence block "batch" writes tag "heat", a float64: it writes the step's name into a string tag`) {
		t.Fatalf("got %v, want the name output refused for a number tag", err)
	}
}

// Steps are structure: changing one is a hand-over, never a live
// parameter change that would leave the running program on the old steps.
func TestSequenceChangeIsStructural(t *testing.T) {
	old := batchLoad(t, batchSteps)
	for _, change := range [][2]string{
		{"min_time: 200ms", "min_time: 300ms"},
		{"set: {heat: 40}", "set: {heat: 45}"},
		{`when: "level >= 2.5"`, `when: "level >= 2.4"`},
	} {
		changed := batchLoad(t, strings.Replace(batchSteps, change[0], change[1], 1))
		if _, err := blocks.ParamChanges(old, changed); !errors.Is(err, blocks.ErrStructural) {
			t.Errorf("%s -> %s: %v, want ErrStructural", change[0], change[1], err)
		}
	}
}

// State from elsewhere that holds no step and no time (NaN, beyond every
// index) starts the initial step instead of stopping the sequence.
func TestSequenceGarbageState(t *testing.T) {
	for _, bad := range [][2]float64{{math.NaN(), math.NaN()}, {1e300, math.Inf(1)}, {-5, -1}} {
		r := batchRig(t, batchSteps)
		r.step()
		st := r.tp.SaveState(nil)
		st[2], st[3] = bad[0], bad[1] // after the fingerprint: init, step, time
		if err := r.tp.LoadState(st); err != nil {
			t.Fatal(err)
		}
		r.setBool("start", true)
		r.steps(2)
		if r.get("seq_step") != 1 || !(r.get("seq_time") >= 0 && r.get("seq_time") < 1) {
			t.Errorf("state step %v time %v: step %v time %v, want 1 (fill) and a time from 0", bad[0], bad[1], r.get("seq_step"), r.get("seq_time"))
		}
	}
}

// A restart resumes the step and time from the retain tags the outputs
// write (the application restores them into the table before the first
// cycle).
func TestSequenceRetained(t *testing.T) {
	r := batchRig(t, batchSteps)
	r.set("seq_step", 2)
	r.set("seq_time", 0.15)
	r.step()
	if r.get("seq_step") != 2 || r.get("heat") != 40 || !near(r.get("seq_time"), 0.16, 1e-9) {
		t.Fatalf("restarted: step %v heat %v time %v, want 2 40 0.16", r.get("seq_step"), r.get("heat"), r.get("seq_time"))
	}
	r2 := batchRig(t, batchSteps)
	r2.set("seq_step", 7) // not a step of this sequence
	r2.step()
	if r2.get("seq_step") != 0 {
		t.Fatalf("restarted from a step beyond the list: step %v, want 0", r2.get("seq_step"))
	}
}

// BenchmarkSequence10StepsTagConditions is the sequence alone: a 10-step
// sequence whose transitions read bool tags (no expression to evaluate).
func BenchmarkSequence10StepsTagConditions(b *testing.B) {
	var sb strings.Builder
	for i := range 10 {
		fmt.Fprintf(&sb, "\n      - name: s%d\n        set: {valve: %v, heat: %d}\n        timeout: 1s\n        next:\n          - {to: s0, when: abort}\n          - {to: s%d, when: start}",
			i, i%2 == 0, i*10, (i+1)%10)
	}
	r := batchRig(b, sb.String())
	r.setBool("start", true)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.step()
	}
}

// BenchmarkSequence10Steps is one cycle of a 10-step sequence with two
// transitions per step and four tags set.
func BenchmarkSequence10Steps(b *testing.B) {
	var sb strings.Builder
	for i := range 10 {
		fmt.Fprintf(&sb, "\n      - name: s%d\n        set: {valve: %v, heat: %d}\n        timeout: 1s\n        next:\n          - {to: s%d, when: \"level > %d && !abort\"}\n          - {to: s0, when: abort}",
			i, i%2 == 0, i*10, (i+1)%10, i)
	}
	r := batchRig(b, sb.String())
	r.set("level", 100)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.step()
	}
}
