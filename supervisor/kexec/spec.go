package kexec

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/image"
	"github.com/mkrt/mkrt/supervisor/process"
)

// FromSpec resolves what a second-kernel backend (multikernel, parker,
// jailhouse) loads for one generation: the kernel (spec.Kernel, else
// partition.kernel.image), the initramfs (partition.kernel.initrd, else
// built for the kernel), the config the backend plans from (for a
// hand-over's standby start with mkrt.take=<region> on its command line)
// and host with its defaults (the real host where unset). The region is
// always formatted by the deployment first (Formatted).
func FromSpec(spec supervisor.Spec, backend string, host Host) (Options, *configs.Config, error) {
	cfg := spec.Config
	o := Options{Kernel: spec.Kernel, Formatted: true, Halt: spec.Halt}
	if o.Kernel == "" {
		o.Kernel = cfg.ResolvePath(cfg.Partition.Kernel.Image)
	}
	if o.Kernel == "" {
		return o, nil, fmt.Errorf("%s: set partition.kernel.image to the application kernel (bzImage or vmlinux)", backend)
	}
	o.Initrd = cfg.ResolvePath(cfg.Partition.Kernel.Initrd)
	if o.Initrd == "" {
		var err error
		if o.Initrd, err = image.ForSpec(spec, o.Kernel, ""); err != nil {
			return o, nil, err
		}
	}
	c := *cfg
	if spec.TakeFrom != "" {
		c.Partition.Kernel.Cmdline = strings.TrimSpace(c.Partition.Kernel.Cmdline + " mkrt.take=" + spec.TakeFrom)
	}
	if host.Log == nil {
		log := spec.Log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		host.Log = log.With("component", backend)
	}
	if host.FS == nil {
		host.FS = process.OSFS{} // read before the start too (the host's memmap= reservations)
	}
	o.Host = host
	return o, &c, nil
}

// Holder is a partition that holds physical memory (a second kernel's):
// a generation started beside it during a hand-over keeps clear of it.
type Holder interface {
	Holds() []Range
}

// HeldBy is the memory p holds; nil when p holds none (or is nil).
func HeldBy(p supervisor.Partition) []Range {
	if h, ok := p.(Holder); ok {
		return h.Holds()
	}
	return nil
}

// Reserved is the first range of at least size bytes that the host's
// command line keeps from its kernel (memmap=<size>$<addr>) and that is
// not one of busy; what names the use in the error that says how to add
// one.
func Reserved(fsys process.FS, size uint64, busy []Range, what string) (uint64, error) {
	cmdline, err := fsys.ReadFile("/proc/cmdline")
	if err != nil {
		return 0, err
	}
	res := Reservations(string(cmdline))
	for _, r := range res {
		if r.Bytes >= size && !slices.ContainsFunc(busy, r.Overlaps) {
			return r.Base, nil
		}
	}
	return 0, fmt.Errorf("the host's command line reserves no free range of at least %d KiB for %s (memmap=<size>$<addr>; found %v): add memmap=%dK$<addr> (one more for a hand-over) and reboot", size>>10, what, res, size>>10)
}
