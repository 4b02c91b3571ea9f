package deploy_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor/deploy"
)

// executiveProc is one `mkrt executive` child process on its region.
type executiveProc struct {
	cmd    *exec.Cmd
	tab    *tag.Table
	region *shm.Region
	r      *shm.Reader
	path   string
}

func startExecutive(ctx context.Context, t *testing.T, cfg *configs.Config, dir, name, takeFrom string) *executiveProc {
	t.Helper()
	text, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, text, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := configs.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &executiveProc{path: filepath.Join(dir, name+".shm")}
	if p.tab, err = loaded.TagTable(); err != nil {
		t.Fatal(err)
	}
	layout, err := shm.NewLayout(shm.ParamsFor(loaded, p.tab, loaded.Hash()))
	if err != nil {
		t.Fatal(err)
	}
	if p.region, err = shm.Open(shm.File(p.path, layout.Size(), true)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.region.Close() })
	args := []string{"executive", "--config", cfgPath, "--shm", p.path}
	if takeFrom != "" {
		args = append(args, "--take-from", takeFrom)
	}
	p.cmd = exec.CommandContext(ctx, mkrtBinary(t), args...)
	p.cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
	p.cmd.Stderr = &prefixWriter{t: t, name: name}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	for {
		if p.r, err = shm.AttachReader(p.region, layout, shm.ReaderOptions{}); err == nil && p.r.Heartbeat().Cycle > 3 {
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no heartbeat: %v", name, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (p *executiveProc) value(ctx context.Context, t *testing.T, name string) float64 {
	var img shm.Image
	if err := p.r.Snapshot(ctx, &img); err != nil {
		t.Fatal(err)
	}
	id, _ := p.tab.Lookup(name)
	return img.Samples[id].Value
}

type prefixWriter struct {
	t    *testing.T
	name string
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, b)
	return len(b), nil
}

// handOverTank is the tank example with the PID's pv through a lag and an
// extra alarm (a structural change), on the simulator at addr.
func handOverTank(t *testing.T, addr string, changed bool) *configs.Config {
	cfg, err := configs.Load(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices[0].Address = addr
	cfg.Bridge = configs.Bridge{}
	if changed {
		changeStructure(cfg)
	}
	return cfg
}

// changeStructure puts the PID's pv through a lag filter and adds an alarm
// (new tags level_filtered and level_very_high) to the tank example.
func changeStructure(cfg *configs.Config) {
	cfg.Tags = append(cfg.Tags, configs.Tag{Name: "level_filtered", Unit: "m"}, configs.Tag{Name: "level_very_high", Type: tag.Bool})
	b := &cfg.Tasks[0].Blocks
	for i := range *b {
		if (*b)[i].Name == "level_pid" {
			(*b)[i].Inputs["pv"] = configs.Ref{Raw: "level_filter.out"}
		}
	}
	*b = append(*b,
		configs.Block{Name: "level_filter", Type: "lag", Inputs: map[string]configs.Ref{"in": {Raw: "level"}},
			Outputs: map[string]string{"out": "level_filtered"}, Params: map[string]configs.Value{"tau": {Raw: "0s", Set: true}}},
		configs.Block{Name: "level_very_high", Type: "alarm", Inputs: map[string]configs.Ref{"in": {Raw: "level"}},
			Outputs: map[string]string{"hi": "level_very_high"}, Params: map[string]configs.Value{"hi": {Raw: "2.9", Set: true}}})
}

// TestHandOverProcesses hands the running tank loop from one `mkrt
// executive` process to another running a changed block structure: 0
// missed cycles, the PID state carried (the new valve follows what the
// old program, still computing after the release, would drive), and the
// time from the request to the switch.
func TestHandOverProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := sim.Start(ctx, sim.NewTank(), sim.Config{Listen: "127.0.0.1:0", Speed: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	old := startExecutive(ctx, t, handOverTank(t, srv.Addr(), false), dir, "old", "")
	time.Sleep(500 * time.Millisecond) // let the loop settle
	nw := startExecutive(ctx, t, handOverTank(t, srv.Addr(), true), dir, "new", old.path)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	sw, err := deploy.SwitchOver(sctx, old.r, nw.r, deploy.SwitchOptions{Mono: func() int64 { return int64(rt.Monotonic{}.Now()) }})
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for range 25 {
		worst = math.Max(worst, math.Abs(old.value(ctx, t, "inflow_valve")-nw.value(ctx, t, "inflow_valve")))
		time.Sleep(sw.Period)
	}
	fmt.Printf("hand-over between processes: missed cycles %d, retries %d, blocks carried %d (fresh %d, dropped %d), request to switch %v (switch %d cycles after the chosen time), largest valve difference from the run without hand-over %.4f %%\n",
		sw.Missed, sw.Retries, sw.Blocks.Carried, sw.Blocks.Fresh, sw.Blocks.Dropped, sw.Took.Round(time.Millisecond), (sw.Switch-sw.At)/int64(sw.Period), worst)
	if sw.Missed != 0 || sw.Blocks.Carried != 3 || sw.Blocks.Fresh != 2 {
		t.Fatalf("switch %+v", sw)
	}
	if worst > 0.5 {
		t.Fatalf("valve differs by %.3f %% from the run without hand-over", worst)
	}
	// The old partition stops without touching the outputs.
	before := nw.value(ctx, t, "inflow_valve")
	// Bounded: a released executive that did not end on SIGTERM would
	// otherwise hold the test until its context kills it.
	_ = old.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() { _ = old.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the released executive did not exit within 10s of SIGTERM")
	}
	if st := nw.r.Heartbeat().State; st != wire.Running {
		t.Fatalf("new partition %v after the old one stopped", st)
	}
	t.Logf("valve %v before the old partition stopped, %v after", before, nw.value(ctx, t, "inflow_valve"))
}
