package kexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/supervisor"
)

// Secondary is one secondary kernel that a kexec-family backend
// (multikernel, parker) runs beside the host's: the part of its life the
// backends share, as named supervisor.Steps and bounded waits. The backend
// keeps what differs — its kernfs files, how the CPUs, memory and devices
// are given, the command line and flags, and the Control that starts,
// reads and halts the kernel — and composes its bring-up from:
//
//	check          Supported: /proc/filesystems lists the backend's kernfs
//	mount          MountStep: the kernfs, shared by this process's partitions
//	shared-memory  SharedMemoryStep: the region mapped through DevMem,
//	               cleared unless Formatted; undo: unmap
//	load           LoadStep: kexec_file_load of the ELF vmlinux (extracted
//	               from a bzImage) and the initramfs; undo: unload
//	start          StartStep: Control.Boot, then wait for the kernel to run
//	               (BootTimeout); undo: the halt
//
// The halt asks the executive first (Halt), then the kernel
// (Control.Halt), waits HaltTimeout for it to stop running, and forces it
// when it does not. Every wait polls every Poll and is bounded by its
// context (the boot and the halt also by BootTimeout and HaltTimeout). Errors carry the backend's name as their prefix
// ("multikernel: …"): they are the backend's.
//
// Make it in place (a field of the backend's partition): it holds locks.
type Secondary struct {
	// Options are the backend's options of the same name.
	Options
	// Backend names the backend: the kernfs type and the errors' prefix.
	Backend string
	Control Control

	kernfs Kernfs
	region atomic.Pointer[shm.Region] // mapped by the shared-memory step

	mu      sync.Mutex
	flags   uintptr // of the loaded image, for the unload
	cmdline string  // of the loaded image
	started bool
}

// Options configure what a kexec-family partition boots, how it is
// stopped and how the host is reached: the part of multikernel.Options
// and parker.Options the two share.
type Options struct {
	// Kernel is the application kernel (ELF vmlinux or bzImage); Initrd the
	// mkrt initramfs ("" loads none).
	Kernel, Initrd string
	// Halt, when set, asks the executive to stop and its kernel to halt or
	// go offline (through the shared region's command ring), before the
	// kernel is asked.
	Halt func(ctx context.Context) error
	// Formatted says the caller formats the shared region before the start
	// (mkrt run: it outlives restarts and carries retained values): the
	// start maps it without clearing it.
	Formatted bool

	// Host is the kernel seams and waits; zero is the real host.
	Host
}

// Control is how a backend starts, reads and halts its secondary kernel.
type Control struct {
	// Boot starts the loaded image (multikernel: reboot(2) start; Parker:
	// 1 written to online).
	Boot func() error
	// State reads the kernel's state.
	State func() (State, error)
	// Halt asks the kernel to halt the secondary, or with force halts it at
	// once; an error says it could not (Parker cannot halt one at all).
	Halt func(force bool) error
}

// State is a secondary kernel's state as its backend reads it.
type State struct {
	// Status is the kernel's own word for it ("active", "ready"; Parker's
	// online "1"), for messages.
	Status string
	// Running: the kernel runs (multikernel active, Parker online).
	Running bool
	// Failed: it ended in a failure (multikernel failed).
	Failed bool
}

func notRunning(st State) bool { return !st.Running }

