//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/pid1"
)

func run(log *slog.Logger) error {
	if os.Getpid() != 1 {
		return errors.New("must run as PID 1 of the application kernel")
	}
	boot, err := pid1.Setup(log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	go pid1.Reap(ctx)
	log.Info("application kernel up", "release", boot.Release, "realtime", boot.Realtime)
	shm, shmErr := pid1.FindShm(os.DirFS("/sys"), boot.Params["shm"])
	if shmErr == nil {
		shmErr = pid1.EnableBAR(shm)
	}
	switch boot.Params["mode"] {
	case "probe":
		return probe(boot, shm, shmErr)
	default:
		if shmErr != nil {
			return shmErr
		}
		return runExecutive(ctx, log, boot, shm)
	}
}

// probe reports what the kernel offers and writes the same report at the
// start of the shared region, for board bring-up and the boot tests.
func probe(boot *pid1.Boot, shm pid1.ShmLocation, shmErr error) error {
	report := fmt.Sprintf("MKRT-PROBE release=%s realtime=%t shm=%s cpus=%d\n", boot.Release, boot.Realtime, shm, cpuCount())
	fmt.Fprint(console(), report)
	if shmErr != nil {
		return shmErr
	}
	// sysfs resource files can only be mapped, not written.
	f, err := os.OpenFile(shm.BAR, os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", shm.BAR, err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap %s: %w", shm.BAR, err)
	}
	copy(mem, report)
	return unix.Munmap(mem)
}

// cpuCount is the number of online CPUs (not this thread's affinity,
// which isolcpus narrows).
func cpuCount() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 0
	}
	cpus, err := configs.ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return len(cpus)
}

func halt(log *slog.Logger) {
	if os.Getpid() != 1 {
		os.Exit(1)
	}
	if err := pid1.PowerOff(); err != nil {
		log.Error("power off", "err", err)
	}
	select {}
}
