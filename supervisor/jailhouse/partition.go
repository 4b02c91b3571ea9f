package jailhouse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/supervisor"
)

// PartitionOptions configure a jailhouse partition.
type PartitionOptions struct {
	// Plan is the generated cell (Generate).
	Plan *Plan
	// Loader, Kernel and Initrd are file paths: Jailhouse's
	// linux-loader.bin, the bzImage and the mkrt initramfs.
	Loader, Kernel, Initrd string
	// Cmdline is the cell kernel's command line.
	Cmdline string
	// SystemConfig is the root-cell config (.cell, "JHSYST") that enables
	// the hypervisor when it is not enabled yet; "" requires it enabled.
	SystemConfig string
	// Open opens /dev/jailhouse; default OpenDevice("").
	Open func() (Device, error)
	// Sys is sysfs rooted at /sys; default os.DirFS("/sys").
	Sys fs.FS
	// ReadFile reads the image files; default os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// Halt asks the executive to stop (the cell's Linux then powers off).
	Halt  func(ctx context.Context) error
	Log   *slog.Logger
	Clock supervisor.Clock
	// Poll is how often the cell's state and the hypervisor console are
	// read; default 100ms.
	Poll time.Duration
	// ConsoleLines is the size of the console ring; default 500.
	ConsoleLines int
}

// Partition is a control program in a Jailhouse cell; it implements
// supervisor.Partition.
type Partition struct {
	o       PartitionOptions
	name    string
	region  shm.Location // where this side maps the cell's region (FromConfig)
	log     *slog.Logger
	console *supervisor.Console

	life supervisor.Lifecycle

	mu      sync.Mutex
	dev     Device
	enabled bool               // we enabled the hypervisor and disable it on stop
	cancel  context.CancelFunc // ends the watch of the cell's current run
	watched chan struct{}      // closed when that watch returned
	info    supervisor.Info
}

var _ supervisor.Partition = (*Partition)(nil)

// NewPartition returns a partition; nothing happens until Start.
func NewPartition(o PartitionOptions) (*Partition, error) {
	if o.Plan == nil || o.Plan.Cell == nil {
		return nil, fmt.Errorf("%w: no cell plan", ErrConfig)
	}
	if o.Open == nil {
		o.Open = func() (Device, error) { return OpenDevice("") }
	}
	if o.Sys == nil {
		o.Sys = os.DirFS("/sys")
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = supervisor.RealClock{}
	}
	if o.Poll <= 0 {
		o.Poll = 100 * time.Millisecond
	}
	if o.ConsoleLines <= 0 {
		o.ConsoleLines = 500
	}
	name := o.Plan.Cell.Name
	p := &Partition{o: o, name: name, log: o.Log.With("partition", name, "backend", "jailhouse"), console: supervisor.NewConsole(o.ConsoleLines)}
	p.life = supervisor.Lifecycle{Backend: "jailhouse", Log: p.log, Clock: o.Clock}
	return p, nil
}

// Backend is "jailhouse".
func (p *Partition) Backend() string { return "jailhouse" }

