//go:build linux

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/app"
	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/wire"
)

// runExecutive loads the config from the initramfs, brings up the
// dedicated NIC and runs the control program on the shared region. With
// mkrt.take=<where> (a hand-over) it starts on standby and takes over from
// the partition whose region is there.
func runExecutive(ctx context.Context, log *slog.Logger, boot *pid1.Boot, loc pid1.ShmLocation) error {
	cfg, err := configs.LoadInPartition("/" + pid1.ConfigPath)
	if err != nil {
		return err
	}
	region := shmLocation(loc)
	if nics := cfg.Partition.NICs; len(nics) > 0 {
		addr := nics[0].Address
		if a := boot.Params[pid1.ParamAddress]; a != "" {
			addr = a // a hand-over's new guest beside the running one
		}
		name, err := pid1.UpNIC(nics[0].Interface, addr, nics[0].Gateway)
		if err != nil {
			reportFault(cfg, region, err)
			return err
		}
		log.Info("dedicated NIC up", "link", name, "address", addr)
	} else if _, err := pid1.UpNIC("", "", ""); err != nil {
		log.Warn("loopback", "err", err)
	}
	var from shm.Location
	if take := boot.Params["take"]; take != "" {
		tl, err := pid1.FindShm(os.DirFS("/sys"), take)
		if err == nil {
			err = pid1.EnableBAR(tl)
		}
		if err != nil {
			err = fmt.Errorf("the region to take over from (mkrt.take=%s): %w", take, err)
			reportFault(cfg, region, err)
			return err
		}
		from = shmLocation(tl)
		log.Info("taking over", "from", tl.String())
	}
	stopWatchdog := startWatchdog(ctx, log, boot, region)
	err = app.Run(ctx, app.Options{Config: cfg, Shm: region, Log: log, TakeFrom: from})
	stopWatchdog(err == nil)
	if err != nil {
		reportFault(cfg, region, err)
	}
	return err
}

func shmLocation(loc pid1.ShmLocation) shm.Location {
	if loc.BAR != "" {
		return shm.PCI(filepath.Base(filepath.Dir(loc.BAR)))
	}
	return shm.Phys(loc.Phys, int64(loc.Size))
}

// reportFault writes the reason of a fatal error into the shared region
// (state faulted and a fault event) so the supervisor can show it.
func reportFault(cfg *configs.Config, loc shm.Location, cause error) {
	tab, err := cfg.TagTable()
	if err != nil {
		return
	}
	l, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		return
	}
	r, err := shm.Open(loc)
	if err != nil {
		return
	}
	defer r.Close()
	w, err := shm.AttachWriter(context.Background(), r, l, shm.WriterOptions{Force: true})
	if err != nil {
		return
	}
	w.SetState(wire.Faulted, 1)
	w.PushEvent(wire.Event{Kind: wire.Fault, Task: -1, Tag: -1, Text: fmt.Sprint(cause)})
	// Leave the writer attached: Close would mark the region free, and the
	// faulted state is what the supervisor must read.
}
