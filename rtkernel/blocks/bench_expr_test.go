package blocks_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/rtkernel/blocks/expr"
	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
)

// exprGroup is synth.Loop with four of its blocks written as expressions:
// the conditioning and the min/max/average stage.
func exprGroup(g int) []configs.Block {
	bs := synth.Loop(g)
	n := func(s string) string { return fmt.Sprintf("g%d_%s", g, s) }
	srcs := map[string]string{
		n("scale"): fmt.Sprintf("pv%d * 0.01 - 2", g),
		n("lo"):    fmt.Sprintf("min(%s.out, %s.out, 80.0)", n("pick"), n("clamp")),
		n("hi"):    fmt.Sprintf("max(%s.out, %s.out)", n("lo"), n("err")),
		n("avg"):   fmt.Sprintf("(%s.out + %s.out + %s.out + %s.out) / 4", n("hi"), n("lo"), n("clamp"), n("pick")),
	}
	for i, b := range bs {
		src, ok := srcs[b.Name]
		if !ok {
			continue
		}
		e := configs.Block{Pos: b.Pos, Name: b.Name, Type: "expr", Expr: configs.Ref{Pos: b.Pos, Raw: src}, Outputs: b.Outputs}
		bs[i] = e
	}
	return bs
}

func exprPlantConfig(groups int) *configs.Config {
	cfg := plantConfig(groups)
	var bs []configs.Block
	for g := range groups {
		bs = append(bs, exprGroup(g)...)
	}
	cfg.Tasks[0].Blocks = bs
	return cfg
}

func TestExprPlantProgramRuns(t *testing.T) {
	runLoops(t, newRig(t, exprPlantConfig(3), 10*time.Millisecond), 3, 100)
}

// BenchmarkRun1000Expr runs one cycle of a 1,000-block program of which
// 200 blocks are expressions, and reports the time per block.
func BenchmarkRun1000Expr(b *testing.B) { benchLoops(b, exprPlantConfig(50)) }

// bigConfig is the text of a config of at least lines lines: loops of
// tags and blocks, a fifth of the blocks expressions.
func bigConfig(lines int) string {
	var tags, blks strings.Builder
	n := 0
	for g := 0; n < lines; g++ {
		fmt.Fprintf(&tags, "  - {name: pv%d, unit: m3/h}\n  - {name: sp%d, unit: m3/h, writable: true}\n  - {name: out%d, unit: \"%%\"}\n  - {name: ok%d, type: bool}\n", g, g, g, g)
		fmt.Fprintf(&blks, `      - name: f%[1]d
        type: lag
        inputs:
          in: pv%[1]d
        params:
          tau: 2s
      - name: c%[1]d
        type: pid
        inputs:
          pv: f%[1]d.out
          sp: "limit(0, sp%[1]d, 500)"
        params:
          kp: 1.5
          ti: 10s
        outputs:
          out: out%[1]d
      - name: e%[1]d
        type: expr
        expr: "abs(f%[1]d.out - sp%[1]d) < 0.05 * sp%[1]d && c%[1]d.out < 95"
        outputs:
          out: ok%[1]d
      - name: t%[1]d
        type: ton
        inputs:
          in: e%[1]d.out
        params:
          pt: 5s
      - name: n%[1]d
        type: ctu
        inputs:
          cu: t%[1]d.q
        params:
          pv: 10
`, g)
		n += 4 + 30
	}
	return "metadata: {name: big}\ntags:\n" + tags.String() + "tasks:\n  - name: main\n    period: 10ms\n    blocks:\n" + blks.String()
}

// BenchmarkValidate5000Lines loads and checks a config of 5,000 lines.
func BenchmarkValidate5000Lines(b *testing.B) {
	text := bigConfig(5000)
	path := filepath.Join(b.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	if _, err := configs.Load(path, blocks.Validate); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := configs.Load(path, blocks.Validate); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(strings.Count(text, "\n")), "lines")
}

// BenchmarkExprEval evaluates a 25-node expression (names, literals,
// arithmetic, comparisons, && and calls) and reports the time per node.
func BenchmarkExprEval(b *testing.B) {
	vars := map[string]expr.Var{"flow": {Slot: 0}, "ratio": {Slot: 1}, "count": {Slot: 2, Type: expr.Int},
		"run": {Slot: 3, Type: expr.Bool}, "level": {Slot: 4}, "fic.out": {Slot: 5}}
	p, err := expr.Compile("if(run && flow > 2, limit(0, flow * ratio + sqrt(level), 100), -1) + count % 3 - fic.out / 4",
		func(name string) (expr.Var, string) { return vars[name], "" })
	if err != nil {
		b.Fatal(err)
	}
	regs := []float64{10, 1.5, 7, 1, 2, 40}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	cpu0, cpuOK := threadCPU()
	for b.Loop() {
		p.Eval(regs)
	}
	cpu1, _ := threadCPU()
	per := float64(b.N) * float64(p.Nodes())
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/node")
	if cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/per, "cpu-ns/node")
	}
}