// Steps are the bring-up of the cell, each undone in reverse:
//
//	open /dev/jailhouse   (undo: close)
//	enable hypervisor     (only when not enabled; undo: disable)
//	create cell           (undo: destroy)
//	load cell             (loader, kernel, initramfs, boot parameters)
//	start cell            and watch its state and the hypervisor console
//	                      (undo: ask the executive to halt, wait for the
//	                      cell to shut down or the stop's context to end,
//	                      end the watch)
func (p *Partition) Steps() []supervisor.Step {
	cell := p.o.Plan.Cell
	return []supervisor.Step{
		{Name: "open /dev/jailhouse",
			Do: func(context.Context) error {
				d, err := p.o.Open()
				if err != nil {
					return err
				}
				p.mu.Lock()
				p.dev = d
				p.mu.Unlock()
				return nil
			},
			Undo: func(context.Context) error {
				p.mu.Lock()
				d := p.dev
				p.dev = nil
				p.mu.Unlock()
				return d.Close()
			}},
		{Name: "enable hypervisor",
			Do: func(context.Context) error {
				if on, _ := fs.ReadFile(p.o.Sys, "devices/jailhouse/enabled"); strings.TrimSpace(string(on)) == "1" {
					p.log.Info("hypervisor already enabled")
					return nil
				}
				if p.o.SystemConfig == "" {
					return fmt.Errorf("jailhouse: the hypervisor is not enabled and no root-cell config was given (--system-config, or run jailhouse enable)")
				}
				sys, err := p.o.ReadFile(p.o.SystemConfig)
				if err != nil {
					return fmt.Errorf("jailhouse: root-cell config: %w", err)
				}
				if err := p.ioctl(Enable(sys)); err != nil {
					return err
				}
				p.mu.Lock()
				p.enabled = true
				p.mu.Unlock()
				return nil
			},
			Undo: func(context.Context) error {
				p.mu.Lock()
				enabled := p.enabled
				p.enabled = false
				p.mu.Unlock()
				if !enabled {
					return nil
				}
				return p.ioctl(Disable())
			}},
		{Name: "create cell",
			Do: func(context.Context) error {
				b, err := Encode(cell)
				if err != nil {
					return err
				}
				return p.ioctl(CellCreate(b))
			},
			Undo: func(context.Context) error { return p.ioctl(CellDestroy(cell.Name)) }},
		{Name: "load cell",
			Do: func(context.Context) error {
				var in LinuxBoot
				for _, f := range []struct {
					path string
					dst  *[]byte
					what string
				}{{p.o.Loader, &in.Loader, "linux-loader.bin"}, {p.o.Kernel, &in.Kernel, "kernel"}, {p.o.Initrd, &in.Initrd, "initramfs"}} {
					if f.path == "" {
						return fmt.Errorf("%w: no %s given", ErrKernel, f.what)
					}
					b, err := p.o.ReadFile(f.path)
					if err != nil {
						return fmt.Errorf("jailhouse: %s: %w", f.what, err)
					}
					*f.dst = b
				}
				in.Cmdline = p.o.Cmdline
				imgs, err := LinuxImages(cell, in)
				if err != nil {
					return err
				}
				return p.ioctl(CellLoad(cell.Name, imgs))
			}},
		{Name: "start cell", Do: p.startCell, Undo: p.stopCell},
	}
}

// ioctl issues r on the open device (outside the lock: an ioctl may take
// long, ENABLE above all).
func (p *Partition) ioctl(r Request) error {
	p.mu.Lock()
	d := p.dev
	p.mu.Unlock()
	if d == nil {
		return fmt.Errorf("jailhouse: %s: /dev/jailhouse is not open", IoctlName(r.Cmd))
	}
	return d.Ioctl(r)
}

// Start brings the cell up and watches its state; on failure everything
// done is undone.
func (p *Partition) Start(ctx context.Context) error {
	return p.life.Start(ctx, func() []supervisor.Step {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.enabled = false
		p.info = supervisor.Info{RT: true, Isolation: supervisor.Isolation{
			CPUs: configs.CPUList(p.o.Plan.Cell.CPUs).String(), CPUSet: "jailhouse cell",
		}}
		for _, n := range p.o.Plan.NICs {
			p.info.NICs = append(p.info.NICs, n.Addr)
		}
		return p.Steps()
	})
}

// startCell starts the cell and the watch of its run.
func (p *Partition) startCell(ctx context.Context) error {
	if err := p.ioctl(CellStart(p.name)); err != nil {
		return err
	}
	ended := supervisor.NewEnding()
	p.life.Running(ended)
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	watched := make(chan struct{})
	p.mu.Lock()
	p.cancel, p.watched = cancel, watched
	p.mu.Unlock()
	go func() {
		defer close(watched)
		p.watch(wctx, ended)
	}()
	return nil
}

// stopCell asks the executive to halt and waits (bounded by ctx) for the
// cell to shut down, then ends the watch; the cell is destroyed by the
// undo of "create cell".
func (p *Partition) stopCell(ctx context.Context) error {
	done := p.life.Ending().Done()
	if p.o.Halt != nil {
		if err := p.o.Halt(ctx); err != nil {
			p.log.Warn("halt request failed", "err", err)
		} else {
			select {
			case <-done:
			case <-ctx.Done():
				p.log.Warn("cell did not shut down in time; destroying it")
			}
		}
	}
	p.mu.Lock()
	cancel, watched := p.cancel, p.watched
	p.cancel, p.watched = nil, nil
	p.mu.Unlock()
	cancel()
	// The watch returns at once; the bound guards a sysfs read that hangs.
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-watched:
	case <-t.C:
		p.log.Warn("cell watch did not end")
	}
	return nil
}