// Supported checks that the kernel knows the backend's kernfs
// (/proc/filesystems lists it); else an error wrapping unsupported, hint
// saying what to boot.
func (s *Secondary) Supported(unsupported error, hint string) error {
	b, err := s.FS.ReadFile("/proc/filesystems")
	if err != nil {
		return fmt.Errorf("%s: %w", s.Backend, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == s.Backend {
			return nil
		}
	}
	return fmt.Errorf("%w: /proc/filesystems lists no %s (%s)", unsupported, s.Backend, hint)
}

// MountStep mounts the backend's kernfs at Root for this partition (undo:
// let go of it; the last user of this process unmounts it). probe reads
// something that exists only while the kernfs is mounted: when it
// succeeds, the host's own tools mounted it and it is left to them.
func (s *Secondary) MountStep(probe func() error) supervisor.Step {
	return supervisor.Step{Name: "mount",
		Do:   func(context.Context) error { return s.kernfs.Mount(s.Sys, s.Backend, s.Root, probe) },
		Undo: func(context.Context) error { return s.kernfs.Unmount(s.Sys, s.Root) },
	}
}

// SharedMemoryStep maps the shared region at where() (undo: unmap it).
// Unless Formatted, it clears the region: a header left by an earlier run
// must not look valid to the bridge.
func (s *Secondary) SharedMemoryStep(where func() shm.Location) supervisor.Step {
	return supervisor.Step{Name: "shared-memory",
		Do: func(context.Context) error {
			r, err := shm.Open(where())
			if err != nil {
				return fmt.Errorf("%s: mapping the shared region: %w", s.Backend, err)
			}
			if !s.Formatted {
				clear(r.Bytes())
			}
			s.region.Store(r)
			return nil
		},
		Undo: func(context.Context) error {
			if r := s.region.Swap(nil); r != nil {
				return r.Close()
			}
			return nil // adopted: this supervisor never mapped it
		},
	}
}

// LoadStep loads the kernel with kexec_file_load; image gives this start's
// command line and flags (multikernel: KEXEC_MULTIKERNEL|KEXEC_MK_ID(id);
// Parker: 0). The undo unloads it; an image a halt spent is no error.
func (s *Secondary) LoadStep(image func() (cmdline string, flags uintptr, err error)) supervisor.Step {
	return supervisor.Step{Name: "load",
		Do: func(context.Context) error {
			cmdline, flags, err := image()
			if err != nil {
				return err
			}
			return s.load(cmdline, flags)
		},
		Undo: func(context.Context) error {
			s.mu.Lock()
			flags := s.flags
			s.mu.Unlock()
			if err := Unload(s.Sys, flags); err != nil && !errors.Is(err, syscall.ENOENT) {
				return err
			}
			return nil
		},
	}
}

func (s *Secondary) load(cmdline string, flags uintptr) error {
	k, err := OpenVmlinux(s.Kernel, s.TempDir)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Backend, err)
	}
	defer k.Close()
	var initrd *os.File
	if s.Initrd != "" {
		if initrd, err = os.Open(s.Initrd); err != nil {
			return fmt.Errorf("%s: initramfs: %w", s.Backend, err)
		}
		defer initrd.Close()
	}
	if err := Load(s.Sys, k, initrd, cmdline, flags); err != nil {
		return err
	}
	s.mu.Lock()
	s.flags, s.cmdline = flags, cmdline
	s.mu.Unlock()
	s.Log.Info("kernel loaded", "kernel", s.Kernel, "flags", fmt.Sprintf("%#x", flags), "cmdline", cmdline)
	return nil
}

// Adopt takes over a secondary kernel that an earlier supervisor started
// and left running: it mounts the kernfs (probe as for MountStep) to read
// the kernel's state, and records the loaded image (flags, cmdline) and
// the start, so Wait, the halt and the unload work as for a kernel this
// supervisor started. It fails with an error wrapping supervisor.ErrGone
// when the kernel does not run (the mount is let go again).
func (s *Secondary) Adopt(probe func() error, flags uintptr, cmdline string) error {
	if err := s.kernfs.Mount(s.Sys, s.Backend, s.Root, probe); err != nil {
		return err
	}
	st, err := s.Control.State()
	if err == nil && !st.Running {
		err = fmt.Errorf("%w: the %s kernel is %q", supervisor.ErrGone, s.Backend, st.Status)
	}
	if err != nil {
		return errors.Join(err, s.kernfs.Unmount(s.Sys, s.Root))
	}
	s.mu.Lock()
	s.flags, s.cmdline, s.started = flags, cmdline, true
	s.mu.Unlock()
	return nil
}

