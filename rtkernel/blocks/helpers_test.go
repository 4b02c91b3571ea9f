package blocks_test

import (
	"math"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
	"github.com/mkrt/mkrt/shm/tag"
)

const file = "plant.yaml"

// pos is a position in the imaginary plant.yaml.
func pos(line, col int) configs.Pos { return configs.Pos{File: file, Line: line, Col: col} }

// blk builds a block at line of plant.yaml (synth.Block).
func blk(line int, name, typ string, spec ...string) configs.Block {
	return synth.Block(file, line, name, typ, spec...)
}

// tg declares an internal tag: "name" (float64), "name:bool", "name:float64:degC".
func tg(spec string) configs.Tag { return synth.Tag(spec) }

// config is one task "main" of the blocks, with the tags.
func config(tags []string, blocks ...configs.Block) *configs.Config {
	cfg := &configs.Config{Tasks: []configs.Task{{Name: "main", Period: configs.Duration(10 * time.Millisecond), Blocks: blocks}}}
	for _, s := range tags {
		cfg.Tags = append(cfg.Tags, tg(s))
	}
	return cfg
}

// rig runs one task program against its tag table with an injected clock.
type rig struct {
	t   testing.TB
	tab *tag.Table
	tp  *blocks.TaskProgram
	now time.Duration
	dt  time.Duration
}

func newRig(t testing.TB, cfg *configs.Config, dt time.Duration) *rig {
	t.Helper()
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := blocks.Compile(cfg, tab)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	tp := p.Task(cfg.Tasks[0].Name)
	if tp == nil {
		t.Fatal("no task program")
	}
	return &rig{t: t, tab: tab, tp: tp, dt: dt}
}

func (r *rig) id(name string) tag.ID {
	r.t.Helper()
	id, ok := r.tab.Lookup(name)
	if !ok {
		r.t.Fatalf("no tag %q", name)
	}
	return id
}

// set writes a good value into a tag.
func (r *rig) set(name string, v float64) {
	r.tab.Samples[r.id(name)] = tag.Sample{Value: v, Quality: tag.Good}
}

func (r *rig) setBool(name string, b bool) {
	v := 0.0
	if b {
		v = 1
	}
	r.set(name, v)
}

func (r *rig) setQuality(name string, q tag.Quality, why tag.Reason) {
	s := &r.tab.Samples[r.id(name)]
	s.Quality, s.Reason = q, why
}

func (r *rig) get(name string) float64       { return r.tab.Samples[r.id(name)].Value }
func (r *rig) on(name string) bool           { return r.get(name) != 0 }
func (r *rig) sample(name string) tag.Sample { return r.tab.Samples[r.id(name)] }

// step runs one cycle dt after the previous one.
func (r *rig) step() {
	r.now += r.dt
	r.tp.Run(r.now, r.dt)
}

// steps runs n cycles.
func (r *rig) steps(n int) {
	for range n {
		r.step()
	}
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func compileOnly(cfg *configs.Config, r *rig) (*blocks.Program, error) {
	return blocks.Compile(cfg, r.tab)
}
