// Package app is the control program of a partition as one unit: it binds
// the executive (rtkernel/executive) to the compiled block program
// (rtkernel/blocks), the field devices' scanners (io/modbus) and the writer
// side of the shared-memory channel (shm). The same Run serves the
// process backend (`mkrt executive`, a pinned child of the supervisor) and
// the application kernel's PID 1 (cmd/mkrt-init).
//
// Running for real needs what the executive needs (SCHED_FIFO, mlockall,
// /dev/cpu_dma_latency: root or CAP_SYS_NICE/CAP_IPC_LOCK) and a mapped
// shared region; without privileges it runs degraded and says so.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// ErrConfig wraps every error that restarting will not fix (the config does
// not compile, the region belongs to another config); the process exits
// with supervisor.ExitDoNotRestart for it.
var ErrConfig = errors.New("app: config cannot run")

// Options are one run of the control program.
type Options struct {
	Config *configs.Config
	// Shm is where the shared region is.
	Shm shm.Location
	// Force takes the region over from a writer that still looks alive.
	Force bool
	// TakeFrom is the region of the running partition this one replaces
	// (hand-over): the control program starts on standby on that
	// partition's cycle grid and takes the outputs and the controller state
	// when the supervisor sends the take command. Zero: a normal start.
	TakeFrom shm.Location
	// ClockID names this kernel's CLOCK_MONOTONIC in the region; zero reads
	// the kernel's boot ID (tests set it to stand for another kernel).
	ClockID shm.ClockID
	Log     *slog.Logger
	// Executive options (tests: fake clock, no real-time).
	Executive executive.Options
}

// Run runs the control program until ctx ends, a halt command stops it, or
// it faults. A halt or a cancelled ctx returns nil.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	tab, err := cfg.TagTable()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := blocks.Compile(cfg, tab); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	programs := func(task string, t *tag.Table) (executive.Program, error) {
		return blocks.CompileTask(cfg, t, task, epoch())
	}

	region, err := shm.Open(o.Shm)
	if err != nil {
		return err
	}
	defer region.Close()
	layout, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	w, err := shm.AttachWriter(ctx, region, layout, shm.WriterOptions{Force: o.Force, Logger: log})
	if err != nil {
		if errors.Is(err, shm.ErrConfigHash) || errors.Is(err, shm.ErrLayout) || errors.Is(err, shm.ErrSize) {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		return err
	}
	defer w.Close()
	if n := restoreFromRegion(ctx, region, layout, tab); n > 0 {
		log.Info("retained values restored from the shared region", "tags", n)
	}

	fio := &fieldIO{}
	ioctx, stopIO := context.WithCancel(context.Background())
	defer stopIO()
	for _, dev := range cfg.Devices {
		s, err := modbus.NewScanner(dev, tab, modbus.WithLogger(log))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if err := s.Start(ioctx); err != nil {
			return err
		}
		defer s.Stop()
		fio.scanners = append(fio.scanners, s)
	}

	ch := NewChannel(w)
	eo := o.Executive
	if eo.Logger == nil {
		eo.Logger = log
	}
	own := w.HandOver()
	eo.HandOver = own
	clockID := o.ClockID
	if clockID.IsZero() {
		clockID = ownClockID()
	}
	own.SetClockID(clockID)
	var link *clockLink
	if o.TakeFrom.Path != "" {
		from, err := shm.Open(o.TakeFrom)
		if err != nil {
			return fmt.Errorf("app: hand-over: %w", err)
		}
		defer from.Close()
		area, err := shm.OpenHandOver(from)
		if err != nil {
			return fmt.Errorf("app: hand-over: %w", err)
		}
		clock := eo.Clock
		if clock == nil {
			clock = rt.Monotonic{}
		}
		l, err := linkClocks(ctx, area, clockID, func() int64 { return int64(clock.Now()) }, cfg.Tasks[0].Period.D())
		if err != nil {
			return err
		}
		link, ch.link = &l, l
		eo.TakeFrom = linkedBaton{Baton: area, link: l}
		log.Info("starting on standby to take over", "from", o.TakeFrom.String(), "clock", l.String())
	}
	e, err := executive.New(cfg, tab, programs, fio, ch, eo)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	w.SetState(wire.Booting, 0)
	runCtx, stopRun := context.WithCancel(ctx)
	// The reporters write into the region: they end before it is unmapped.
	var reporters sync.WaitGroup
	defer func() {
		stopRun()
		reporters.Wait()
		own.SetCounters(handOverCounters(e.Status().HandOver, link))
	}()
	reporters.Go(func() { reportRT(runCtx, e, w) })
	reporters.Go(func() { reportHandOver(runCtx, e, own, link) })
	reporters.Go(func() { stopOnHalt(runCtx, e, stopRun) })
	err = e.Run(runCtx)
	st := e.Status()
	w.SetState(st.State, st.Code)
	switch {
	case err == nil:
		log.Info("control program stopped", "state", st.State, "reason", st.Reason)
		return nil
	case errors.Is(err, executive.ErrConfig):
		return fmt.Errorf("%w: %w", ErrConfig, err)
	default:
		return err
	}
}

// reportRT publishes the real-time outcome once the task threads have set
// themselves up (so `mkrt status` shows "rt: degraded (why)").
func reportRT(ctx context.Context, e *executive.Executive, w *shm.Writer) {
	t := time.NewTimer(200 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	st := e.Status().RT
	if st.Degraded() {
		w.SetRTMode(wire.RTDegraded, strings.Join(st.Reasons(), "; "))
		return
	}
	w.SetRTMode(wire.RTFull, "")
}

// stopOnHalt ends the run once a halt command has driven the outputs to
// their safe state: the executive holds them there, and the caller (the
// process or PID 1) exits or powers off.
func stopOnHalt(ctx context.Context, e *executive.Executive, stop context.CancelFunc) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s, code, _ := e.State(); s == wire.Safe && code == wire.FaultHalt {
				stop()
				return
			}
		}
	}
}

// epoch is the Unix time in ns at monotonic zero, so block outputs carry
// wall-clock source timestamps.
func epoch() int64 {
	return time.Now().UnixNano() - int64(rt.Monotonic{}.Now())
}

// restoreFromRegion takes the values of retain tags from the image already
// in the region: the last values of the executive that ran before (a
// restart), or the values the supervisor seeded from its retained-values
// file before the start. They are newer than any file the partition could
// read, and reach a guest kernel that has no file at all. Only good samples
// count; a fresh region holds none.
func restoreFromRegion(ctx context.Context, region *shm.Region, l *shm.Layout, tab *tag.Table) int {
	r, err := shm.AttachReader(region, l, shm.ReaderOptions{})
	if err != nil {
		return 0
	}
	var img shm.Image
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := r.Snapshot(sctx, &img); err != nil {
		return 0
	}
	n := 0
	for i, in := range tab.Info {
		if !in.Retain || i >= len(img.Samples) || img.Samples[i].Quality != tag.Good {
			continue
		}
		tab.Samples[i].Value = img.Samples[i].Value
		tab.Text[i] = img.Text[i]
		n++
	}
	return n
}