// watch polls the cell's sysfs state until it shuts down or fails, and
// copies what the hypervisor console shows into the console ring.
func (p *Partition) watch(ctx context.Context, ended *supervisor.Ending) {
	var seen []byte
	defer func() { p.readConsole(seen) }() // what the cell printed last
	for {
		seen = p.readConsole(seen)
		st, err := CellState(p.o.Sys, p.name)
		e := supervisor.Exit{Code: -1, Time: p.o.Clock.Now()}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			e.Signal = "cell destroyed"
		case err != nil:
			p.log.Warn("cell state unreadable", "err", err)
		case st == "shut down":
			e.Code = 0
		case strings.HasPrefix(st, "failed"):
			e.Signal = "cell " + st
		}
		if e.Code == 0 || e.Signal != "" {
			p.log.Info("cell ended", "exit", e.String())
			ended.End(e)
			return
		}
		t := p.o.Clock.NewTimer(p.o.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			ended.End(supervisor.Exit{Code: -1, Signal: "stopped", Time: p.o.Clock.Now()})
			return
		case <-t.C():
		}
	}
}

// CellState reads the state of the named cell from the driver's sysfs
// (devices/jailhouse/cells/<id>/name and state): "running",
// "running/locked", "shut down", "failed" or "failed/commrev".
func CellState(sys fs.FS, name string) (string, error) {
	ents, err := fs.ReadDir(sys, "devices/jailhouse/cells")
	if err != nil {
		return "", fmt.Errorf("jailhouse: cell %s: %w", name, err)
	}
	for _, e := range ents {
		dir := path.Join("devices/jailhouse/cells", e.Name())
		n, err := fs.ReadFile(sys, path.Join(dir, "name"))
		if err != nil || strings.TrimSpace(string(n)) != name {
			continue
		}
		st, err := fs.ReadFile(sys, path.Join(dir, "state"))
		if err != nil {
			return "", fmt.Errorf("jailhouse: cell %s: %w", name, err)
		}
		return strings.TrimSpace(string(st)), nil
	}
	return "", fmt.Errorf("jailhouse: cell %s: %w", name, fs.ErrNotExist)
}

// Wait returns when the cell shut down, failed or was destroyed.
func (p *Partition) Wait(ctx context.Context) (supervisor.Exit, error) { return p.life.Wait(ctx) }

// Stop asks the executive to halt and waits (bounded by ctx) for the cell
// to shut down, then destroys the cell and undoes the bring-up.
func (p *Partition) Stop(ctx context.Context) error { return p.life.Stop(ctx) }

// Records is what the last start and stop ran.
func (p *Partition) Records() []supervisor.StepRecord { return p.life.Records() }

// Kill destroys the cell at once, leaving the hypervisor enabled.
func (p *Partition) Kill() error {
	p.mu.Lock()
	dev := p.dev
	p.mu.Unlock()
	if dev == nil {
		return fmt.Errorf("jailhouse: partition %w", supervisor.ErrNotStarted)
	}
	return dev.Ioctl(CellDestroy(p.name))
}

// Info reports the cell's CPUs and NICs.
func (p *Partition) Info() supervisor.Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info.Clone()
}

// Console returns the hypervisor console's latest lines, as the watch of
// the cell's run copied them (cells with a permitted virtual console write
// there; the cell's 8250 goes to the host's serial port and is not visible
// here).
func (p *Partition) Console() []string { return p.console.Lines() }

// readConsole copies into the console ring what the hypervisor console
// (devices/jailhouse/console, a ring the driver unrolls) shows beyond
// seen, what it showed at the last read, and returns what it shows now.
func (p *Partition) readConsole(seen []byte) []byte {
	b, err := fs.ReadFile(p.o.Sys, "devices/jailhouse/console")
	if err != nil {
		return seen
	}
	b = bytes.ReplaceAll(b, []byte{0}, nil)
	p.console.Write(consoleNews(seen, b))
	return b
}

// consoleNews is what now shows beyond seen: the bytes after the longest
// end of seen that now begins with (the console ring drops its oldest
// bytes as it fills); all of now when they share nothing.
func consoleNews(seen, now []byte) []byte {
	for i := range seen {
		if bytes.HasPrefix(now, seen[i:]) {
			return now[len(seen)-i:]
		}
	}
	return now
}