// Reclaimed prepares the undo of what a secondary kernel that no longer
// runs left (its image loaded, the kernfs entries): it mounts the kernfs
// and records the image's flags for the unload. It refuses while the
// kernel runs.
func (s *Secondary) Reclaimed(probe func() error, flags uintptr) error {
	if err := s.kernfs.Mount(s.Sys, s.Backend, s.Root, probe); err != nil {
		return err
	}
	if st, err := s.Control.State(); err == nil && st.Running {
		return errors.Join(fmt.Errorf("%s: the kernel still runs (%q): stop or adopt it", s.Backend, st.Status), s.kernfs.Unmount(s.Sys, s.Root))
	}
	s.mu.Lock()
	s.flags = flags
	s.mu.Unlock()
	return nil
}

// Cmdline is the command line of the loaded image ("" before the load).
func (s *Secondary) Cmdline() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmdline
}

// StartStep boots the loaded kernel and waits until it runs (BootTimeout);
// its undo is the halt.
func (s *Secondary) StartStep() supervisor.Step {
	return supervisor.Step{Name: "start",
		Do: func(ctx context.Context) error {
			if err := s.Control.Boot(); err != nil {
				return err
			}
			s.setStarted(true)
			return s.Await(ctx, s.BootTimeout, "running kernel", func(st State) bool { return st.Running })
		},
		Undo: s.halt,
	}
}

func (s *Secondary) setStarted(v bool) {
	s.mu.Lock()
	s.started = v
	s.mu.Unlock()
}

// halt asks the executive to stop, then the kernel, waits HaltTimeout for
// it to stop running, and forces it when it does not (or ctx ends).
func (s *Secondary) halt(ctx context.Context) error {
	s.setStarted(false)
	if st, err := s.Control.State(); err == nil && !st.Running {
		return nil // it ended on its own
	}
	if s.Halt != nil {
		if err := s.Halt(ctx); err != nil {
			s.Log.Warn("halt request to the executive failed", "err", err)
		}
	}
	err := s.Control.Halt(false)
	if err == nil {
		if err = s.Await(ctx, s.HaltTimeout, "halt", notRunning); err == nil {
			return nil
		}
	}
	s.Log.Warn("secondary kernel did not halt; forcing it", "err", err)
	ferr := s.Control.Halt(true)
	switch {
	case ferr == nil:
		return nil
	case errors.Is(err, ferr):
		return err
	}
	return errors.Join(err, ferr)
}

// Await polls the kernel's state every Poll until want accepts it, bounded
// by ctx and timeout; what names the awaited state in the errors. A kernel
// that failed ends the wait at once.
func (s *Secondary) Await(ctx context.Context, timeout time.Duration, what string, want func(State) bool) error {
	deadline := s.Clock.Now().Add(timeout)
	for {
		st, err := s.Control.State()
		if err == nil && want(st) {
			return nil
		}
		if err == nil && st.Failed {
			return fmt.Errorf("%s: the kernel failed (status %q) while waiting for %s", s.Backend, st.Status, what)
		}
		if !s.Clock.Now().Before(deadline) {
			if err != nil {
				return fmt.Errorf("%s: no %s within %v: %w", s.Backend, what, timeout, err)
			}
			return fmt.Errorf("%s: no %s within %v (status %q)", s.Backend, what, timeout, st.Status)
		}
		if err := s.sleep(ctx); err != nil {
			return fmt.Errorf("%s: waiting for %s: %w", s.Backend, what, err)
		}
	}
}

// Wait returns when the kernel stops running: exit status 0 when it
// halted or powered off, -1 ("failed") when it failed.
func (s *Secondary) Wait(ctx context.Context) (supervisor.Exit, error) {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return supervisor.Exit{}, fmt.Errorf("%s: partition %w", s.Backend, supervisor.ErrNotStarted)
	}
	for {
		st, err := s.Control.State()
		if err != nil {
			return supervisor.Exit{}, err
		}
		if !st.Running {
			s.Log.Info("secondary kernel stopped running", "status", st.Status)
			if st.Failed {
				return supervisor.Exit{Code: -1, Signal: "failed", Time: s.Clock.Now()}, nil
			}
			return supervisor.Exit{Code: 0, Time: s.Clock.Now()}, nil
		}
		if err := s.sleep(ctx); err != nil {
			return supervisor.Exit{}, err
		}
	}
}

func (s *Secondary) sleep(ctx context.Context) error {
	t := s.Clock.NewTimer(s.Poll)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
