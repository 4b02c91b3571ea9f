package jailhouse

import (
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/image"
	"github.com/mkrt/mkrt/supervisor/kexec"
)

// Host is how the backend reaches the hypervisor; the zero value is the
// real host.
type Host struct {
	// Open opens /dev/jailhouse; default OpenDevice.
	Open func() (Device, error)
	// Sys is sysfs (rooted at /sys); default os.DirFS("/sys").
	Sys fs.FS
	// Loader is Jailhouse's linux-loader.bin; default the first of Loaders
	// that exists.
	Loader string
	// SystemConfig is the root-cell config that enables the hypervisor
	// when it is not enabled yet; "" needs it enabled (jailhouse enable).
	SystemConfig string
}

// Loaders are where Jailhouse's installation puts linux-loader.bin.
var Loaders = []string{
	"/usr/local/libexec/jailhouse/linux-loader.bin",
	"/usr/libexec/jailhouse/linux-loader.bin",
	"/usr/local/share/jailhouse/inmates/tools/x86/linux-loader.bin",
	"/usr/share/jailhouse/inmates/tools/x86/linux-loader.bin",
}

// FromConfig builds the jailhouse partition of one generation: the
// control program runs in a non-root Linux cell whose memory window is
// the first memmap= reservation of the host's command line that holds it;
// the cell's ivshmem device carries the shared region, which this side
// maps through /dev/mem (Locate). A hand-over needs a second cell with
// the running cell's region in its config, which this backend does not
// generate: spec.TakeFrom is refused. kh reaches the host's files and
// /dev/mem, jh the hypervisor (zero values: the real host).
func FromConfig(spec supervisor.Spec, kh kexec.Host, jh Host) (*Partition, error) {
	if spec.TakeFrom != "" {
		return nil, fmt.Errorf("%w: a hand-over to a second cell is not supported", ErrConfig)
	}
	ko, cfg, err := kexec.FromSpec(spec, "jailhouse", kh)
	if err != nil {
		return nil, err
	}
	if jh.Sys == nil {
		jh.Sys = os.DirFS("/sys")
	}
	// The window's size does not depend on where it is: plan once to learn
	// it, then at the reservation that holds it.
	probe, err := Generate(cfg, Options{MemoryBase: 1 << 32, Sys: jh.Sys})
	if err != nil {
		return nil, err
	}
	base, err := kexec.Reserved(ko.Host.FS, probe.WindowSize, nil, "the cell's memory window")
	if err != nil {
		return nil, fmt.Errorf("jailhouse: %w", err)
	}
	plan, err := Generate(cfg, Options{MemoryBase: base, Sys: jh.Sys})
	if err != nil {
		return nil, err
	}
	if jh.Loader == "" {
		for _, l := range Loaders {
			if _, err := os.Stat(l); err == nil {
				jh.Loader = l
				break
			}
		}
		if jh.Loader == "" {
			return nil, fmt.Errorf("jailhouse: no linux-loader.bin in %v: install Jailhouse (make install) or give its path", Loaders)
		}
	}
	var rt []int
	for i := 1; i < len(cfg.Partition.CPUs); i++ {
		rt = append(rt, i)
	}
	cmdline := image.Cmdline(image.CmdlineOptions{RTCPUs: rt, Housekeeping: []int{0}, MaxCState: -1,
		Extra: strings.TrimSpace("console=ttyS0,115200 " + cfg.Partition.Kernel.Cmdline)})
	p, err := NewPartition(PartitionOptions{Plan: plan, Loader: jh.Loader, Kernel: ko.Kernel, Initrd: ko.Initrd, Cmdline: cmdline,
		SystemConfig: jh.SystemConfig, Open: jh.Open, Sys: jh.Sys, Halt: ko.Halt, Log: ko.Host.Log})
	if err != nil {
		return nil, err
	}
	p.region = plan.ShmLocation()
	if ko.Host.DevMem != "" {
		p.region.Path = ko.Host.DevMem
	}
	ko.Host.Log.Info("jailhouse cell planned", "cell", plan.Cell.Name, "window", fmt.Sprintf("%#x+%#x", plan.WindowBase, plan.WindowSize), "shm", p.region.String())
	return p, nil
}

// Locate is where this side maps the cell's shared region (set by
// FromConfig).
func (p *Partition) Locate() (shm.Location, error) {
	if p.region.Path == "" {
		return shm.Location{}, fmt.Errorf("%w: the partition was not built by FromConfig; its region is unknown", ErrConfig)
	}
	return p.region, nil
}
