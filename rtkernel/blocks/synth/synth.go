// Package synth builds synthetic block programs of a plant's shape: control
// loops of GroupSize mixed blocks each (conditioning, PID, alarms,
// interlocks, timers, counters), and the input feeder that keeps their
// inputs moving. The blocks package's benchmarks and the latency runner
// (`mkrt latency run --blocks N`) measure the same programs.
//
// It needs nothing to run: it only builds configs and writes tag tables.
package synth

import (
	"fmt"
	"strings"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// GroupSize is the number of blocks of one control loop.
const GroupSize = 20

// File is the file name the blocks' positions carry.
const File = "synth.yaml"

// Groups is the number of control loops that hold at least blocks blocks:
// blocks rounded up to whole loops.
func Groups(blocks int) int { return (blocks + GroupSize - 1) / GroupSize }

// Block builds a block at line of file, as the loader would: each
// "in:port=ref" input at the next lines, column 7, then each "p:name=value"
// parameter; outputs are "out:port=tag".
func Block(file string, line int, name, typ string, spec ...string) configs.Block {
	b := configs.Block{Pos: configs.Pos{File: file, Line: line, Col: 5}, Name: name, Type: typ,
		Inputs: map[string]configs.Ref{}, Outputs: map[string]string{}, Params: map[string]configs.Value{}}
	for i, s := range spec {
		kind, kv, _ := strings.Cut(s, ":")
		k, v, _ := strings.Cut(kv, "=")
		p := configs.Pos{File: file, Line: line + 1 + i, Col: 7}
		switch kind {
		case "in":
			b.Inputs[k] = configs.Ref{Pos: p, Raw: v}
		case "out":
			b.Outputs[k] = v
		case "p":
			b.Params[k] = configs.Value{Pos: p, Raw: v, Set: true}
		}
	}
	return b
}

// Tag declares an internal tag: "name" (float64), "name:bool",
// "name:float64:degC".
func Tag(spec string) configs.Tag {
	parts := strings.Split(spec, ":")
	t := configs.Tag{Name: parts[0]}
	if len(parts) > 1 {
		t.Type = tag.DataType(parts[1])
	}
	if len(parts) > 2 {
		t.Unit = parts[2]
	}
	return t
}

// Loop is control loop g: GroupSize blocks named g<g>_<name> that read tags
// pv<g>, sp<g>, run<g> and write out<g> and flag<g>.
func Loop(g int) []configs.Block {
	n := func(s string) string { return fmt.Sprintf("g%d_%s", g, s) }
	ref := func(s, port string) string { return n(s) + "." + port }
	line := g * 1000
	blk := func(name, typ string, spec ...string) configs.Block {
		line += 20
		return Block(File, line, n(name), typ, spec...)
	}
	return []configs.Block{
		blk("scale", "scale", fmt.Sprintf("in:in=pv%d", g), "p:gain=0.01", "p:offset=-2"),
		blk("filter", "lag", "in:in="+ref("scale", "out"), "p:tau=500ms"),
		blk("clamp", "limit", "in:in="+ref("filter", "out"), "p:min=0", "p:max=100"),
		blk("sp_ramp", "ramp", fmt.Sprintf("in:in=sp%d", g), "p:rate=5"),
		blk("pid", "pid", "in:pv="+ref("clamp", "out"), "in:sp="+ref("sp_ramp", "out"),
			"in:track="+ref("manual", "out"), "in:man_out=0",
			"p:kp=2", "p:ti=20s", "p:td=2s", "p:rate_max=10", fmt.Sprintf("out:out=out%d", g)),
		blk("err", "deadband", "in:in="+ref("clamp", "out"), "p:width=0.5"),
		blk("alarm", "alarm", "in:in="+ref("clamp", "out"), "p:hi=90", "p:hihi=95", "p:lo=10", "p:deadband=1", "p:delay=2s"),
		blk("high", "compare", "in:a="+ref("clamp", "out"), "in:b="+ref("sp_ramp", "out"), "p:op=gt", "p:hysteresis=2"),
		blk("confirm", "ton", "in:in="+ref("high", "out"), "p:pt=5s"),
		blk("ok", "not", "in:in="+ref("alarm", "active")),
		blk("permit", "and", fmt.Sprintf("in:in1=run%d", g), "in:in2="+ref("ok", "out"), "in:in3="+ref("held", "out")),
		blk("manual", "not", "in:in="+ref("permit", "out")),
		blk("starts", "counter", fmt.Sprintf("in:up=run%d", g), "in:reset="+ref("confirm", "q"), "p:pv=100"),
		blk("pick", "select", "in:sel="+ref("permit", "out"), "in:in1=0", "in:in2="+ref("pid", "out")),
		blk("lo", "min", "in:in1="+ref("pick", "out"), "in:in2="+ref("clamp", "out"), "in:in3=80"),
		blk("hi", "max", "in:in1="+ref("lo", "out"), "in:in2="+ref("err", "out")),
		blk("avg", "average", "in:in1="+ref("hi", "out"), "in:in2="+ref("lo", "out"), "in:in3="+ref("clamp", "out"), "in:in4="+ref("pick", "out")),
		blk("level", "hysteresis", "in:in="+ref("avg", "out"), "p:on=60", "p:off=40"),
		blk("any", "or", "in:in1="+ref("level", "out"), "in:in2="+ref("alarm", "hi"), fmt.Sprintf("out:out=flag%d", g)),
		blk("held", "delay", "in:in="+ref("permit", "out"), "p:initial=true"),
	}
}

// Loops is the tags and blocks of control loops first to first+n-1.
func Loops(first, n int) ([]configs.Tag, []configs.Block) {
	var tags []configs.Tag
	var bs []configs.Block
	for g := first; g < first+n; g++ {
		for _, s := range []string{"pv%d", "sp%d", "run%d:bool", "out%d", "flag%d:bool"} {
			tags = append(tags, Tag(fmt.Sprintf(s, g)))
		}
		bs = append(bs, Loop(g)...)
	}
	return tags, bs
}

// Plant is a config of one task "main" (10 ms) running loops control loops.
func Plant(loops int) *configs.Config {
	tags, bs := Loops(0, loops)
	return &configs.Config{Tags: tags, Tasks: []configs.Task{{Name: "main", Period: configs.Duration(10 * time.Millisecond), Blocks: bs}}}
}

// Feeder sets the inputs of control loops in a tag table: pv<g> to a
// moving value, sp<g> to 40, run<g> on.
type Feeder struct {
	pv, sp, run []tag.ID
}

// NewFeeder finds the inputs of loops first to first+n-1 in tab.
func NewFeeder(tab *tag.Table, first, n int) (*Feeder, error) {
	f := &Feeder{}
	for g := first; g < first+n; g++ {
		for _, in := range []struct {
			name string
			ids  *[]tag.ID
		}{{"pv", &f.pv}, {"sp", &f.sp}, {"run", &f.run}} {
			id, ok := tab.Lookup(fmt.Sprintf("%s%d", in.name, g))
			if !ok {
				return nil, fmt.Errorf("synth: no tag %s%d", in.name, g)
			}
			*in.ids = append(*in.ids, id)
		}
	}
	return f, nil
}

// Feed writes the inputs into samples, pv<g> = pv + g. Hot path: allocates
// nothing.
func (f *Feeder) Feed(samples []tag.Sample, pv float64) {
	for g := range f.pv {
		samples[f.pv[g]] = tag.Sample{Value: pv + float64(g), Quality: tag.Good}
		samples[f.sp[g]] = tag.Sample{Value: 40, Quality: tag.Good}
		samples[f.run[g]] = tag.Sample{Value: 1, Quality: tag.Good}
	}
}
