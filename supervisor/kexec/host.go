package kexec

import (
	"log/slog"
	"time"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/process"
)

// Host is how a kexec-family backend (multikernel, parker) reaches the
// kernel — its kernfs, system calls and physical memory — and how long it
// waits on it. The zero value is the real host; tests put fakes in the seams.
type Host struct {
	// Root is the backend's kernfs mount point; default the backend's own.
	Root string
	// FS reaches kernfs and /proc files; default process.OSFS.
	FS process.FS
	// Sys makes the system calls; default Linux.
	Sys Syscalls
	// DevMem is the physical memory device; default /dev/mem.
	DevMem string
	// TempDir holds a vmlinux extracted from a bzImage; default os.TempDir().
	TempDir string
	// Poll is the status polling period (default 100ms); BootTimeout bounds
	// the wait for the kernel to run after start (default 30s); HaltTimeout
	// the wait for a halt before a forced one (default 10s).
	Poll, BootTimeout, HaltTimeout time.Duration

	Log   *slog.Logger
	Clock supervisor.Clock
}

// Defaults fills what is unset; root is the backend's kernfs mount point.
func (h *Host) Defaults(root string) {
	if h.Root == "" {
		h.Root = root
	}
	if h.FS == nil {
		h.FS = process.OSFS{}
	}
	if h.Sys == nil {
		h.Sys = Linux{}
	}
	if h.DevMem == "" {
		h.DevMem = "/dev/mem"
	}
	if h.Poll <= 0 {
		h.Poll = 100 * time.Millisecond
	}
	if h.BootTimeout <= 0 {
		h.BootTimeout = 30 * time.Second
	}
	if h.HaltTimeout <= 0 {
		h.HaltTimeout = 10 * time.Second
	}
	if h.Log == nil {
		h.Log = slog.New(slog.DiscardHandler)
	}
	if h.Clock == nil {
		h.Clock = supervisor.RealClock{}
	}
}
