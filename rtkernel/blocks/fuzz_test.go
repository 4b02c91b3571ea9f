package blocks_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/tag"
)

// Compile never panics on any config the loader accepts, and what compiles
// runs without panicking, whatever the tag values and cycle times.
func FuzzCompile(f *testing.F) {
	files, _ := filepath.Glob("../../configs/examples/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data, 1.5, int64(10*time.Millisecond))
		}
	}
	f.Add([]byte(`
tags: [{name: a}, {name: b, type: bool}]
tasks:
  - name: t
    period: 1ms
    blocks:
      - {name: x, type: pid, inputs: {pv: a, sp: y.out, track: b, man_out: 3}, outputs: {out: a}}
      - {name: y, type: delay, inputs: {in: x.out}}
      - {name: z, type: alarm, inputs: {in: x.out}, params: {hi: 1, delay: 1ms}}
`), -1e308, int64(-5))
	f.Add([]byte(`
tags: [{name: a, unit: m}, {name: b, type: bool}, {name: c, type: int16}]
tasks:
  - name: t
    period: 1ms
    blocks:
      - {name: x, type: expr, expr: "if(b && a > 0, sqrt(a) / (a - 1), c % 0) + y.out", outputs: {out: a}}
      - {name: y, type: delay, inputs: {in: "x.out * 2"}}
      - {name: z, type: mux, inputs: {k: "c - 1", in0: a, in1: 'a + 1'}}
      - {name: w, type: ctud, inputs: {cu: "b || a < 0", r: b}, params: {pv: 3}}
`), 2.0, int64(time.Millisecond))
	f.Fuzz(func(t *testing.T, data []byte, v float64, dt int64) {
		cfg, err := configs.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		tab, err := cfg.TagTable()
		if err != nil {
			return
		}
		p, err := blocks.Compile(cfg, tab)
		if err != nil {
			return
		}
		for i := range tab.Samples {
			tab.Samples[i] = tag.Sample{Value: v, Quality: tag.Quality(i % 5)}
		}
		for _, tp := range p.Tasks() {
			for k := range 3 {
				tp.Run(time.Duration(k)*time.Duration(dt), time.Duration(dt))
			}
			st := tp.SaveState(nil)
			if err := tp.LoadState(st); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// Any expression, as an expr block's expr: and as an input, compiles or is
// refused with errors, and what compiles runs without panicking.
func FuzzExprBlock(f *testing.F) {
	for _, s := range []string{"a * 2 + e.out", "if(b, sqrt(a), ln(a)) / (a - 1)", "k.out > 2 && !b", `"a" % 0`, "in1 + x.out", "min(a, 2, in1) + expt(a, 0.5)"} {
		f.Add(s, 2.0)
	}
	f.Fuzz(func(t *testing.T, src string, v float64) {
		e := blk(1, "e", "expr", "in:in1=a", "out:out=o")
		e.Expr = configs.Ref{Pos: pos(1, 20), Raw: src}
		tags := []string{"a", "b:bool", "o", "p", "q:bool"}
		numbers := config(tags, e, blk(3, "x", "limit", "in:in="+src, "p:max=10", "out:out=p"), blk(5, "k", "delay", "in:in=e.out"))
		bools := config(tags, blk(7, "n", "not", "in:in="+src, "out:out=q"), blk(9, "k", "delay", "in:in=a"), blk(11, "x", "move", "in:in=a"))
		for _, cfg := range []*configs.Config{numbers, bools} {
			tab, err := cfg.TagTable()
			if err != nil {
				t.Fatal(err)
			}
			if err := blocks.Validate(cfg); err != nil {
				continue
			}
			p, err := blocks.Compile(cfg, tab)
			if err != nil {
				continue // names and wiring: configs' rules, which Validate leaves to it
			}
			for i := range tab.Samples {
				tab.Samples[i] = tag.Sample{Value: v, Quality: tag.Quality(i % 5)}
			}
			for k := range 3 {
				p.Tasks()[0].Run(time.Duration(k)*time.Millisecond, time.Millisecond)
			}
		}
	})
}
