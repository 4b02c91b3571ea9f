//go:build linux

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/shm"
)

// faultAfterFeeds is how many keepalives a test fault waits for: the
// watchdog is then armed and known to be fed by a cycling executive.
const faultAfterFeeds = 3

// startWatchdog arms and feeds the kernel's watchdog from the executive's
// heartbeat in region when the command line asks for it (mkrt.watchdog=),
// and injects the fault mkrt.test= names once it has been fed a few times.
// The returned stop ends the feeding; clean disarms the watchdog (the
// executive stopped on request), otherwise it keeps counting until the
// power-off.
func startWatchdog(ctx context.Context, log *slog.Logger, boot *pid1.Boot, region shm.Location) (stop func(clean bool)) {
	v, ok := boot.Params[pid1.ParamWatchdog]
	if !ok {
		if boot.Params[pid1.ParamTest] != "" {
			log.Warn("mkrt.test needs mkrt.watchdog; no fault injected")
		}
		return func(bool) {}
	}
	timeout, err := pid1.ParseWatchdog(v)
	if err != nil {
		log.Error("watchdog not armed", "err", err)
		return func(bool) {}
	}
	hb := &heartbeat{loc: region}
	f := &pid1.Feeder{Log: log, Cycle: hb.cycle, Arm: func() (pid1.Watchdog, error) {
		w, err := pid1.OpenWatchdog(pid1.WatchdogPath, timeout)
		if err != nil {
			return nil, err
		}
		log.Info("watchdog", "device", pid1.WatchdogPath, "timeout", w.Timeout)
		return w, nil
	}}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(fctx, timeout/4)
	}()
	if fault := boot.Params[pid1.ParamTest]; fault != "" {
		go injectFault(fctx, log, f, fault)
	}
	return func(clean bool) {
		cancel()
		<-done
		if err := f.Stop(clean); err != nil {
			log.Warn("watchdog", "err", err)
		}
		hb.close()
	}
}

// heartbeat reads the executive's cycle counter from the region, attaching
// on the first reading that can.
type heartbeat struct {
	loc shm.Location
	reg *shm.Region
	r   *shm.Reader
}

func (h *heartbeat) cycle() (uint64, bool) {
	if h.r == nil {
		if h.reg == nil {
			reg, err := shm.Open(h.loc)
			if err != nil {
				return 0, false
			}
			h.reg = reg
		}
		r, err := shm.AttachReader(h.reg, nil, shm.ReaderOptions{})
		if err != nil {
			return 0, false
		}
		h.r = r
	}
	return h.r.Heartbeat().Cycle, true
}

func (h *heartbeat) close() {
	if h.reg != nil {
		h.reg.Close()
	}
}

// injectFault is the watchdog tests' hook (mkrt.test=, off unless the
// command line names it): once the watchdog has been fed faultAfterFeeds
// times it says so on the console, waits for the line to leave the serial
// port, and injects fault.
func injectFault(ctx context.Context, log *slog.Logger, f *pid1.Feeder, fault string) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for f.Fed() < faultAfterFeeds {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	con := console()
	defer con.Close()
	fmt.Fprintf(con, "mkrt-init: test: injecting %s\n", fault)
	_ = unix.IoctlSetInt(int(con.Fd()), unix.TCSBRK, 1) // tcdrain
	if err := pid1.InjectFault(fault); err != nil {
		log.Error("test fault not injected", "err", err)
	}
}
