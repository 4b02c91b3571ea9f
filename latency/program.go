package latency

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/app"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
)

// program is what the measurement tasks run: the empty program, or the
// synthetic one with its input feeder and a channel on a shared region.
type program struct {
	programs executive.Programs
	io       executive.IO      // nil: none
	ch       executive.Channel // nil: none
	close    func()
}

// Close releases the region.
func (p *program) Close() {
	if p.close != nil {
		p.close()
	}
}

// idle is the empty program: nothing to run, nothing written.
type idle struct{}

func (idle) Run(time.Duration, time.Duration) {}
func (idle) Outputs() []tag.ID                { return nil }

// newProgram prepares the tasks' program for cfg: with Options.Blocks, the
// blocks compiled as rtkernel/app compiles them, fed by a synth.Feeder in
// the IO seam and publishing to a region file in a temporary directory
// under /dev/shm (removed by Close).
func newProgram(ctx context.Context, o Options, cfg *configs.Config, tab *tag.Table) (*program, error) {
	if o.Blocks == 0 {
		return &program{programs: func(string, *tag.Table) (executive.Program, error) { return idle{}, nil }}, nil
	}
	feed, err := synth.NewFeeder(tab, 0, synth.Groups(o.Blocks)*len(o.CPUs))
	if err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	epoch := time.Now().UnixNano() - int64(rt.Monotonic{}.Now())
	programs := func(task string, t *tag.Table) (executive.Program, error) {
		return blocks.CompileTask(cfg, t, task, epoch)
	}
	ch, closeRegion, err := openRegion(ctx, cfg, tab)
	if err != nil {
		return nil, err
	}
	return &program{programs: programs, io: feederIO{feed}, ch: ch, close: closeRegion}, nil
}

// openRegion creates cfg's shared region in a new directory under /dev/shm
// (the temporary directory where there is none) and attaches its writer,
// with the control program's channel on it (nobody submits commands here).
func openRegion(ctx context.Context, cfg *configs.Config, tab *tag.Table) (*app.Channel, func(), error) {
	layout, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		return nil, nil, fmt.Errorf("latency: %w", err)
	}
	base := "/dev/shm"
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		base = ""
	}
	dir, err := os.MkdirTemp(base, "mkrt-latency-")
	if err != nil {
		return nil, nil, fmt.Errorf("latency: %w", err)
	}
	region, err := shm.Open(shm.File(filepath.Join(dir, "region"), layout.Size(), true))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	w, err := shm.AttachWriter(ctx, region, layout, shm.WriterOptions{})
	if err != nil {
		region.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return app.NewChannel(w), func() {
		w.Close()
		region.Close()
		os.RemoveAll(dir)
	}, nil
}

// feederIO is the measurement tasks' IO: every cycle it moves the synthetic
// program's inputs (pv follows the wall clock's sub-second part). Hot path.
type feederIO struct{ f *synth.Feeder }

func (io feederIO) ReadInputs(tab *tag.Table, now time.Time) {
	io.f.Feed(tab.Samples, 5000+float64(now.Nanosecond())/1e5)
}

func (feederIO) WriteOutputs(*tag.Table, []tag.ID) {}
